// watchExit(pid): a promise for a child's exit that holds no libuv pool thread while it waits.
// watchExit(pid, {reap: false}) watches a process that is not our child (a zygote's fork):
// its pidfd turns readable at its exit too, but only its parent learns the status.
//
// Waiting in libuv's pool would park one of its four threads in poll() per child; an engine with
// dozens of sandboxes alive would starve every fs call behind them. Here one native thread per Node
// environment, started on first use, waits in epoll_wait on a pidfd per watched child:
// - the JS thread opens the pidfd (so a missing pid rejects at once), adds it to the epoll
//   set (safe while the watcher is in epoll_wait), keeps the promise in a map only it
//   touches, and closes the pidfd when the result arrives;
// - the watcher thread, when a pidfd turns readable, reaps the child with waitid(P_PIDFD),
//   takes the pidfd out of the set (explicitly: a spawn()ed child may hold a copy of it, and
//   the registration lives as long as any copy), and hands the result to the JS thread via
//   one shared thread-safe function;
// - that function holds the event loop open only while a watch is pending (Ref at 0 -> 1,
//   Unref at 1 -> 0), so a process with nothing to wait for still exits by itself;
// - at environment teardown a cleanup hook wakes the thread through an eventfd in the set,
//   joins it and releases the function, before Node closes the function itself.
#include "exitWatcher.h"

#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "errors.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

namespace sockbench {
namespace {

// One reaped (or unreapable) child, from the watcher thread to the JS thread.
struct Exit {
  uint32_t id;
  int fd;
  int err;     // waitid's errno, 0 when it reaped the child
  int code;    // si_code: CLD_EXITED, CLD_KILLED, CLD_DUMPED
  int status;  // si_status: the exit code or the signal
};

class ExitWatcher;
void CallJs(Napi::Env env, Napi::Function, ExitWatcher* watcher, Exit* exit);
using ExitFunction = Napi::TypedThreadSafeFunction<ExitWatcher, Exit, CallJs>;

constexpr uint64_t kStopKey = ~uint64_t{0};
constexpr uint32_t kNoReap = uint32_t{1} << 31;
constexpr int kMaxEvents = 64;

class ExitWatcher {
 public:
  // JS thread.
  Napi::Value Watch(Napi::Env env, pid_t pid, bool reap) {
    Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
    Napi::Promise promise = deferred.Promise();
    if (stopped_) {
      deferred.Reject(Napi::Error::New(env, "watchExit: the environment is shutting down").Value());
      return promise;
    }
    if (!started_) {
      try {
        Start(env);
      } catch (const Napi::Error& e) {
        deferred.Reject(e.Value());
        return promise;
      }
    }
    int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0) {
      deferred.Reject(SyscallError(env, "pidfd_open", errno, std::to_string(pid)).Value());
      return promise;
    }
    // The id's top bit says "do not reap" to the watcher thread.
    uint32_t id = (nextId_++ & ~kNoReap) | (reap ? 0 : kNoReap);
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.u64 = (static_cast<uint64_t>(id) << 32) | static_cast<uint32_t>(fd);
    // The result can only be delivered on this thread, so it cannot overtake the insert below.
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      int err = errno;
      close(fd);
      deferred.Reject(SyscallError(env, "epoll_ctl", err, "EPOLL_CTL_ADD, pidfd of " + std::to_string(pid)).Value());
      return promise;
    }
    pending_.emplace(id, Pending{deferred, fd});
    if (pending_.size() == 1) exitFunction_.Ref(env);
    return promise;
  }

  // JS thread, through the thread-safe function.
  void Deliver(Napi::Env env, std::unique_ptr<Exit> exit) {
    auto it = pending_.find(exit->id);
    if (it == pending_.end()) return;
    Napi::Promise::Deferred deferred = it->second.deferred;
    close(it->second.fd);
    pending_.erase(it);
    if (pending_.empty()) exitFunction_.Unref(env);
    if (exit->err != 0) {
      deferred.Reject(SyscallError(env, "waitid", exit->err, "P_PIDFD").Value());
      return;
    }
    bool exited = exit->code == CLD_EXITED;
    bool signaled = exit->code == CLD_KILLED || exit->code == CLD_DUMPED;
    Napi::Object r = Napi::Object::New(env);
    r.Set("exitCode", exited ? Napi::Number::New(env, exit->status) : env.Null());
    r.Set("signal", signaled ? Napi::Number::New(env, exit->status) : env.Null());
    deferred.Resolve(r);
  }

