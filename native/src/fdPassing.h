#pragma once
#include <napi.h>

namespace sockbench {
Napi::Value SendFds(const Napi::CallbackInfo& info);
Napi::Value PeerCred(const Napi::CallbackInfo& info);
}  // namespace sockbench
