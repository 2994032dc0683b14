// spawn(): start a child that performs a list of namespace and file-system steps before it
// execs a program or holds (waits to be killed), and report which step failed and why.
//
// The steps run in the child because unshare(CLONE_NEWNS), setns() and chroot() act on the
// calling thread or the whole process, and Node is multi-threaded. Everything the child
// needs is marshalled before the clone, and the child makes only async-signal-safe calls.
// A close-on-exec pipe tells the parent the outcome: EOF means exec succeeded, a record
// names the failed step and errno, or says the child reached `hold`.
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "errors.h"

namespace sockbench {
namespace {

enum class Op { Unshare, Setns, Mount, Chroot, Chdir, Sethostname, Exec, Hold };

struct Step {
  Op op;
  int flags = 0;
  std::string path, source, fstype, data;
  bool hasSource = false, hasFstype = false, hasData = false;
  std::vector<std::string> argv, env;
};

struct Report {
  int32_t step;  // index of the failed step, or -1 when the child reached `hold`
  int32_t err;
};

const char* OpName(Op op) {
  switch (op) {
    case Op::Unshare: return "unshare";
    case Op::Setns: return "setns";
    case Op::Mount: return "mount";
    case Op::Chroot: return "chroot";
    case Op::Chdir: return "chdir";
    case Op::Sethostname: return "sethostname";
    case Op::Exec: return "execve";
    case Op::Hold: return "hold";
  }
  return "?";
}

std::string StringField(Napi::Object o, const char* key, bool* present = nullptr) {
  Napi::Value v = o.Get(key);
  if (present) *present = v.IsString();
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

std::vector<std::string> StringArray(Napi::Env env, Napi::Object o, const char* key) {
  std::vector<std::string> out;
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return out;
  if (!v.IsArray()) throw Napi::TypeError::New(env, std::string(key) + " must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(a.Get(i).ToString().Utf8Value());
  return out;
}

Step ParseStep(Napi::Env env, Napi::Object o) {
  std::string op = StringField(o, "op");
  Step s{};
  s.flags = o.Get("flags").IsNumber() ? o.Get("flags").As<Napi::Number>().Int32Value() : 0;
  s.path = StringField(o, "path");
  if (op == "unshare") s.op = Op::Unshare;
  else if (op == "setns") s.op = Op::Setns;
  else if (op == "chroot") s.op = Op::Chroot;
  else if (op == "chdir") s.op = Op::Chdir;
  else if (op == "hold") s.op = Op::Hold;
  else if (op == "sethostname") {
    s.op = Op::Sethostname;
    s.data = StringField(o, "name");
  } else if (op == "mount") {
    s.op = Op::Mount;
    s.source = StringField(o, "source", &s.hasSource);
    s.fstype = StringField(o, "fstype", &s.hasFstype);
    s.data = StringField(o, "data", &s.hasData);
    s.path = StringField(o, "target");
  } else if (op == "exec") {
    s.op = Op::Exec;
    s.argv = StringArray(env, o, "argv");
    s.env = StringArray(env, o, "env");
    if (s.argv.empty()) throw Napi::TypeError::New(env, "exec step needs a non-empty argv");
  } else {
    throw Napi::TypeError::New(env, "unknown spawn step op '" + op + "'");
  }
  return s;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

[[noreturn]] void ChildFail(int fd, int step, int err) {
  Report r{step, err};
  (void)!write(fd, &r, sizeof r);
  _exit(127);
}

// Runs in the child after clone(): only async-signal-safe calls from here on.
[[noreturn]] void ChildRun(int fd, std::vector<Step>& steps, std::vector<std::vector<char*>>& argvs,
                           std::vector<std::vector<char*>>& envs, bool dieWithParent, pid_t expectedParent) {
  // Node's handlers were inherited; running one here would write into Node's signal pipe.
  for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (dieWithParent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    // The parent died before prctl took effect. (Born in a new PID namespace the child sees
    // its parent as 0 either way, so that case cannot be told apart and is let through.)
    if (getppid() != expectedParent) _exit(127);
  }
  for (size_t i = 0; i < steps.size(); i++) {
    Step& s = steps[i];
    int rc = 0;
    switch (s.op) {
      case Op::Unshare: rc = unshare(s.flags); break;
      case Op::Setns: {
        int nsfd = open(s.path.c_str(), O_RDONLY | O_CLOEXEC);
        if (nsfd < 0) ChildFail(fd, i, errno);
        rc = setns(nsfd, s.flags);
        close(nsfd);
        break;
      }
      case Op::Mount:
        rc = mount(s.hasSource ? s.source.c_str() : nullptr, s.path.c_str(),
                   s.hasFstype ? s.fstype.c_str() : nullptr, s.flags,
                   s.hasData ? s.data.c_str() : nullptr);
        break;
      case Op::Chroot: rc = chroot(s.path.c_str()); break;
      case Op::Chdir: rc = chdir(s.path.c_str()); break;
      case Op::Sethostname: rc = sethostname(s.data.c_str(), s.data.size()); break;
      case Op::Exec:
        execve(argvs[i][0], argvs[i].data(), envs[i].data());
        ChildFail(fd, i, errno);
      case Op::Hold: {
        Report ready{-1, 0};
        (void)!write(fd, &ready, sizeof ready);
        close(fd);
        for (;;) pause();
      }
    }
    if (rc != 0) ChildFail(fd, i, errno);
  }
  Report done{-1, 0};
  (void)!write(fd, &done, sizeof done);
  _exit(0);
}

}  // namespace

// spawn({ cloneFlags?, steps: Step[], dieWithParent? = true }) -> pid
Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "spawn expects an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  int cloneFlags = o.Get("cloneFlags").IsNumber() ? o.Get("cloneFlags").As<Napi::Number>().Int32Value() : 0;
  bool dieWithParent = o.Get("dieWithParent").IsBoolean() ? o.Get("dieWithParent").As<Napi::Boolean>().Value() : true;
  if (!o.Get("steps").IsArray()) throw Napi::TypeError::New(env, "spawn needs a steps array");
  Napi::Array arr = o.Get("steps").As<Napi::Array>();
  std::vector<Step> steps;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    if (!arr.Get(i).IsObject()) throw Napi::TypeError::New(env, "each spawn step must be an object");
    steps.push_back(ParseStep(env, arr.Get(i).As<Napi::Object>()));
  }
  std::vector<std::vector<char*>> argvs(steps.size()), envs(steps.size());
  for (size_t i = 0; i < steps.size(); i++) {
    if (steps[i].op == Op::Exec) {
      argvs[i] = CStrings(steps[i].argv);
      envs[i] = CStrings(steps[i].env);
    }
  }

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw SyscallError(env, "pipe2", errno);
  pid_t expectedParent = (cloneFlags & CLONE_NEWPID) ? 0 : getpid();
  // Raw clone with a null stack has fork semantics, plus the namespaces the child is born in.
  long pid = syscall(SYS_clone, SIGCHLD | cloneFlags, nullptr, nullptr, nullptr, nullptr);
  if (pid < 0) {
    int err = errno;
    close(fds[0]);
    close(fds[1]);
    throw SyscallError(env, "clone", err, CloneFlagNames(cloneFlags));
  }
  if (pid == 0) {
    close(fds[0]);
    ChildRun(fds[1], steps, argvs, envs, dieWithParent, expectedParent);
  }
  close(fds[1]);
  Report r{};
  ssize_t n;
  do n = read(fds[0], &r, sizeof r); while (n < 0 && errno == EINTR);
  close(fds[0]);
  if (n == static_cast<ssize_t>(sizeof r) && r.step >= 0) {
    int status;
    waitpid(pid, &status, 0);
    const Step& s = steps[r.step];
    std::string args = s.op == Op::Unshare ? CloneFlagNames(s.flags) : s.op == Op::Exec ? s.argv[0] : s.path;
    throw SyscallError(env, OpName(s.op), r.err, args);
  }
  bool execs = !steps.empty() && steps.back().op == Op::Exec;
  if (n != static_cast<ssize_t>(sizeof r) && !execs) {
    int status = 0;
    waitpid(pid, &status, 0);
    throw Napi::Error::New(env, "spawned child exited before finishing its steps (status " +
                                    std::to_string(status) + ")");
  }
  return Napi::Number::New(env, static_cast<double>(pid));
}

namespace {

class ReapWorker : public Napi::AsyncWorker {
 public:
  ReapWorker(Napi::Env env, pid_t pid, int timeoutMs)
      : Napi::AsyncWorker(env), pid_(pid), timeoutMs_(timeoutMs), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd < 0) {
      err_ = errno;
      call_ = "pidfd_open";
      return;
    }
    struct pollfd p{pidfd, POLLIN, 0};
    int rc;
    do rc = poll(&p, 1, timeoutMs_); while (rc < 0 && errno == EINTR);
    close(pidfd);
    if (rc == 0) {
      timedOut_ = true;
      return;
    }
    pid_t got;
    do got = waitpid(pid_, &status_, __WALL); while (got < 0 && errno == EINTR);
    if (got < 0) {
      err_ = errno;
      call_ = "waitpid";
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) {
      deferred_.Reject(SyscallError(env, call_, err_).Value());
      return;
    }
    Napi::Object r = Napi::Object::New(env);
    r.Set("timedOut", Napi::Boolean::New(env, timedOut_));
    bool exited = !timedOut_ && WIFEXITED(status_);
    bool signaled = !timedOut_ && WIFSIGNALED(status_);
    r.Set("exitCode", exited ? Napi::Number::New(env, WEXITSTATUS(status_)) : env.Null());
    r.Set("signal", signaled ? Napi::Number::New(env, WTERMSIG(status_)) : env.Null());
    deferred_.Resolve(r);
  }

 private:
  pid_t pid_;
  int timeoutMs_;
  Napi::Promise::Deferred deferred_;
  int status_ = 0;
  int err_ = 0;
  std::string call_;
  bool timedOut_ = false;
};

}  // namespace

// reap(pid, timeoutMs = -1) -> Promise<{ timedOut, exitCode, signal }>, waiting off the event loop.
Napi::Value Reap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "reap expects a pid");
  int timeoutMs = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : -1;
  auto* worker = new ReapWorker(env, info[0].As<Napi::Number>().Int32Value(), timeoutMs);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace sockbench
