#pragma once
#include <napi.h>

#include <atomic>
#include <cstdint>
#include <string>

namespace sockbench {

struct ChurnOptions {
  int flags = 0;             // CLONE_NEW* bits
  int concurrency = 1;       // worker threads
  double durationSeconds = 0;
  uint64_t ops = 0;          // total operations; 0 when bounded by time
  bool useUnshare = false;   // child calls unshare(flags) instead of being cloned into them
  std::string chrootPath;    // non-empty: the child then chroots here (and chdirs to /)
};

// JS: const run = new ChurnRun(options); const result = await run.start(); run.stop();
class ChurnRun : public Napi::ObjectWrap<ChurnRun> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports);
  explicit ChurnRun(const Napi::CallbackInfo& info);

  std::atomic<bool> stop{false};
  bool running = false;
  // Drops the reference that kept this object alive while its threads ran.
  void Release() { self_.Reset(); }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);

  ChurnOptions options_;
  bool started_ = false;
  Napi::ObjectReference self_;
};

}  // namespace sockbench
