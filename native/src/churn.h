#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "threadedRun.h"

namespace sockbench {

struct ChurnOptions {
  int flags = 0;             // CLONE_NEW* bits
  int concurrency = 1;       // worker threads
  double durationSeconds = 0;
  uint64_t ops = 0;          // total operations; 0 when bounded by time
  bool useUnshare = false;   // child calls unshare(flags) instead of being cloned into them
  std::string chrootPath;    // non-empty: the child then chroots here (and chdirs to /)
  std::string intoCgroup;    // non-empty: a cgroup2 directory the child is born in (clone3)
  std::vector<std::string> moveTo;  // cgroup.procs files the child writes itself into
};

// JS: const run = new ChurnRun(options); const result = await run.start(); run.stop();
class ChurnRun : public ThreadedRun<ChurnRun> {
 public:
  class Worker;
  // Defined where Worker is complete: registering start() instantiates its use.
  static void Init(Napi::Env env, Napi::Object exports);
  explicit ChurnRun(const Napi::CallbackInfo& info);

 private:
  ChurnOptions options_;
};

}  // namespace sockbench
