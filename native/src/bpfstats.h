#pragma once
#include <napi.h>

namespace sockbench {
Napi::Value EnableBpfStats(const Napi::CallbackInfo& info);
}  // namespace sockbench
