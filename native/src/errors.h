// Kernel errors cross into JavaScript as Error objects that keep what a caller needs
// to decide (errno, its name, the call that failed), not only a message.
#pragma once
#include <napi.h>
#include <string>

namespace sockbench {

// "EPERM" for 1, and so on; "E<number>" when the C library has no name for it.
std::string ErrnoName(int err);

// An Error whose message reads "<call>(<args>) failed: <strerror> (<ENAME>)", with .code,
// .errno and .syscall (the bare call name) set.
Napi::Error SyscallError(Napi::Env env, const std::string& call, int err, const std::string& args = "");

// Names the CLONE_NEW* bits of flags as "CLONE_NEWNET|CLONE_NEWPID" for messages.
std::string CloneFlagNames(int flags);

}  // namespace sockbench
