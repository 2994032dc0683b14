// mount(2) and umount2(2) from Node's own thread: mounts belong to the process's mount
// namespace, not to a thread, so unlike unshare or chroot they are safe to call here.
#include "mounts.h"

#include <errno.h>
#include <sys/mount.h>

#include <string>

#include "errors.h"

namespace sockbench {
namespace {

// An absent, null or undefined argument becomes a null pointer, as mount(2) wants.
bool OptionalString(const Napi::Value& v, std::string* out) {
  if (!v.IsString()) return false;
  *out = v.As<Napi::String>().Utf8Value();
  return true;
}

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

}  // namespace sockbench
