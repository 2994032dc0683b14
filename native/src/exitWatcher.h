#pragma once
#include <napi.h>

namespace sockbench {
// Sets exports.watchExit: watchExit(pid) -> Promise<{ exitCode, signal }>, one watcher per
// Node environment (main thread or worker).
void InitExitWatcher(Napi::Env env, Napi::Object exports);
}  // namespace sockbench
