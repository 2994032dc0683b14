#pragma once
#include <napi.h>

namespace sockbench {
Napi::Value LambdaFiles(const Napi::CallbackInfo& info);
}  // namespace sockbench
