// seccompFilter(spec): compiles an allowlist of system calls into the classic BPF program the
// kernel runs on every system call a sandbox makes (seccomp's SECCOMP_SET_MODE_FILTER), and
// returns it as bytes: an array of struct sock_filter, 8 bytes each, in this machine's order.
//
// libseccomp does the compiling: it knows each architecture's call numbers, lays 64-bit
// argument comparisons out as the 32-bit loads BPF can make, and sorts the calls into a binary
// search, so a call costs about log2(allowed calls) jumps instead of one per allowed call.
// Those are the parts a hand-written program gets wrong.
//
// The bytes are returned rather than loaded because the filter goes on processes other than
// this one: a spawned child loads it (spawn's `seccomp` step) and a zygote's Python fork loads
// it through prctl. engine/seccomp.ts compiles each variant once per process.
//
// Only this machine's architecture (x86_64) is in the filter. A call made through another ABI
// the kernel accepts (i386's int 0x80; x32 where enabled) gets the default errno, as any call
// not allowed does. Docker instead repeats the allowlist for i386 and x32; no handler here runs
// 32-bit code, and i386's socketcall and ipc multiplexers hide a socket's family behind a
// pointer, where the socket rules could not look.
#include "seccomp.h"

#include <errno.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace sockbench {
namespace {

// Frees the libseccomp context on every way out, thrown errors included.
struct Context {
  scmp_filter_ctx ctx;
  ~Context() { seccomp_release(ctx); }
};

// An errno a filter may return: the kernel passes 1..4095 back as -errno.
int ErrnoField(Napi::Env env, Napi::Value v, const std::string& what) {
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 1 && d <= 4095 && d == std::floor(d))) throw Napi::TypeError::New(env, what + " must be an errno from 1 to 4095");
  return static_cast<int>(d);
}

// An argument value or mask: a bigint, or a number that is an exact non-negative integer.
uint64_t U64Field(Napi::Env env, Napi::Value v, const std::string& what) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (lossless) return x;
  } else if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d >= 0 && d <= 9007199254740991.0 && d == std::floor(d)) return static_cast<uint64_t>(d);
  }
  throw Napi::TypeError::New(env, what + " must be an integer from 0 to 2^64-1 (a bigint above 2^53)");
}

scmp_arg_cmp ParseCondition(Napi::Env env, Napi::Value v, const std::string& where) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, where + ": each condition must be an object { index, op, value, mask? }");
  Napi::Object c = v.As<Napi::Object>();
  double index = c.Get("index").IsNumber() ? c.Get("index").As<Napi::Number>().DoubleValue() : -1;
  if (!(index >= 0 && index <= 5 && index == std::floor(index))) throw Napi::TypeError::New(env, where + ": index must be an argument number from 0 to 5");
  std::string op = c.Get("op").IsString() ? c.Get("op").As<Napi::String>().Utf8Value() : "";
  static const std::map<std::string, scmp_compare> kOps = {
      {"==", SCMP_CMP_EQ}, {"!=", SCMP_CMP_NE}, {"<", SCMP_CMP_LT}, {"<=", SCMP_CMP_LE},
      {">", SCMP_CMP_GT},  {">=", SCMP_CMP_GE}, {"&==", SCMP_CMP_MASKED_EQ},
  };
  auto found = kOps.find(op);
  if (found == kOps.end()) throw Napi::TypeError::New(env, where + ": op must be one of == != < <= > >= &== (not '" + op + "')");
  uint64_t value = U64Field(env, c.Get("value"), where + ": value");
  bool masked = found->second == SCMP_CMP_MASKED_EQ;
  if (masked != !c.Get("mask").IsUndefined()) throw Napi::TypeError::New(env, where + ": a mask goes with op &== and only with it");
  // libseccomp's masked comparison takes the mask first and the value second.
  if (masked) return scmp_arg_cmp{static_cast<unsigned>(index), SCMP_CMP_MASKED_EQ, U64Field(env, c.Get("mask"), where + ": mask"), value};
  return scmp_arg_cmp{static_cast<unsigned>(index), found->second, value, 0};
}

std::string MachineName() {
  struct utsname u;
  return uname(&u) == 0 ? u.machine : "this machine's architecture";
}

