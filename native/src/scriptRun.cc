// ScriptRun: a short script of mkdir / rmdir / write / mount / umount calls, run over and over
// by `concurrency` C threads, each phase of each operation timed on its own. The storage and
// cgroup studies are such scripts: what differs between their configurations is the calls,
// not the loop, and keeping the loop in C keeps JS and libuv out of what is measured.
#include "scriptRun.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "errors.h"
#include "threadedRun.h"

extern char** environ;

namespace sockbench {
namespace {

constexpr int kMaxConcurrency = 4096;
constexpr size_t kThreadStackBytes = 256 * 1024;

// What a step's templates may name: {t} the thread's index, {n} the operation's number within
// the thread, {p} the pid of the thread's holder process.
struct Vars {
  int thread;
  uint64_t n;
  pid_t holder;
};

std::string Expand(const std::string& tmpl, const Vars& v) {
  std::string out;
  out.reserve(tmpl.size() + 16);
  for (size_t i = 0; i < tmpl.size(); i++) {
    if (tmpl.compare(i, 3, "{t}") == 0) {
      out += std::to_string(v.thread);
      i += 2;
    } else if (tmpl.compare(i, 3, "{n}") == 0) {
      out += std::to_string(v.n);
      i += 2;
    } else if (tmpl.compare(i, 3, "{p}") == 0) {
      out += std::to_string(v.holder);
      i += 2;
    } else {
      out += tmpl[i];
    }
  }
  return out;
}

const char* OpName(ScriptStep::Op op) {
  switch (op) {
    case ScriptStep::kMkdir: return "mkdir";
    case ScriptStep::kRmdir: return "rmdir";
    case ScriptStep::kWrite: return "write";
    case ScriptStep::kMount: return "mount";
    case ScriptStep::kUmount: return "umount2";
    case ScriptStep::kEmpty: return "read";
    case ScriptStep::kChroot: return "chroot";
    case ScriptStep::kUnchroot: return "chroot";
    case ScriptStep::kExec: return "exec";
  }
  return "?";
}

// posix_spawn (glibc clones with CLONE_VM|CLONE_VFORK: no copy of Node's memory), output to
// /dev/null, and wait. 0 when it exited 0; an errno; or kExitedNonZero.
int Exec(const std::string& program, const std::vector<std::string>& args, const Vars& v) {
  std::vector<std::string> argv{program};
  for (const auto& a : args) argv.push_back(Expand(a, v));
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  int err = posix_spawn(&pid, program.c_str(), &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) return err;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return errno;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : kExitedNonZero;
}

// 0, or the errno of the call that failed (the failing path is left in *where). rootFd is the
// thread's original root, for kUnchroot.
int RunStep(const ScriptStep& s, const Vars& v, int rootFd, std::string* where) {
  std::string path = Expand(s.path, v);
  int rc = 0;
  switch (s.op) {
    case ScriptStep::kMkdir: rc = mkdir(path.c_str(), 0755); break;
    case ScriptStep::kRmdir: rc = rmdir(path.c_str()); break;
    case ScriptStep::kWrite: {
      int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) { rc = -1; break; }
      std::string value = Expand(s.value, v);
      ssize_t w = write(fd, value.data(), value.size());
      int err = errno;
      close(fd);
      if (w < 0) { errno = err; rc = -1; }
      break;
    }
    case ScriptStep::kMount: {
      std::string source = Expand(s.value, v);
      std::string data = Expand(s.data, v);
      rc = mount(source.empty() ? nullptr : source.c_str(), path.c_str(),
                 s.fstype.empty() ? nullptr : s.fstype.c_str(), s.flags,
                 data.empty() ? nullptr : data.c_str());
      break;
    }
    case ScriptStep::kUmount: rc = umount2(path.c_str(), static_cast<int>(s.flags)); break;
    case ScriptStep::kExec: {
      int err = Exec(s.path, s.args, v);
      if (err == 0) return 0;
      *where = path;
      return err;
    }
    case ScriptStep::kChroot: rc = chroot(path.c_str()) != 0 || chdir("/") != 0 ? -1 : 0; break;
    case ScriptStep::kUnchroot: rc = fchdir(rootFd) != 0 || chroot(".") != 0 ? -1 : 0; break;
    case ScriptStep::kEmpty: {
      int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) { rc = -1; break; }
      char byte;
      ssize_t r = read(fd, &byte, 1);
      int err = errno;
      close(fd);
      if (r != 0) { errno = r < 0 ? err : ENOTEMPTY; rc = -1; }
      break;
    }
  }
  if (rc == 0) return 0;
  *where = path;
  return errno;
}

struct Shared {
  const ScriptOptions* options = nullptr;
  std::atomic<bool>* stop = nullptr;
  double deadline = 0;
  std::atomic<uint64_t> claimed{0};
  StartGate gate;
  FirstFailure* failure = nullptr;
};

