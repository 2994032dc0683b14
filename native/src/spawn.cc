// spawn(): start a child that performs a list of namespace and file-system steps before it
// execs a program or holds (waits to be killed), and report which step failed and why.
//
// The steps run in the child because unshare(CLONE_NEWNS), setns() and chroot() act on the
// calling thread or the whole process, and Node is multi-threaded. Everything the child
// needs is marshalled before the clone, and the child makes only async-signal-safe calls.
// A close-on-exec pipe tells the parent the outcome: EOF means exec succeeded, a record
// names the failed step, the call within it and errno, or says the child reached `hold`.
//
// Besides namespaces and mounts, a child can join cgroups (`write` "0" to cgroup.procs, or,
// on cgroup v2, be born in one: `intoCgroup`, clone3 with CLONE_INTO_CGROUP),
// send its output to a log file (`redirect`), and give up root for good (`dropPrivileges`:
// no groups, no capabilities in any set, no_new_privs), and put itself under a seccomp filter
// (`seccomp`: the BPF bytes engine/seccomp.ts compiles). glibc's set*id() wrappers signal
// every thread they believe the process has, and after a raw clone that list is Node's, so
// the child changes credentials with raw syscalls. `exec` passes only fds 0-2 on.
//
// A `reaper` step forks: the process stays behind, holding no descriptor, reaping whatever
// becomes its child and exiting with the status of the child that goes on with the next
// steps. Spawned into a new PID namespace it is that namespace's PID 1, still with the
// credentials it had: processes that drop privileges after it can neither ptrace it (to take
// away its parent-death signal) nor signal it, and its exit ends every process in the
// namespace. A reaper never execs, so a spawn that has one copies Node's memory (fork)
// instead of sharing it until exec.
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "clone3.h"
#include "errors.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

