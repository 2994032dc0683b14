// mount(2) and umount2(2): mounts belong to the process's mount namespace, not to a thread, so
// unlike unshare or chroot they are safe from Node's own thread, or from libuv's pool. An
// unmount waits for an RCU grace period (milliseconds) before it returns: the engine's hot path
// takes its sandboxes' roots apart with umount2Async, so that wait is not the event loop's.
#include "mounts.h"

#include <errno.h>
#include <sys/mount.h>

#include <string>
#include <utility>

#include "errors.h"

namespace sockbench {
namespace {

// An absent, null or undefined argument becomes a null pointer, as mount(2) wants.
bool OptionalString(const Napi::Value& v, std::string* out) {
  if (!v.IsString()) return false;
  *out = v.As<Napi::String>().Utf8Value();
  return true;
}

class UmountWorker : public Napi::AsyncWorker {
 public:
  UmountWorker(Napi::Env env, std::string target, int flags)
      : Napi::AsyncWorker(env), target_(std::move(target)), flags_(flags), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    if (umount2(target_.c_str(), flags_) != 0) err_ = errno;
  }

  void OnOK() override {
    if (err_ != 0) deferred_.Reject(SyscallError(Env(), "umount2", err_, target_).Value());
    else deferred_.Resolve(Env().Undefined());
  }

 private:
  std::string target_;
  int flags_;
  Napi::Promise::Deferred deferred_;
  int err_ = 0;
};

}  // namespace

// mount(source|null, target, fstype|null, flags, data|null)
Napi::Value Mount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[1].IsString() || !info[3].IsNumber()) {
    throw Napi::TypeError::New(env, "mount(source, target, fstype, flags, data)");
  }
  std::string source, fstype, data;
  bool hasSource = OptionalString(info[0], &source);
  bool hasFstype = OptionalString(info[2], &fstype);
  bool hasData = info.Length() > 4 && OptionalString(info[4], &data);
  std::string target = info[1].As<Napi::String>().Utf8Value();
  unsigned long flags = static_cast<unsigned long>(info[3].As<Napi::Number>().Int64Value());
  if (mount(hasSource ? source.c_str() : nullptr, target.c_str(), hasFstype ? fstype.c_str() : nullptr,
            flags, hasData ? data.c_str() : nullptr) != 0) {
    throw SyscallError(env, "mount", errno, target);
  }
  return env.Undefined();
}

// umount2(target, flags)
Napi::Value Umount2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "umount2(target, flags)");
  std::string target = info[0].As<Napi::String>().Utf8Value();
  int flags = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  if (umount2(target.c_str(), flags) != 0) throw SyscallError(env, "umount2", errno, target);
  return env.Undefined();
}

// umount2Async(target, flags) -> Promise<void>, the call made on a libuv pool thread
Napi::Value Umount2Async(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "umount2Async(target, flags)");
  int flags = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  auto* worker = new UmountWorker(env, info[0].As<Napi::String>().Utf8Value(), flags);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace sockbench