struct Thread {
  Shared* shared = nullptr;
  int index = 0;
  int rootFd = -1;  // the root to return to, when the script chroots
  pid_t holder = 0;  // the thread's holder process, when the script asks for one
  pthread_t thread{};
  std::vector<std::vector<double>> latenciesUs;  // per phase
  double finishedAt = 0;
};

bool RunSteps(Shared& s, const std::vector<ScriptStep>& steps, const Thread& w, uint64_t n) {
  for (const auto& step : steps) {
    std::string where;
    int err = RunStep(step, Vars{w.index, n, w.holder}, w.rootFd, &where);
    if (err != 0) {
      s.failure->Record(OpName(step.op), err, where);
      return false;
    }
  }
  return true;
}

void* ThreadMain(void* raw) {
  auto* w = static_cast<Thread*>(raw);
  Shared& s = *w->shared;
  const ScriptOptions& o = *s.options;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);

  // A thread that chroots first takes a private copy of the process's root and cwd
  // (unshare(CLONE_FS)), so Node's own threads never see it.
  bool chroots = false;
  for (const auto& p : o.phases) {
    for (const auto& step : p.steps) chroots = chroots || step.op == ScriptStep::kChroot;
  }
  bool prepared = true;
  if (chroots) {
    if (unshare(CLONE_FS) != 0) {
      s.failure->Record("unshare", errno, "CLONE_FS");
      prepared = false;
    } else if ((w->rootFd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
      s.failure->Record("open", errno, "/");
      prepared = false;
    }
  }
  // A holder is a child that only waits, for a script to move between cgroups. It dies with
  // this thread (PDEATHSIG), so a crash cannot leave it behind.
  if (prepared && o.holder) {
    pid_t parent = getpid();
    w->holder = fork();
    if (w->holder == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0);
      for (;;) pause();
    }
    if (w->holder < 0) {
      s.failure->Record("fork", errno, "holder");
      w->holder = 0;
      prepared = false;
    }
  }
  prepared = prepared && RunSteps(s, o.prepare, *w, 0);
  s.gate.Arrive();

  for (uint64_t n = 0; prepared && !s.stop->load(std::memory_order_relaxed) && !s.failure->Happened(); n++) {
    if (o.ops != 0 && s.claimed.fetch_add(1) >= o.ops) break;
    double t = NowSeconds();
    bool ok = true;
    for (size_t p = 0; ok && p < o.phases.size(); p++) {
      ok = RunSteps(s, o.phases[p].steps, *w, n);
      double now = NowSeconds();
      if (ok) w->latenciesUs[p].push_back((now - t) * 1e6);
      t = now;
    }
    if (!ok || (o.ops == 0 && t >= s.deadline)) break;
  }
  w->finishedAt = NowSeconds();
  std::string ignored;
  // Back to the real root before cleaning up, whatever phase a failure stopped in.
  if (w->rootFd >= 0) {
    ScriptStep unchroot{};
    unchroot.op = ScriptStep::kUnchroot;
    RunStep(unchroot, Vars{w->index, 0, w->holder}, w->rootFd, &ignored);
    close(w->rootFd);
  }
  // Gone before cleanup, so the cgroups it was in are empty and can be removed.
  if (w->holder > 0) {
    kill(w->holder, SIGKILL);
    while (waitpid(w->holder, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  for (const auto& step : o.cleanup) RunStep(step, Vars{w->index, 0, w->holder}, w->rootFd, &ignored);
  return nullptr;
}

ScriptStep ParseStep(Napi::Env env, Napi::Value v) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "a script step must be an object");
  Napi::Object o = v.As<Napi::Object>();
  std::string op = o.Get("op").ToString().Utf8Value();
  ScriptStep s{};
  if (op == "mkdir") s.op = ScriptStep::kMkdir;
  else if (op == "rmdir") s.op = ScriptStep::kRmdir;
  else if (op == "write") s.op = ScriptStep::kWrite;
  else if (op == "mount") s.op = ScriptStep::kMount;
  else if (op == "umount") s.op = ScriptStep::kUmount;
  else if (op == "empty") s.op = ScriptStep::kEmpty;
  else if (op == "chroot") s.op = ScriptStep::kChroot;
  else if (op == "unchroot") s.op = ScriptStep::kUnchroot;
  else if (op == "exec") s.op = ScriptStep::kExec;
  else throw Napi::TypeError::New(env, "unknown script op '" + op + "' (mkdir, rmdir, write, mount, umount, empty, chroot, unchroot, exec)");
  if (s.op != ScriptStep::kUnchroot) {
    if (!o.Get("path").IsString()) throw Napi::TypeError::New(env, op + ": path must be a string");
    s.path = o.Get("path").As<Napi::String>().Utf8Value();
  }
  auto str = [&](const char* key) { return o.Get(key).IsString() ? o.Get(key).As<Napi::String>().Utf8Value() : std::string(); };
  s.value = s.op == ScriptStep::kMount ? str("source") : str("value");
  s.fstype = str("fstype");
  s.data = str("data");
  s.flags = o.Get("flags").IsNumber() ? static_cast<unsigned long>(o.Get("flags").As<Napi::Number>().Int64Value()) : 0;
  if (o.Get("args").IsArray()) {
    Napi::Array args = o.Get("args").As<Napi::Array>();
    for (uint32_t i = 0; i < args.Length(); i++) s.args.push_back(args.Get(i).ToString().Utf8Value());
  }
  return s;
}

