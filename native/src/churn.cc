// Namespace churn: worker threads that each, in a loop, create a child inside a requested
// set of namespaces, let it exit, and reap it, timing every operation.
//
// Why the loop is shaped this way:
// - It runs in native threads so that the JS event loop adds nothing to each operation and
//   Node stays responsive (progress, Ctrl-C) while it runs.
// - Children are made with CLONE_VM|CLONE_VFORK on a small private stack. A fork() from a
//   busy multi-threaded parent copies and write-protects the parent's whole address space
//   and serialises on its mmap lock, so it would measure Node's heap, not the namespaces.
// - Children share the file table (CLONE_FILES): copying and closing Node's dozens of
//   descriptors on every op would make the cost depend on the parent's open files instead
//   of on the namespaces. They must not share signal handlers (CLONE_SIGHAND): a child that
//   is init of a new PID namespace sets SIGCHLD to SIG_IGN in its handler table as it exits
//   (zap_pid_ns_processes), and shared, that would make the kernel auto-reap all of Node's
//   children from then on.
// - Children exit with no exit signal (reaped with __WALL), so Node's SIGCHLD handling is
//   never woken by them, and worker threads block every signal so a child never runs one of
//   Node's handlers on the shared memory.
#include "churn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "clone3.h"
#include "errors.h"
#include "threadedRun.h"

namespace sockbench {
namespace {

constexpr size_t kChildStackBytes = 64 * 1024;
constexpr size_t kThreadStackBytes = 256 * 1024;
constexpr int kMaxConcurrency = 4096;
// What every churn child shares with its parent thread; see the header comment.
constexpr int kShareFlags = CLONE_VM | CLONE_VFORK | CLONE_FILES;
constexpr int kNamespaceFlags =
    CLONE_NEWCGROUP | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS;

struct ChildArgs {
  int unshareFlags;        // 0 when the namespaces come from clone's own flags
  const char* chrootPath;  // null: no chroot
  const std::vector<std::string>* moveTo;  // cgroup.procs files the child writes itself into
  int error;               // written by the child (shared memory), read after it is reaped
  const char* failedCall;  // likewise
};

int ChildMain(void* raw) {
  auto* args = static_cast<ChildArgs*>(raw);
  if (args->unshareFlags != 0 && syscall(SYS_unshare, args->unshareFlags) != 0) {
    args->error = errno;
    args->failedCall = "unshare";
    return 1;
  }
  for (const auto& procs : *args->moveTo) {
    // "0" is the writer itself: the child moves into that cgroup.
    int fd = open(procs.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) {
      args->error = errno;
      args->failedCall = "write";
      if (fd >= 0) close(fd);
      return 1;
    }
    close(fd);
  }
  // The child has its own fs_struct (no CLONE_FS), so its chroot never touches the parent's.
  if (args->chrootPath != nullptr && (chroot(args->chrootPath) != 0 || chdir("/") != 0)) {
    args->error = errno;
    args->failedCall = "chroot";
    return 1;
  }
  return 0;
}


// State shared by the worker threads of one run.
struct Shared {
  int cloneFlags = 0;
  int unshareFlags = 0;
  const char* chrootPath = nullptr;
  std::vector<std::string> moveTo;
  int cgroupFd = -1;        // CLONE_INTO_CGROUP target, or -1
  uint64_t maxOps = 0;      // 0: bounded by time
  double deadline = 0;      // absolute; valid once started
  std::atomic<bool>* stop = nullptr;
  std::atomic<uint64_t> claimed{0};
  StartGate gate;
  FirstFailure* failure = nullptr;
};

struct Thread {
  Shared* shared = nullptr;
  pthread_t thread{};
  std::vector<double> latenciesUs;
  void* childStack = nullptr;
  double finishedAt = 0;
};

void* ThreadMain(void* raw) {
  auto* w = static_cast<Thread*>(raw);
  Shared& s = *w->shared;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);

  char* stackTop = static_cast<char*>(w->childStack) + kChildStackBytes;
  ChildArgs args{s.unshareFlags, s.chrootPath, &s.moveTo, 0, nullptr};

  s.gate.Arrive();

  while (!s.stop->load(std::memory_order_relaxed) && !s.failure->Happened()) {
    if (s.maxOps != 0 && s.claimed.fetch_add(1) >= s.maxOps) break;
    args.error = 0;
    double t0 = NowSeconds();
    pid_t pid;
#if defined(__x86_64__)
    if (s.cgroupFd >= 0) {
      struct clone_args ca;
      memset(&ca, 0, sizeof(ca));
      ca.flags = kShareFlags | s.cloneFlags | CLONE_INTO_CGROUP;
      ca.stack = reinterpret_cast<uint64_t>(w->childStack);
      ca.stack_size = kChildStackBytes;
      ca.cgroup = static_cast<uint64_t>(s.cgroupFd);
      pid = Clone3OnStack(&ca, ChildMain, &args);
    } else
#endif
      pid = clone(ChildMain, stackTop, kShareFlags | s.cloneFlags, &args);
    if (pid < 0) {
      s.failure->Record("clone", errno, CloneFlagNames(s.cloneFlags));
      break;
    }
    int status = 0;
    while (waitpid(pid, &status, __WALL) < 0) {
      if (errno != EINTR) {
        s.failure->Record("waitpid", errno);
        break;
      }
    }
    double t1 = NowSeconds();
    if (args.error != 0) {
      bool inChroot = std::string(args.failedCall) == "chroot";
      s.failure->Record(args.failedCall, args.error, inChroot ? std::string(s.chrootPath) : CloneFlagNames(s.unshareFlags));
      break;
    }
    w->latenciesUs.push_back((t1 - t0) * 1e6);
    if (s.maxOps == 0 && t1 >= s.deadline) break;
  }
  w->finishedAt = NowSeconds();
  return nullptr;
}

}  // namespace

