#pragma once
#include <napi.h>

namespace sockbench {
Napi::Value Mount(const Napi::CallbackInfo& info);
Napi::Value Umount2(const Napi::CallbackInfo& info);
Napi::Value Umount2Async(const Napi::CallbackInfo& info);
}  // namespace sockbench