std::vector<ScriptStep> ParseSteps(Napi::Env env, Napi::Value v) {
  std::vector<ScriptStep> steps;
  if (v.IsUndefined()) return steps;
  if (!v.IsArray()) throw Napi::TypeError::New(env, "script steps must be an array");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) steps.push_back(ParseStep(env, a.Get(i)));
  return steps;
}

}  // namespace

class ScriptRun::Worker : public RunWorker<ScriptRun> {
 public:
  Worker(Napi::Env env, ScriptRun* owner) : RunWorker(env, owner), options_(owner->options_) {}

  void Execute() override {
    Shared s;
    s.options = &options_;
    s.stop = &owner_->stop;
    s.failure = &failure_;
    std::vector<Thread> threads(options_.concurrency);
    for (size_t i = 0; i < threads.size(); i++) {
      threads[i].shared = &s;
      threads[i].index = static_cast<int>(i);
      threads[i].latenciesUs.resize(options_.phases.size());
    }
    // The clock starts once every thread has prepared its own directories and mounts.
    int started = StartThreads(threads, kThreadStackBytes, ThreadMain, failure_);
    double start = s.gate.Release(started);
    s.deadline = start + options_.durationSeconds;
    seconds_ = JoinThreads(threads, started, start) - start;
    latenciesUs_.resize(options_.phases.size());
    for (auto& t : threads) {
      for (size_t p = 0; p < t.latenciesUs.size(); p++) {
        latenciesUs_[p].insert(latenciesUs_[p].end(), t.latenciesUs[p].begin(), t.latenciesUs[p].end());
      }
    }
    stopped_ = owner_->stop.load();
  }

 private:
  Napi::Object Result(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    Napi::Object phases = Napi::Object::New(env);
    // An operation counts once all its phases ran: the last phase's count.
    size_t ops = latenciesUs_.empty() ? 0 : latenciesUs_.back().size();
    for (size_t p = 0; p < latenciesUs_.size(); p++) {
      auto lat = Napi::Float64Array::New(env, latenciesUs_[p].size());
      std::copy(latenciesUs_[p].begin(), latenciesUs_[p].end(), lat.Data());
      phases.Set(options_.phases[p].name, lat);
    }
    result.Set("ops", Napi::Number::New(env, static_cast<double>(ops)));
    result.Set("phases", phases);
    return result;
  }
  ScriptOptions options_;
  std::vector<std::vector<double>> latenciesUs_;
};

void ScriptRun::Init(Napi::Env env, Napi::Object exports) { Register(env, exports, "ScriptRun"); }

// new ScriptRun({ concurrency, durationSeconds?, ops?, prepare?, phases: [{ name, steps }], cleanup? })
ScriptRun::ScriptRun(const Napi::CallbackInfo& info) : ThreadedRun(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "ScriptRun expects an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  auto num = [&](const char* key, double fallback) {
    Napi::Value v = o.Get(key);
    return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback;
  };
  options_.concurrency = static_cast<int>(num("concurrency", 1));
  options_.durationSeconds = num("durationSeconds", 0);
  options_.ops = static_cast<uint64_t>(num("ops", 0));
  options_.prepare = ParseSteps(env, o.Get("prepare"));
  options_.cleanup = ParseSteps(env, o.Get("cleanup"));
  options_.holder = o.Get("holder").ToBoolean().Value();
  if (!o.Get("phases").IsArray()) throw Napi::TypeError::New(env, "phases must be an array of { name, steps }");
  Napi::Array phases = o.Get("phases").As<Napi::Array>();
  for (uint32_t i = 0; i < phases.Length(); i++) {
    if (!phases.Get(i).IsObject()) throw Napi::TypeError::New(env, "a phase must be { name, steps }");
    Napi::Object p = phases.Get(i).As<Napi::Object>();
    options_.phases.push_back({p.Get("name").ToString().Utf8Value(), ParseSteps(env, p.Get("steps"))});
  }
  if (options_.phases.empty()) throw Napi::RangeError::New(env, "give at least one phase");
  if (options_.concurrency < 1 || options_.concurrency > kMaxConcurrency) {
    throw Napi::RangeError::New(env, "concurrency must be 1.." + std::to_string(kMaxConcurrency));
  }
  if ((options_.ops == 0) == (options_.durationSeconds <= 0)) {
    throw Napi::RangeError::New(env, "give exactly one of durationSeconds > 0 or ops > 0");
  }
}

}  // namespace sockbench