class ChurnRun::Worker : public RunWorker<ChurnRun> {
 public:
  Worker(Napi::Env env, ChurnRun* owner) : RunWorker(env, owner), options_(owner->options_) {}

  void Execute() override {
    Shared s;
    s.stop = &owner_->stop;
    s.failure = &failure_;
    s.maxOps = options_.ops;
    if (options_.useUnshare) {
      s.unshareFlags = options_.flags;
    } else {
      s.cloneFlags = options_.flags;
    }
    if (!options_.chrootPath.empty()) s.chrootPath = options_.chrootPath.c_str();
    s.moveTo = options_.moveTo;
    if (!options_.intoCgroup.empty()) {
      s.cgroupFd = open(options_.intoCgroup.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (s.cgroupFd < 0) failure_.Record("open", errno, options_.intoCgroup);
    }

    std::vector<Thread> workers(options_.concurrency);
    for (auto& w : workers) {
      w.shared = &s;
      w.latenciesUs.reserve(4096);
      w.childStack = mmap(nullptr, kChildStackBytes, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
      if (w.childStack == MAP_FAILED) {
        w.childStack = nullptr;
        failure_.Record("mmap", errno);
      }
    }
    int started = failure_.Happened() ? 0 : StartThreads(workers, kThreadStackBytes, ThreadMain, failure_);
    double start = s.gate.Release(started);
    s.deadline = start + options_.durationSeconds;
    seconds_ = JoinThreads(workers, started, start) - start;
    if (s.cgroupFd >= 0) close(s.cgroupFd);
    for (auto& w : workers) {
      if (w.childStack) munmap(w.childStack, kChildStackBytes);
      latenciesUs_.insert(latenciesUs_.end(), w.latenciesUs.begin(), w.latenciesUs.end());
    }
    stopped_ = owner_->stop.load();
  }

 private:
  Napi::Object Result(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    auto lat = Napi::Float64Array::New(env, latenciesUs_.size());
    std::copy(latenciesUs_.begin(), latenciesUs_.end(), lat.Data());
    result.Set("ops", Napi::Number::New(env, static_cast<double>(latenciesUs_.size())));
    result.Set("latenciesUs", lat);
    return result;
  }
  ChurnOptions options_;
  std::vector<double> latenciesUs_;
};


void ChurnRun::Init(Napi::Env env, Napi::Object exports) { Register(env, exports, "ChurnRun"); }

// new ChurnRun({ flags, concurrency, durationSeconds?, ops?, useUnshare?, chroot? })
ChurnRun::ChurnRun(const Napi::CallbackInfo& info) : ThreadedRun(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    throw Napi::TypeError::New(env, "ChurnRun expects an options object");
  }
  Napi::Object o = info[0].As<Napi::Object>();
  auto num = [&](const char* key, double fallback) {
    Napi::Value v = o.Get(key);
    return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback;
  };
  options_.flags = static_cast<int>(num("flags", 0));
  options_.concurrency = static_cast<int>(num("concurrency", 1));
  options_.durationSeconds = num("durationSeconds", 0);
  options_.ops = static_cast<uint64_t>(num("ops", 0));
  options_.useUnshare = o.Get("useUnshare").ToBoolean().Value();
  if (o.Get("chroot").IsString()) options_.chrootPath = o.Get("chroot").As<Napi::String>().Utf8Value();
  if (o.Get("intoCgroup").IsString()) options_.intoCgroup = o.Get("intoCgroup").As<Napi::String>().Utf8Value();
  if (o.Get("moveTo").IsArray()) {
    Napi::Array files = o.Get("moveTo").As<Napi::Array>();
    for (uint32_t i = 0; i < files.Length(); i++) options_.moveTo.push_back(files.Get(i).ToString().Utf8Value());
  }
#if !defined(__x86_64__)
  if (!options_.intoCgroup.empty()) throw Napi::Error::New(env, "intoCgroup (clone3 with CLONE_INTO_CGROUP) is implemented for x86_64 only");
#endif

  if ((options_.flags & ~kNamespaceFlags) != 0) {
    throw Napi::RangeError::New(env, "flags may hold only CLONE_NEW{CGROUP,IPC,NET,NS,PID,UTS}");
  }
  if (options_.concurrency < 1 || options_.concurrency > kMaxConcurrency) {
    throw Napi::RangeError::New(env, "concurrency must be 1.." + std::to_string(kMaxConcurrency));
  }
  if ((options_.ops == 0) == (options_.durationSeconds <= 0)) {
    throw Napi::RangeError::New(env, "give exactly one of durationSeconds > 0 or ops > 0");
  }
}

}  // namespace sockbench
