// What a sandbox's isolation needs from Node's side that Node cannot do itself.
//
// openTree(path): a detached copy of the mount tree at path (open_tree with OPEN_TREE_CLONE),
// as a descriptor. A zygote, which lives in a user and mount namespace of its own, is handed
// this instead of a plain directory descriptor of the new container's root: `..` from a
// directory descriptor leads up the host's mount tree to the host's root, whereas a detached
// tree has no parent to climb to, and the zygote's fork attaches it in its own mount namespace.
//
// makeNetns(count): network namespaces with loopback up, made ahead of need on a thread of
// libuv's pool (unshare(CLONE_NEWNET) acts on the calling thread alone, which then goes back
// with setns), and handed over as descriptors. A sandbox joins one with setns, microseconds,
// instead of creating one, about a millisecond; nothing but the descriptors holds a pooled
// namespace, so a killed worker leaves none behind.
#include "namespaces.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "errors.h"

#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

namespace sockbench {

// openTree(path) -> fd of a detached, recursive copy of the mounts at path (close-on-exec)
Napi::Value OpenTree(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "openTree(path)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  long fd = syscall(SYS_open_tree, AT_FDCWD, path.c_str(), OPEN_TREE_CLONE | AT_RECURSIVE | OPEN_TREE_CLOEXEC);
  if (fd < 0) throw SyscallError(env, "open_tree", errno, path);
  return Napi::Number::New(env, static_cast<double>(fd));
}

namespace {

class NetnsWorker : public Napi::AsyncWorker {
 public:
  NetnsWorker(Napi::Env env, int count)
      : Napi::AsyncWorker(env), count_(count), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0) return Fail("open /proc/thread-self/ns/net");
    for (int i = 0; i < count_; i++) {
      if (unshare(CLONE_NEWNET) != 0) {
        Fail("unshare(CLONE_NEWNET)");
        break;
      }
      int ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
      bool up = ns >= 0 && LoopbackUp();
      int err = errno;
      // Back home before anything else: this thread serves the rest of libuv's pool.
      if (setns(home, CLONE_NEWNET) != 0) {
        // A pool thread stranded in a sandbox's namespace would be worse than a crash.
        abort();
      }
      if (!up) {
        errno = err;
        if (ns >= 0) close(ns);
        Fail(ns < 0 ? "open the new network namespace" : "bring loopback up");
        break;
      }
      fds_.push_back(ns);
    }
    close(home);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) {
      for (int fd : fds_) close(fd);
      deferred_.Reject(SyscallError(env, call_, err_).Value());
      return;
    }
    Napi::Array out = Napi::Array::New(env, fds_.size());
    for (size_t i = 0; i < fds_.size(); i++) out.Set(i, Napi::Number::New(env, fds_[i]));
    deferred_.Resolve(out);
  }

 private:
  void Fail(const char* call) {
    err_ = errno;
    call_ = call;
  }

  static bool LoopbackUp() {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return false;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    bool ok = ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
    if (ok) {
      ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
      ok = ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
    }
    int err = errno;
    close(s);
    errno = err;
    return ok;
  }

  int count_;
  Napi::Promise::Deferred deferred_;
  std::vector<int> fds_;
  int err_ = 0;
  std::string call_;
};

}  // namespace

// makeNetns(count) -> Promise<fd[]>
Napi::Value MakeNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int count = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  if (count < 1 || count > 1024) throw Napi::RangeError::New(env, "makeNetns: count is 1 to 1024");
  auto* worker = new NetnsWorker(env, count);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace sockbench