namespace sockbench {
namespace {

enum class Op { Unshare, Setns, Mount, Chroot, Chdir, PivotRoot, Sethostname, Setsid, Write, Redirect, SetIds, DropPrivileges, KeepCapabilities, Seccomp, Reaper, Exec, Hold };

struct Step {
  Op op;
  int flags = 0;
  std::string path, source, fstype, data;
  bool hasSource = false, hasFstype = false, hasData = false;
  std::vector<std::string> argv, env;
  uint32_t uid = 0, gid = 0;
  uint64_t keep = 0;  // keepCapabilities: the capabilities left, one bit each
  int fd = -1;        // setns: a namespace descriptor of the parent's, instead of a path
  std::vector<sock_filter> filter;  // seccomp: the program, copied out of the Buffer before clone
};

// Which call of a step failed, for steps that make more than one.
enum Call : int32_t {
  kCallOfStep = 0,  // the step's own call (OpName)
  kOpen,
  kWrite,
  kDup2,
  kSetgroups,
  kSetresgid,
  kCapbsetDrop,
  kAmbientClearAll,
  kSetresuid,
  kCapset,
  kNoNewPrivs,
  kPdeathsig,
  kCapget,
  kChdir,
  kUmount,
  kUserns,
};

struct Report {
  int32_t step;  // index of the failed step, or -1 when the child reached `hold`
  int32_t err;
  int32_t call;  // a Call
  int32_t arg;   // detail for the message: a capability number, a target fd, 1 for /dev/null
};

const char* OpName(Op op) {
  switch (op) {
    case Op::Unshare: return "unshare";
    case Op::Setns: return "setns";
    case Op::Mount: return "mount";
    case Op::Chroot: return "chroot";
    case Op::Chdir: return "chdir";
    case Op::PivotRoot: return "pivot_root";
    case Op::Setsid: return "setsid";
    case Op::SetIds: return "setIds";
    case Op::Sethostname: return "sethostname";
    case Op::Write: return "write";
    case Op::Redirect: return "open";
    case Op::DropPrivileges: return "dropPrivileges";
    case Op::KeepCapabilities: return "keepCapabilities";
    case Op::Seccomp: return "seccomp";
    case Op::Reaper: return "fork";
    case Op::Exec: return "execve";
    case Op::Hold: return "hold";
  }
  return "?";
}

std::string StringField(Napi::Object o, const char* key, bool* present = nullptr) {
  Napi::Value v = o.Get(key);
  if (present) *present = v.IsString();
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

std::vector<std::string> StringArray(Napi::Env env, Napi::Object o, const char* key) {
  std::vector<std::string> out;
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return out;
  if (!v.IsArray()) throw Napi::TypeError::New(env, std::string(key) + " must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(a.Get(i).ToString().Utf8Value());
  return out;
}

uint32_t IdField(Napi::Env env, Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  // (uid_t)-1 means "leave unchanged" to setresuid(), so it is no id to drop to.
  if (!(d >= 0 && d < 4294967295.0 && d == static_cast<double>(static_cast<uint32_t>(d))))
    throw Napi::TypeError::New(env, std::string("dropPrivileges step needs a numeric ") + key + " (0 to 4294967294)");
  return static_cast<uint32_t>(d);
}

std::string RequiredString(Napi::Env env, Napi::Object o, const char* op, const char* key) {
  bool present = false;
  std::string v = StringField(o, key, &present);
  if (!present) throw Napi::TypeError::New(env, std::string(op) + " step needs a string " + key);
  return v;
}

Step ParseStep(Napi::Env env, Napi::Object o) {
  std::string op = StringField(o, "op");
  Step s{};
  s.flags = o.Get("flags").IsNumber() ? o.Get("flags").As<Napi::Number>().Int32Value() : 0;
  s.path = StringField(o, "path");
  if (op == "unshare") s.op = Op::Unshare;
  else if (op == "setns") {
    s.op = Op::Setns;
    if (o.Get("fd").IsNumber()) s.fd = o.Get("fd").As<Napi::Number>().Int32Value();
    else if (s.path.empty()) throw Napi::TypeError::New(env, "setns step needs a path or an fd");
  } else if (op == "chroot") s.op = Op::Chroot;
  else if (op == "chdir") s.op = Op::Chdir;
  else if (op == "pivotRoot") s.op = Op::PivotRoot;
  else if (op == "setsid") s.op = Op::Setsid;
  else if (op == "hold") s.op = Op::Hold;
  else if (op == "setIds") {
    s.op = Op::SetIds;
    s.uid = IdField(env, o, "uid");
    s.gid = IdField(env, o, "gid");
  }
  else if (op == "reaper") s.op = Op::Reaper;
  else if (op == "sethostname") {
    s.op = Op::Sethostname;
    s.data = StringField(o, "name");
  } else if (op == "mount") {
    s.op = Op::Mount;
    s.source = StringField(o, "source", &s.hasSource);
    s.fstype = StringField(o, "fstype", &s.hasFstype);
    s.data = StringField(o, "data", &s.hasData);
    s.path = StringField(o, "target");
  } else if (op == "write") {
    s.op = Op::Write;
    s.path = RequiredString(env, o, "write", "path");
    s.data = RequiredString(env, o, "write", "value");
  } else if (op == "redirect") {
    s.op = Op::Redirect;
    s.path = RequiredString(env, o, "redirect", "path");
  } else if (op == "dropPrivileges") {
    s.op = Op::DropPrivileges;
    s.uid = IdField(env, o, "uid");
    s.gid = IdField(env, o, "gid");
  } else if (op == "keepCapabilities") {
    s.op = Op::KeepCapabilities;
    Napi::Value v = o.Get("keep");
    if (!v.IsArray()) throw Napi::TypeError::New(env, "keepCapabilities step needs keep: an array of capability numbers");
    Napi::Array a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      double cap = a.Get(i).IsNumber() ? a.Get(i).As<Napi::Number>().DoubleValue() : -1;
      if (!(cap >= 0 && cap < 64 && cap == static_cast<double>(static_cast<int>(cap))))
        throw Napi::TypeError::New(env, "keepCapabilities: capability numbers are 0 to 63");
      s.keep |= uint64_t{1} << static_cast<int>(cap);
    }
  } else if (op == "seccomp") {
    s.op = Op::Seccomp;
    Napi::Value v = o.Get("filter");
    size_t bytes = v.IsBuffer() ? v.As<Napi::Buffer<uint8_t>>().Length() : 0;
    if (bytes == 0 || bytes % sizeof(sock_filter) != 0 || bytes / sizeof(sock_filter) > BPF_MAXINSNS)
      throw Napi::TypeError::New(env, "seccomp step needs filter: a Buffer of 1 to " + std::to_string(BPF_MAXINSNS) +
                                          " BPF instructions (struct sock_filter, 8 bytes each)");
    s.filter.resize(bytes / sizeof(sock_filter));
    memcpy(s.filter.data(), v.As<Napi::Buffer<uint8_t>>().Data(), bytes);
  } else if (op == "exec") {
    s.op = Op::Exec;
    s.argv = StringArray(env, o, "argv");
    s.env = StringArray(env, o, "env");
    if (s.argv.empty()) throw Napi::TypeError::New(env, "exec step needs a non-empty argv");
  } else {
    throw Napi::TypeError::New(env, "unknown spawn step op '" + op + "'");
  }
  return s;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// The highest capability number the running kernel knows; read by the parent, since the
// child may already be chrooted when it drops privileges.
int CapLastCap() {
  int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 63;
  char buf[16] = {};
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 63;
  int v = atoi(buf);
  return v > 0 && v < 64 ? v : 63;
}

[[noreturn]] void ChildFail(int fd, int step, int err, int call = kCallOfStep, int arg = 0) {
  Report r{step, err, call, arg};
  (void)!write(fd, &r, sizeof r);
  _exit(127);
}

// The steps that make more than one call; each reports failure itself and returns on success.

void ChildWrite(int fd, int i, const Step& s) {
  int out = open(s.path.c_str(), O_WRONLY | O_CLOEXEC);
  if (out < 0) ChildFail(fd, i, errno, kOpen);
  const char* p = s.data.data();
  size_t left = s.data.size();
  while (left > 0) {
    ssize_t n = write(out, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ChildFail(fd, i, n < 0 ? errno : EIO, kWrite);
    p += n;
    left -= static_cast<size_t>(n);
  }
  close(out);
}

// Makes `from` the descriptor `to` (inheritable), closing `from` unless it is a std fd.
void ChildMoveFd(int fd, int i, int from, int to) {
  if (from == to) {
    if (fcntl(to, F_SETFD, 0) != 0) ChildFail(fd, i, errno, kDup2, to);
    return;
  }
  int rc;
  do rc = dup2(from, to); while (rc < 0 && errno == EINTR);
  if (rc < 0) ChildFail(fd, i, errno, kDup2, to);
}

void ChildRedirect(int fd, int i, const Step& s) {
  int log = open(s.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log < 0) ChildFail(fd, i, errno, kOpen);
  ChildMoveFd(fd, i, log, 1);
  ChildMoveFd(fd, i, log, 2);
  if (log > 2) close(log);
  int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null < 0) ChildFail(fd, i, errno, kOpen, 1);
  ChildMoveFd(fd, i, null, 0);
  if (null > 2) close(null);
}

// Makes path (already a mount point of this mount namespace's own, e.g. a recursive bind of
// itself) the namespace's root and detaches the old one: unlike chroot, no `..` and no second
// chroot can lead back out of it, even for a process that keeps CAP_SYS_CHROOT.
void ChildPivotRoot(int fd, int i, const Step& s) {
  if (chdir(s.path.c_str()) != 0) ChildFail(fd, i, errno, kChdir);
  // pivot_root(".", "."): the old root ends up stacked on the new one, and is detached at once.
  if (syscall(SYS_pivot_root, ".", ".") != 0) ChildFail(fd, i, errno);
  if (umount2(".", MNT_DETACH) != 0) ChildFail(fd, i, errno, kUmount);
  if (chdir("/") != 0) ChildFail(fd, i, errno, kChdir);
}

// Takes the ids given, keeping every capability: in a new user namespace the child starts as
// the overflow uid (its host uid 0 is not mapped there) yet still acts on files as host root;
// becoming the namespace's own uid 0 (mapped to an unprivileged host uid) ends that.
void ChildSetIds(int fd, int i, const Step& s, bool dieWithParent, pid_t expectedParent) {
  if (syscall(SYS_setgroups, 0, nullptr) != 0) ChildFail(fd, i, errno, kSetgroups);
  if (syscall(SYS_setresgid, s.gid, s.gid, s.gid) != 0) ChildFail(fd, i, errno, kSetresgid);
  if (syscall(SYS_setresuid, s.uid, s.uid, s.uid) != 0) ChildFail(fd, i, errno, kSetresuid);
  if (dieWithParent) {
    // As in ChildDropPrivileges: the id change cleared the parent-death signal.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ChildFail(fd, i, errno, kPdeathsig);
    if (getppid() != expectedParent) _exit(127);
  }
}

void ChildDropPrivileges(int fd, int i, const Step& s, int capLast, bool dieWithParent, pid_t expectedParent) {
  if (syscall(SYS_setgroups, 0, nullptr) != 0) ChildFail(fd, i, errno, kSetgroups);
  if (syscall(SYS_setresgid, s.gid, s.gid, s.gid) != 0) ChildFail(fd, i, errno, kSetresgid);
  for (int cap = 0; cap <= capLast; cap++) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) ChildFail(fd, i, errno, kCapbsetDrop, cap);
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    ChildFail(fd, i, errno, kAmbientClearAll);
  // Leaving uid 0 for a non-zero uid empties the permitted and effective sets (no KEEP_CAPS).
  if (syscall(SYS_setresuid, s.uid, s.uid, s.uid) != 0) ChildFail(fd, i, errno, kSetresuid);
  // The inheritable set survives setresuid; empty it too (always allowed).
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capset, &header, data) != 0) ChildFail(fd, i, errno, kCapset);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ChildFail(fd, i, errno, kNoNewPrivs);
  if (dieWithParent) {
    // commit_creds() cleared the parent-death signal when the ids changed; set it again, and
    // catch a parent that died in between, as at the start.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ChildFail(fd, i, errno, kPdeathsig);
    if (getppid() != expectedParent) _exit(127);
  }
  header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct got[2] = {};
  if (syscall(SYS_capget, &header, got) != 0) ChildFail(fd, i, errno, kCapget);
  for (const auto& d : got) {
    if (d.effective != 0 || d.permitted != 0 || d.inheritable != 0) ChildFail(fd, i, EPERM, kCapget);
  }
}

// Stays root but keeps only s.keep, in the bounding set too, with nothing inheritable or
// ambient and no_new_privs: for a process that must itself set up, and then drop to
// unprivileged, children of its own (a zygote).
void ChildKeepCapabilities(int fd, int i, const Step& s, int capLast) {
  for (int cap = 0; cap <= capLast; cap++) {
    if ((s.keep >> cap) & 1) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) ChildFail(fd, i, errno, kCapbsetDrop, cap);
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    ChildFail(fd, i, errno, kAmbientClearAll);
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  for (int k = 0; k < 2; k++) {
    data[k].permitted = data[k].effective = static_cast<uint32_t>(s.keep >> (32 * k));
  }
  if (syscall(SYS_capset, &header, data) != 0) ChildFail(fd, i, errno, kCapset);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ChildFail(fd, i, errno, kNoNewPrivs);
}

// From here on every call the child makes, exec included, goes through the filter. The kernel
// takes a filter only with no_new_privs (or CAP_SYS_ADMIN), so that a setuid program cannot be
// run under a filter it does not expect; the step sets it itself rather than rely on an earlier
// dropPrivileges or keepCapabilities.
void ChildSeccomp(int fd, int i, const Step& s) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ChildFail(fd, i, errno, kNoNewPrivs);
  struct sock_fprog prog = {static_cast<unsigned short>(s.filter.size()), const_cast<sock_filter*>(s.filter.data())};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) ChildFail(fd, i, errno);
}

