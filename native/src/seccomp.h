#pragma once
#include <napi.h>

namespace sockbench {
Napi::Value SeccompFilter(const Napi::CallbackInfo& info);
}  // namespace sockbench
