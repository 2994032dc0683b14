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
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "errors.h"

namespace sockbench {
namespace {

constexpr size_t kChildStackBytes = 64 * 1024;
constexpr size_t kThreadStackBytes = 256 * 1024;
constexpr int kMaxConcurrency = 4096;
// What every churn child shares with its parent thread; see the header comment.
constexpr int kShareFlags = CLONE_VM | CLONE_VFORK | CLONE_FILES;
constexpr int kNamespaceFlags =
    CLONE_NEWCGROUP | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS;

double NowSeconds() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct ChildArgs {
  int unshareFlags;        // 0 when the namespaces come from clone's own flags
  const char* chrootPath;  // null: no chroot
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
  uint64_t maxOps = 0;      // 0: bounded by time
  double deadline = 0;      // absolute; valid once started
  std::atomic<bool>* stop = nullptr;
  std::atomic<uint64_t> claimed{0};
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::atomic<bool> failed{false};
  std::string failedCall, failedArgs;
  int failedErrno = 0;
  pthread_mutex_t failLock = PTHREAD_MUTEX_INITIALIZER;

  void Fail(const std::string& call, int err, const std::string& args = "") {
    pthread_mutex_lock(&failLock);
    if (!failed.load()) {
      failedCall = call;
      failedArgs = args;
      failedErrno = err;
      failed.store(true);
    }
    pthread_mutex_unlock(&failLock);
  }
};

struct Worker {
  Shared* shared = nullptr;
  pthread_t thread{};
  std::vector<double> latenciesUs;
  void* childStack = nullptr;
  double finishedAt = 0;
};

void* WorkerMain(void* raw) {
  auto* w = static_cast<Worker*>(raw);
  Shared& s = *w->shared;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);

  char* stackTop = static_cast<char*>(w->childStack) + kChildStackBytes;
  ChildArgs args{s.unshareFlags, s.chrootPath, 0, nullptr};

  s.ready.fetch_add(1);
  while (!s.go.load(std::memory_order_acquire)) sched_yield();

  while (!s.stop->load(std::memory_order_relaxed) && !s.failed.load(std::memory_order_relaxed)) {
    if (s.maxOps != 0 && s.claimed.fetch_add(1) >= s.maxOps) break;
    args.error = 0;
    double t0 = NowSeconds();
    pid_t pid = clone(ChildMain, stackTop, kShareFlags | s.cloneFlags, &args);
    if (pid < 0) {
      s.Fail("clone", errno, CloneFlagNames(s.cloneFlags));
      break;
    }
    int status = 0;
    while (waitpid(pid, &status, __WALL) < 0) {
      if (errno != EINTR) {
        s.Fail("waitpid", errno);
        break;
      }
    }
    double t1 = NowSeconds();
    if (args.error != 0) {
      bool inChroot = std::string(args.failedCall) == "chroot";
      s.Fail(args.failedCall, args.error, inChroot ? std::string(s.chrootPath) : CloneFlagNames(s.unshareFlags));
      break;
    }
    w->latenciesUs.push_back((t1 - t0) * 1e6);
    if (s.maxOps == 0 && t1 >= s.deadline) break;
  }
  w->finishedAt = NowSeconds();
  return nullptr;
}

class ChurnWorker : public Napi::AsyncWorker {
 public:
  ChurnWorker(Napi::Env env, ChurnRun* owner, const ChurnOptions& options)
      : Napi::AsyncWorker(env), owner_(owner), options_(options),
        deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    Shared s;
    s.stop = &owner_->stop;
    s.maxOps = options_.ops;
    if (options_.useUnshare) {
      s.unshareFlags = options_.flags;
    } else {
      s.cloneFlags = options_.flags;
    }
    if (!options_.chrootPath.empty()) s.chrootPath = options_.chrootPath.c_str();

    std::vector<Worker> workers(options_.concurrency);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, kThreadStackBytes);
    int started = 0;
    for (auto& w : workers) {
      w.shared = &s;
      w.latenciesUs.reserve(4096);
      w.childStack = mmap(nullptr, kChildStackBytes, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
      if (w.childStack == MAP_FAILED) {
        w.childStack = nullptr;
        s.Fail("mmap", errno);
        break;
      }
      int err = pthread_create(&w.thread, &attr, WorkerMain, &w);
      if (err != 0) {
        s.Fail("pthread_create", err);
        break;
      }
      started++;
    }
    pthread_attr_destroy(&attr);

    while (s.ready.load() < started) sched_yield();
    double start = NowSeconds();
    s.deadline = start + options_.durationSeconds;
    s.go.store(true, std::memory_order_release);

    double end = start;
    for (int i = 0; i < started; i++) {
      pthread_join(workers[i].thread, nullptr);
      if (workers[i].finishedAt > end) end = workers[i].finishedAt;
    }
    for (auto& w : workers) {
      if (w.childStack) munmap(w.childStack, kChildStackBytes);
      latenciesUs_.insert(latenciesUs_.end(), w.latenciesUs.begin(), w.latenciesUs.end());
    }
    seconds_ = end - start;
    stopped_ = owner_->stop.load();
    if (s.failed.load()) {
      failedCall_ = s.failedCall;
      failedArgs_ = s.failedArgs;
      failedErrno_ = s.failedErrno;
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    owner_->running = false;
    owner_->Release();
    if (failedErrno_ != 0) {
      deferred_.Reject(SyscallError(env, failedCall_, failedErrno_, failedArgs_).Value());
      return;
    }
    Napi::Object result = Napi::Object::New(env);
    auto lat = Napi::Float64Array::New(env, latenciesUs_.size());
    std::copy(latenciesUs_.begin(), latenciesUs_.end(), lat.Data());
    result.Set("ops", Napi::Number::New(env, static_cast<double>(latenciesUs_.size())));
    result.Set("seconds", Napi::Number::New(env, seconds_));
    result.Set("latenciesUs", lat);
    result.Set("stopped", Napi::Boolean::New(env, stopped_));
    deferred_.Resolve(result);
  }

  void OnError(const Napi::Error& e) override {
    owner_->running = false;
    owner_->Release();
    deferred_.Reject(e.Value());
  }

 private:
  ChurnRun* owner_;
  ChurnOptions options_;
  Napi::Promise::Deferred deferred_;
  std::vector<double> latenciesUs_;
  double seconds_ = 0;
  bool stopped_ = false;
  std::string failedCall_, failedArgs_;
  int failedErrno_ = 0;
};

}  // namespace

Napi::Object ChurnRun::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "ChurnRun", {
      InstanceMethod("start", &ChurnRun::Start),
      InstanceMethod("stop", &ChurnRun::Stop),
  });
  exports.Set("ChurnRun", ctor);
  return exports;
}

// new ChurnRun({ flags, concurrency, durationSeconds?, ops?, useUnshare?, chroot? })
ChurnRun::ChurnRun(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ChurnRun>(info) {
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

Napi::Value ChurnRun::Start(const Napi::CallbackInfo& info) {
  if (running || started_) {
    throw Napi::Error::New(info.Env(), "a ChurnRun can be started once");
  }
  started_ = running = true;
  auto* worker = new ChurnWorker(info.Env(), this, options_);
  Napi::Promise promise = worker->Promise();
  // Keep this object alive while the native threads use it.
  self_ = Napi::Persistent(info.This().As<Napi::Object>());
  worker->Queue();
  return promise;
}

Napi::Value ChurnRun::Stop(const Napi::CallbackInfo& info) {
  stop.store(true);
  return info.Env().Undefined();
}

}  // namespace sockbench
