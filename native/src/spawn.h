#pragma once
#include <napi.h>

namespace sockbench {
Napi::Value Spawn(const Napi::CallbackInfo& info);
}  // namespace sockbench