  // Cleanup hook, registered once the thread runs (so after the thread-safe function's own
  // hook, and hooks run last-registered first): stop and join the thread while the function
  // still exists, then let it go.
  static void Stop(void* arg) {
    auto* self = static_cast<ExitWatcher*>(arg);
    self->stopped_ = true;
    uint64_t one = 1;
    ssize_t n;
    do n = write(self->stopfd_, &one, sizeof one); while (n < 0 && errno == EINTR);
    if (self->thread_.joinable()) self->thread_.join();
    self->exitFunction_.Release();
    for (auto& [id, p] : self->pending_) close(p.fd);
    self->pending_.clear();
    close(self->epfd_);
    close(self->stopfd_);
  }

  // Cleanup hook registered at module load, so it runs after every other one of ours.
  static void Delete(void* arg) { delete static_cast<ExitWatcher*>(arg); }

 private:
  struct Pending {
    Napi::Promise::Deferred deferred;
    int fd;
  };

  void Start(Napi::Env env) {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) throw SyscallError(env, "epoll_create1", errno);
    stopfd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stopfd_ < 0) {
      int err = errno;
      close(epfd_);
      throw SyscallError(env, "eventfd", err);
    }
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.u64 = kStopKey;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, stopfd_, &ev) != 0) {
      int err = errno;
      close(epfd_);
      close(stopfd_);
      throw SyscallError(env, "epoll_ctl", err, "EPOLL_CTL_ADD, eventfd");
    }
    exitFunction_ = ExitFunction::New(env, "sockbench.watchExit", 0, 1, this);
    exitFunction_.Unref(env);  // Ref'd only while a watch is pending.
    // The thread takes no signals: Node's handlers belong on Node's threads.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
      thread_ = std::thread([this] { Loop(); });
    } catch (const std::system_error& e) {
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      exitFunction_.Release();
      close(epfd_);
      close(stopfd_);
      throw SyscallError(env, "pthread_create", e.code().value());
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    napi_add_env_cleanup_hook(env, Stop, this);
    started_ = true;
  }

  // The watcher thread.
  void Loop() {
    struct epoll_event events[kMaxEvents];
    for (;;) {
      int n = epoll_wait(epfd_, events, kMaxEvents, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // only a broken epoll fd gets here
      }
      for (int i = 0; i < n; i++) {
        uint64_t key = events[i].data.u64;
        if (key == kStopKey) return;
        auto* exit = new Exit{static_cast<uint32_t>(key >> 32), static_cast<int>(static_cast<uint32_t>(key)), 0, 0, 0};
        if (!(exit->id & kNoReap)) {
          siginfo_t info = {};
          int rc;
          // Readable means the child is a zombie, so this does not block.
          do rc = waitid(static_cast<idtype_t>(P_PIDFD), exit->fd, &info, WEXITED | __WALL);
          while (rc < 0 && errno == EINTR);
          if (rc < 0) exit->err = errno;
          exit->code = info.si_code;
          exit->status = info.si_status;
        }
        epoll_ctl(epfd_, EPOLL_CTL_DEL, exit->fd, nullptr);
        // The queue is unbounded, so this never blocks; it fails only while Node closes it.
        if (exitFunction_.BlockingCall(exit) != napi_ok) delete exit;
      }
    }
  }

  int epfd_ = -1;
  int stopfd_ = -1;
  bool started_ = false;
  bool stopped_ = false;
  std::thread thread_;
  ExitFunction exitFunction_;
  uint32_t nextId_ = 0;
  std::unordered_map<uint32_t, Pending> pending_;  // JS thread only
};

void CallJs(Napi::Env env, Napi::Function, ExitWatcher* watcher, Exit* exit) {
  std::unique_ptr<Exit> owned(exit);
  // A null env: Node is tearing the function down with results still queued; the watcher
  // may already be gone, and Stop() closed the pidfds.
  if (env == nullptr || watcher == nullptr || exit == nullptr) return;
  watcher->Deliver(env, std::move(owned));
}

Napi::Value WatchExit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "watchExit expects a pid");
  bool reap = true;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Value r = info[1].As<Napi::Object>().Get("reap");
    if (!r.IsUndefined()) reap = r.ToBoolean().Value();
  }
  double pid = info[0].As<Napi::Number>().DoubleValue();
  if (!(pid > 0 && pid <= 0x7fffffff && pid == static_cast<double>(static_cast<int32_t>(pid))))
    throw Napi::TypeError::New(env, "watchExit expects a positive integer pid");
  return static_cast<ExitWatcher*>(info.Data())->Watch(env, static_cast<pid_t>(pid), reap);
}

}  // namespace

void InitExitWatcher(Napi::Env env, Napi::Object exports) {
  auto* watcher = new ExitWatcher();
  napi_add_env_cleanup_hook(env, ExitWatcher::Delete, watcher);
  exports.Set("watchExit", Napi::Function::New(env, WatchExit, "watchExit", watcher));
}

}  // namespace sockbench