// Forks; returns in the child, which goes on with the next steps and dies with the reaper
// (fork cleared its parent-death signal). The reaper never returns: it closes every descriptor
// (Node's, copied by the fork, and the report pipe: the child reports), reaps each child it
// gets (as PID 1, every orphan of the namespace) and exits with the first child's status,
// 128 + the signal number if a signal killed it.
void ChildReaper(int fd, int i, bool dieWithParent, pid_t* expectedParent) {
  pid_t self = static_cast<pid_t>(syscall(SYS_getpid));
  long child = syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (child < 0) ChildFail(fd, i, errno);
  if (child == 0) {
    *expectedParent = self;
    if (dieWithParent) {
      if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ChildFail(fd, i, errno, kPdeathsig);
      if (getppid() != self) _exit(127);
    }
    return;
  }
  if (syscall(SYS_close_range, 0U, ~0U, 0U) != 0) {
    for (int f = 0; f < 65536; f++) close(f);
  }
  for (;;) {
    int status;
    pid_t got = waitpid(-1, &status, __WALL);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) _exit(127);
    if (got == child) _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
}

// Runs in the child after clone(): only async-signal-safe calls from here on.
[[noreturn]] void ChildRun(int fd, std::vector<Step>& steps, std::vector<std::vector<char*>>& argvs,
                           std::vector<std::vector<char*>>& envs, bool dieWithParent, pid_t expectedParent,
                           int capLast) {
  // Node's handlers were inherited; running one here would write into Node's signal pipe.
  for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (dieWithParent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    // The parent died before prctl took effect. (Born in a new PID namespace the child sees
    // its parent as 0 either way, so that case cannot be told apart and is let through.)
    if (getppid() != expectedParent) _exit(127);
  }
  for (size_t i = 0; i < steps.size(); i++) {
    Step& s = steps[i];
    int rc = 0;
    switch (s.op) {
      case Op::Unshare: rc = unshare(s.flags); break;
      case Op::Setns: {
        if (s.fd >= 0) {
          rc = setns(s.fd, s.flags);
          break;
        }
        int nsfd = open(s.path.c_str(), O_RDONLY | O_CLOEXEC);
        if (nsfd < 0) ChildFail(fd, i, errno);
        rc = setns(nsfd, s.flags);
        close(nsfd);
        break;
      }
      case Op::PivotRoot: ChildPivotRoot(fd, i, s); break;
      case Op::Setsid: rc = setsid() < 0 ? -1 : 0; break;
      case Op::SetIds: ChildSetIds(fd, i, s, dieWithParent, expectedParent); break;
      case Op::Mount:
        rc = mount(s.hasSource ? s.source.c_str() : nullptr, s.path.c_str(),
                   s.hasFstype ? s.fstype.c_str() : nullptr, s.flags,
                   s.hasData ? s.data.c_str() : nullptr);
        break;
      case Op::Chroot: rc = chroot(s.path.c_str()); break;
      case Op::Chdir: rc = chdir(s.path.c_str()); break;
      case Op::Sethostname: rc = sethostname(s.data.c_str(), s.data.size()); break;
      case Op::Write: ChildWrite(fd, i, s); break;
      case Op::Redirect: ChildRedirect(fd, i, s); break;
      case Op::DropPrivileges: ChildDropPrivileges(fd, i, s, capLast, dieWithParent, expectedParent); break;
      case Op::KeepCapabilities: ChildKeepCapabilities(fd, i, s, capLast); break;
      case Op::Seccomp: ChildSeccomp(fd, i, s); break;
      case Op::Reaper: ChildReaper(fd, i, dieWithParent, &expectedParent); break;
      case Op::Exec:
        // Only fds 0-2 go on to the program (ENOSYS before Linux 5.11 is let through).
        syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
        execve(argvs[i][0], argvs[i].data(), envs[i].data());
        ChildFail(fd, i, errno);
      case Op::Hold: {
        Report ready{-1, 0, 0, 0};
        (void)!write(fd, &ready, sizeof ready);
        close(fd);
        for (;;) pause();
      }
    }
    if (rc != 0) ChildFail(fd, i, errno);
  }
  Report done{-1, 0, 0, 0};
  (void)!write(fd, &done, sizeof done);
  _exit(0);
}

