// BPF_ENABLE_STATS: makes the kernel time every BPF program run (run_time_ns, run_cnt in the
// program's fdinfo) for as long as the returned fd is open. Unlike the kernel.bpf_stats_enabled
// sysctl, a crash cannot leave it on: the kernel turns it off when the fd closes.
#include "bpfstats.h"

#include <errno.h>
#include <linux/bpf.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "errors.h"

namespace sockbench {

Napi::Value EnableBpfStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.enable_stats.type = BPF_STATS_RUN_TIME;
  long fd = syscall(SYS_bpf, BPF_ENABLE_STATS, &attr, sizeof(attr));
  if (fd < 0) throw SyscallError(env, "bpf", errno, "BPF_ENABLE_STATS");
  return Napi::Number::New(env, static_cast<double>(fd));
}

}  // namespace sockbench
