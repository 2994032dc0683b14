#pragma once
#include <napi.h>

namespace sockbench {
Napi::Value OpenTree(const Napi::CallbackInfo& info);
Napi::Value MakeNetns(const Napi::CallbackInfo& info);
}  // namespace sockbench