// The filter as the kernel takes it. libseccomp (2.5) writes it only to a descriptor.
std::vector<uint8_t> ExportBpf(Napi::Env env, scmp_filter_ctx ctx) {
  int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
  if (fd < 0) throw Napi::Error::New(env, std::string("seccomp filter: memfd_create failed: ") + strerror(errno));
  int rc = seccomp_export_bpf(ctx, fd);
  off_t size = rc == 0 ? lseek(fd, 0, SEEK_END) : -1;
  std::vector<uint8_t> bytes(size > 0 ? static_cast<size_t>(size) : 0);
  ssize_t got = size > 0 ? pread(fd, bytes.data(), bytes.size(), 0) : -1;
  int err = rc < 0 ? -rc : errno;
  close(fd);
  if (got != static_cast<ssize_t>(bytes.size()) || bytes.empty())
    throw Napi::Error::New(env, std::string("seccomp filter: exporting the BPF program failed: ") + strerror(err));
  return bytes;
}

}  // namespace

// seccompFilter({ defaultErrno, rules: [{ names, errno?, args? }] }) -> Buffer
Napi::Value SeccompFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject() || !info[0].As<Napi::Object>().Get("rules").IsArray())
    throw Napi::TypeError::New(env, "seccompFilter expects { defaultErrno, rules: [{ names, errno?, args? }] }");
  Napi::Object spec = info[0].As<Napi::Object>();
  uint32_t refuse = SCMP_ACT_ERRNO(ErrnoField(env, spec.Get("defaultErrno"), "defaultErrno"));
  Context c{seccomp_init(refuse)};
  if (!c.ctx) throw Napi::Error::New(env, "seccomp filter: libseccomp could not make a filter context");
  // A call through a foreign ABI is refused like any call not allowed: an errno, not a kill.
  if (seccomp_attr_set(c.ctx, SCMP_FLTATR_ACT_BADARCH, refuse) != 0 || seccomp_attr_set(c.ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2) != 0)
    throw Napi::Error::New(env, "seccomp filter: this libseccomp lacks the bad-architecture action or binary-tree layout (needs 2.5 or newer)");

  // libseccomp keeps the first action it was given for a call and silently drops a different
  // later one; a profile that says two things about a call is refused instead.
  std::map<int, uint32_t> actionOf;
  Napi::Array rules = spec.Get("rules").As<Napi::Array>();
  for (uint32_t r = 0; r < rules.Length(); r++) {
    std::string where = "seccomp rule " + std::to_string(r);
    if (!rules.Get(r).IsObject() || !rules.Get(r).As<Napi::Object>().Get("names").IsArray())
      throw Napi::TypeError::New(env, where + ": needs names, an array of system call names");
    Napi::Object rule = rules.Get(r).As<Napi::Object>();
    uint32_t action = rule.Get("errno").IsUndefined() ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(ErrnoField(env, rule.Get("errno"), where + ": errno"));
    std::vector<scmp_arg_cmp> args;
    if (!rule.Get("args").IsUndefined()) {
      if (!rule.Get("args").IsArray()) throw Napi::TypeError::New(env, where + ": args must be an array of conditions");
      Napi::Array a = rule.Get("args").As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) args.push_back(ParseCondition(env, a.Get(i), where));
    }
    Napi::Array names = rule.Get("names").As<Napi::Array>();
    for (uint32_t n = 0; n < names.Length(); n++) {
      if (!names.Get(n).IsString()) throw Napi::TypeError::New(env, where + ": names must be strings");
      std::string name = names.Get(n).As<Napi::String>().Utf8Value();
      int nr = seccomp_syscall_resolve_name(name.c_str());
      if (nr == __NR_SCMP_ERROR) throw Napi::Error::New(env, "seccomp profile: unknown system call '" + name + "'");
      // libseccomp numbers calls of other architectures negatively: one named here would do nothing.
      if (nr < 0) throw Napi::Error::New(env, "seccomp profile: '" + name + "' is not a system call on " + MachineName());
      if (action == refuse) throw Napi::Error::New(env, "seccomp profile: the rule for '" + name + "' refuses with the default errno; leave it out");
      auto seen = actionOf.emplace(nr, action);
      if (seen.first->second != action) throw Napi::Error::New(env, "seccomp profile: '" + name + "' is given two different actions");
      int rc = seccomp_rule_add_exact_array(c.ctx, action, nr, static_cast<unsigned>(args.size()), args.data());
      if (rc < 0) {
        std::string hint = rc == -EINVAL ? " (libseccomp 2.5 takes one condition per argument in a rule)" : "";
        throw Napi::Error::New(env, "seccomp profile: libseccomp refused the rule for '" + name + "': " + strerror(-rc) + hint);
      }
    }
  }
  std::vector<uint8_t> bytes = ExportBpf(env, c.ctx);
  return Napi::Buffer<uint8_t>::Copy(env, bytes.data(), bytes.size());
}

}  // namespace sockbench
