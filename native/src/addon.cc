// The sockbench native addon: the syscalls Node cannot make, and the measurement loops that
// must run in native threads. native/index.ts is its typed front door.
#include <napi.h>
#include <sched.h>
#include <sys/mount.h>

#include "bpfstats.h"
#include "churn.h"
#include "exitWatcher.h"
#include "fdPassing.h"
#include "lambdaFiles.h"
#include "mounts.h"
#include "namespaces.h"
#include "scriptRun.h"
#include "seccomp.h"
#include "spawn.h"

namespace sockbench {

static Napi::Object Constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  auto set = [&](const char* name, double v) { c.Set(name, Napi::Number::New(env, v)); };
  set("CLONE_NEWCGROUP", CLONE_NEWCGROUP);
  set("CLONE_NEWIPC", CLONE_NEWIPC);
  set("CLONE_NEWNET", CLONE_NEWNET);
  set("CLONE_NEWNS", CLONE_NEWNS);
  set("CLONE_NEWPID", CLONE_NEWPID);
  set("CLONE_NEWUTS", CLONE_NEWUTS);
  set("CLONE_NEWUSER", CLONE_NEWUSER);
  set("MS_RDONLY", MS_RDONLY);
  set("MS_NOSUID", MS_NOSUID);
  set("MS_NODEV", MS_NODEV);
  set("MS_NOEXEC", MS_NOEXEC);
  set("MS_REMOUNT", MS_REMOUNT);
  set("MS_BIND", MS_BIND);
  set("MS_REC", MS_REC);
  set("MS_PRIVATE", MS_PRIVATE);
  set("MS_SLAVE", MS_SLAVE);
  set("MNT_DETACH", MNT_DETACH);
  return c;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ChurnRun::Init(env, exports);
  ScriptRun::Init(env, exports);
  exports.Set("spawn", Napi::Function::New(env, Spawn));
  InitExitWatcher(env, exports);
  exports.Set("sendFds", Napi::Function::New(env, SendFds));
  exports.Set("peerCred", Napi::Function::New(env, PeerCred));
  exports.Set("mount", Napi::Function::New(env, Mount));
  exports.Set("umount2", Napi::Function::New(env, Umount2));
  exports.Set("umount2Async", Napi::Function::New(env, Umount2Async));
  exports.Set("openTree", Napi::Function::New(env, OpenTree));
  exports.Set("makeNetns", Napi::Function::New(env, MakeNetns));
  exports.Set("enableBpfStats", Napi::Function::New(env, EnableBpfStats));
  exports.Set("lambdaFiles", Napi::Function::New(env, LambdaFiles));
  exports.Set("seccompFilter", Napi::Function::New(env, SeccompFilter));
  exports.Set("constants", Constants(env));
  return exports;
}

NODE_API_MODULE(sockbench_native, Init)

}  // namespace sockbench
