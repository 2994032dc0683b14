#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "threadedRun.h"

namespace sockbench {

// One file-system or cgroup call of a script. Paths and values may hold {t} (the worker
// thread's index), {n} (the operation's number within that thread) and {p} (the pid of the
// thread's holder process).
struct ScriptStep {
  // kEmpty: the file must read empty. kChroot / kUnchroot: enter path as the thread's root /
  // go back to the root the thread started with (each thread has its own fs_struct then).
  // kExec: run the program at path with args, output discarded; it must exit 0.
  enum Op { kMkdir, kRmdir, kWrite, kMount, kUmount, kEmpty, kChroot, kUnchroot, kExec } op;
  std::string path;
  std::string value;   // kWrite: what is written; kMount: the source
  std::string fstype;  // kMount
  std::string data;    // kMount
  unsigned long flags = 0;  // kMount: mount flags; kUmount: umount2 flags
  std::vector<std::string> args;  // kExec: argv[1..]
};

struct ScriptPhase {
  std::string name;
  std::vector<ScriptStep> steps;
};

struct ScriptOptions {
  int concurrency = 1;
  double durationSeconds = 0;
  uint64_t ops = 0;
  std::vector<ScriptStep> prepare;  // once per thread, before the clock starts
  std::vector<ScriptPhase> phases;  // each operation runs them in order, timing each
  std::vector<ScriptStep> cleanup;  // once per thread at the end, errors ignored
  bool holder = false;              // each thread keeps a waiting child, {p} in templates
};

// JS: const run = new ScriptRun(options); const result = await run.start(); run.stop();
class ScriptRun : public ThreadedRun<ScriptRun> {
 public:
  class Worker;
  // Defined where Worker is complete: registering start() instantiates its use.
  static void Init(Napi::Env env, Napi::Object exports);
  explicit ScriptRun(const Napi::CallbackInfo& info);

 private:
  ScriptOptions options_;
};

}  // namespace sockbench
