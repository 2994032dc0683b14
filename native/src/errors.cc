#include "errors.h"

#include <sched.h>
#include <string.h>

namespace sockbench {

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "E" + std::to_string(err);
}

Napi::Error SyscallError(Napi::Env env, const std::string& call, int err, const std::string& args) {
  std::string name = ErrnoName(err);
  std::string shown = args.empty() ? call : call + "(" + args + ")";
  Napi::Error error = Napi::Error::New(env, shown + " failed: " + strerror(err) + " (" + name + ")");
  error.Set("code", Napi::String::New(env, name));
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, call));
  return error;
}

std::string CloneFlagNames(int flags) {
  static const struct { int bit; const char* name; } kNames[] = {
      {CLONE_NEWCGROUP, "CLONE_NEWCGROUP"}, {CLONE_NEWIPC, "CLONE_NEWIPC"},
      {CLONE_NEWNET, "CLONE_NEWNET"},       {CLONE_NEWNS, "CLONE_NEWNS"},
      {CLONE_NEWPID, "CLONE_NEWPID"},       {CLONE_NEWUTS, "CLONE_NEWUTS"},
      {CLONE_NEWUSER, "CLONE_NEWUSER"},
  };
  std::string out;
  for (const auto& n : kNames) {
    if (flags & n.bit) out += (out.empty() ? "" : "|") + std::string(n.name);
  }
  return out.empty() ? "0" : out;
}

}  // namespace sockbench