struct ChildArgs {
  int* fds;
  std::vector<Step>* steps;
  std::vector<std::vector<char*>>* argvs;
  std::vector<std::vector<char*>>* envs;
  bool dieWithParent;
  pid_t expectedParent;
  int capLast;
  int* sync;  // a new user namespace's: the child waits until the parent has written its id maps
};

int ChildEntry(void* p) {
  auto* a = static_cast<ChildArgs*>(p);
  close(a->fds[0]);
  if (a->sync) {
    close(a->sync[1]);
    char go;
    ssize_t n;
    do n = read(a->sync[0], &go, 1); while (n < 0 && errno == EINTR);
    // No byte: the parent could not write the maps and will report why.
    if (n != 1) _exit(127);
    close(a->sync[0]);
  }
  ChildRun(a->fds[1], *a->steps, *a->argvs, *a->envs, a->dieWithParent, a->expectedParent, a->capLast);
}

constexpr size_t kChildStackSize = 256 * 1024;

// The stack a CLONE_VM child runs its steps on, or null if none could be mapped. The spawning
// thread waits for its child (CLONE_VFORK), so one stack per thread serves every spawn.
char* ChildStack() {
  static thread_local void* stack = mmap(nullptr, kChildStackSize, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  return stack == MAP_FAILED ? nullptr : static_cast<char*>(stack);
}

}  // namespace

// spawn({ cloneFlags?, steps: Step[], dieWithParent? = true, intoCgroup?: fd }) -> pid
Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "spawn expects an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  int cloneFlags = o.Get("cloneFlags").IsNumber() ? o.Get("cloneFlags").As<Napi::Number>().Int32Value() : 0;
  bool dieWithParent = o.Get("dieWithParent").IsBoolean() ? o.Get("dieWithParent").As<Napi::Boolean>().Value() : true;
  // A cgroup v2 directory's descriptor: the child is born there and never migrates.
  int intoCgroup = o.Get("intoCgroup").IsNumber() ? o.Get("intoCgroup").As<Napi::Number>().Int32Value() : -1;
  if (!o.Get("steps").IsArray()) throw Napi::TypeError::New(env, "spawn needs a steps array");
  Napi::Array arr = o.Get("steps").As<Napi::Array>();
  std::vector<Step> steps;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    if (!arr.Get(i).IsObject()) throw Napi::TypeError::New(env, "each spawn step must be an object");
    steps.push_back(ParseStep(env, arr.Get(i).As<Napi::Object>()));
  }
  std::vector<std::vector<char*>> argvs(steps.size()), envs(steps.size());
  for (size_t i = 0; i < steps.size(); i++) {
    if (steps[i].op == Op::Exec) {
      argvs[i] = CStrings(steps[i].argv);
      envs[i] = CStrings(steps[i].env);
    }
  }

  int capLast = 63;
  for (const Step& s : steps) {
    if (s.op == Op::DropPrivileges || s.op == Op::KeepCapabilities) capLast = CapLastCap();
  }

  // userns: { uidMap, gidMap } — the child is born in a new user namespace (owning every other
  // namespace it is born in) whose maps the parent writes before the child's first step.
  std::string uidMap, gidMap;
  bool userns = false;
  if (o.Get("userns").IsObject()) {
    Napi::Object u = o.Get("userns").As<Napi::Object>();
    uidMap = RequiredString(env, u, "userns", "uidMap");
    gidMap = RequiredString(env, u, "userns", "gidMap");
    userns = true;
    cloneFlags |= CLONE_NEWUSER;
  }

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw SyscallError(env, "pipe2", errno);
  int sync[2] = {-1, -1};
  if (userns && pipe2(sync, O_CLOEXEC) != 0) {
    int err = errno;
    close(fds[0]);
    close(fds[1]);
    throw SyscallError(env, "pipe2", err);
  }
  pid_t expectedParent = (cloneFlags & CLONE_NEWPID) ? 0 : getpid();
  ChildArgs args{fds, &steps, &argvs, &envs, dieWithParent, expectedParent, capLast, userns ? sync : nullptr};
  // No handler of Node's may run in the child before it resets them (with CLONE_VM it would
  // run on Node's memory): every signal stays blocked across the clone.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  long pid;
  bool execs = !steps.empty() && steps.back().op == Op::Exec;
  // The parent must write a new user namespace's maps while the child waits, and a reaper
  // forks: no CLONE_VFORK for either.
  bool reaps = false;
  for (const Step& s : steps) reaps = reaps || s.op == Op::Reaper;
  char* stack = execs && !userns && !reaps ? ChildStack() : nullptr;
  if (stack) {
    // A child that ends in exec shares Node's memory until then (CLONE_VM|CLONE_VFORK, as
    // posix_spawn does) instead of copying its page tables: a fork of a 150 MB Node costs
    // milliseconds, and a fresh copy of Node's address space also slows the cgroup.procs
    // writes the child makes. This thread waits until the child has exec'd or exited.
    if (intoCgroup >= 0) {
      struct clone_args ca = {};
      ca.flags = CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP | static_cast<uint32_t>(cloneFlags);
      ca.exit_signal = SIGCHLD;
      ca.stack = reinterpret_cast<uint64_t>(stack);
      ca.stack_size = kChildStackSize;
      ca.cgroup = static_cast<uint64_t>(intoCgroup);
      pid = Clone3OnStack(&ca, ChildEntry, &args);
    } else {
      pid = clone(ChildEntry, stack + kChildStackSize, CLONE_VM | CLONE_VFORK | SIGCHLD | cloneFlags, &args);
    }
  } else {
    // A child that holds or reaps never execs (or no stack could be mapped): raw clone with
    // a null stack has fork semantics.
    if (intoCgroup >= 0) {
      struct clone_args ca = {};
      ca.flags = CLONE_INTO_CGROUP | static_cast<uint32_t>(cloneFlags);
      ca.exit_signal = SIGCHLD;
      ca.cgroup = static_cast<uint64_t>(intoCgroup);
      pid = Clone3Fork(&ca);
    } else {
      pid = syscall(SYS_clone, SIGCHLD | cloneFlags, nullptr, nullptr, nullptr, nullptr);
    }
    if (pid == 0) ChildEntry(&args);
  }
  int cloneErr = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    if (userns) {
      close(sync[0]);
      close(sync[1]);
    }
    throw SyscallError(env, intoCgroup >= 0 ? "clone3" : "clone", cloneErr, CloneFlagNames(cloneFlags) + (intoCgroup >= 0 ? " | CLONE_INTO_CGROUP" : ""));
  }
  close(fds[1]);
  if (userns) {
    close(sync[0]);
    std::string failed;
    int mapErr = 0;
    for (const auto& [file, map] : {std::pair<const char*, const std::string&>{"uid_map", uidMap}, {"gid_map", gidMap}}) {
      std::string at = "/proc/" + std::to_string(pid) + "/" + file;
      int f = open(at.c_str(), O_WRONLY | O_CLOEXEC);
      if (f < 0 || write(f, map.data(), map.size()) != static_cast<ssize_t>(map.size())) {
        mapErr = errno;
        failed = at;
      }
      if (f >= 0) close(f);
      if (mapErr) break;
    }
    if (mapErr) {
      close(sync[1]);
      close(fds[0]);
      kill(static_cast<pid_t>(pid), SIGKILL);
      int status;
      waitpid(static_cast<pid_t>(pid), &status, 0);
      throw SyscallError(env, "write", mapErr, failed);
    }
    (void)!write(sync[1], "g", 1);
    close(sync[1]);
  }
  Report r{};
  ssize_t n;
  do n = read(fds[0], &r, sizeof r); while (n < 0 && errno == EINTR);
  close(fds[0]);
  if (n == static_cast<ssize_t>(sizeof r) && r.step >= 0) {
    int status;
    waitpid(pid, &status, 0);
    if (static_cast<size_t>(r.step) >= steps.size()) throw Napi::Error::New(env, "spawned child sent a bad report");
    const Step& s = steps[r.step];
    std::string call = OpName(s.op);
    std::string args = s.op == Op::Unshare ? CloneFlagNames(s.flags)
                       : s.op == Op::Exec  ? s.argv[0]
                       : s.op == Op::Seccomp ? "SECCOMP_SET_MODE_FILTER, " + std::to_string(s.filter.size()) + " BPF instructions"
                                             : s.path;
    switch (r.call) {
      case kOpen: call = "open"; if (r.arg == 1) args = "/dev/null"; break;
      case kWrite: call = "write"; break;
      case kDup2: call = "dup2"; args = s.path + " -> fd " + std::to_string(r.arg); break;
      case kSetgroups: call = "setgroups"; args = "0, NULL"; break;
      case kSetresgid: call = "setresgid"; args = std::to_string(s.gid); break;
      case kCapbsetDrop: call = "prctl"; args = "PR_CAPBSET_DROP, " + std::to_string(r.arg); break;
      case kAmbientClearAll: call = "prctl"; args = "PR_CAP_AMBIENT_CLEAR_ALL"; break;
      case kSetresuid: call = "setresuid"; args = std::to_string(s.uid); break;
      case kCapset: call = "capset"; args = s.op == Op::KeepCapabilities ? "the kept capabilities" : "all sets empty"; break;
      case kNoNewPrivs: call = "prctl"; args = "PR_SET_NO_NEW_PRIVS"; break;
      case kPdeathsig: call = "prctl"; args = "PR_SET_PDEATHSIG"; break;
      case kCapget: call = "capget"; args = "capabilities left after dropping to uid " + std::to_string(s.uid); break;
      case kChdir: call = "chdir"; break;
      case kUmount: call = "umount2"; args = "the old root"; break;
      default: break;
    }
    throw SyscallError(env, call, r.err, args);
  }
  if (n != static_cast<ssize_t>(sizeof r) && !execs) {
    int status = 0;
    waitpid(pid, &status, 0);
    throw Napi::Error::New(env, "spawned child exited before finishing its steps (status " +
                                    std::to_string(status) + ")");
  }
  return Napi::Number::New(env, static_cast<double>(pid));
}

}  // namespace sockbench
