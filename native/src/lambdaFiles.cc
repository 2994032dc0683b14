// A lambda's files, walked the way a root process must walk a directory its users write: the
// registry's lambdas belong to people the engine does not trust, and the worker that copies
// them runs as root, so no path in a lambda is ever resolved by the kernel on our behalf. The
// lambda's directory is opened once (O_DIRECTORY|O_NOFOLLOW) and every entry relative to its
// parent's descriptor (openat with O_NOFOLLOW), never onto another mount (its mount id, not st_dev); what is checked,
// hashed and copied is read from the very descriptor that was fstat'ed, so swapping a file for a
// link between the check and the read gains nothing. Plain openat with O_NOFOLLOW on single
// names does what openat2's RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS would, on any kernel.
//
// The rules (engine/registry.ts says why): a symbolic link anywhere, the lambda's directory
// included, is refused, never followed; so are special files, mount points, trees deeper than
// kMaxDepth, and any file or directory the lambda directory's owner could not read (a hard link
// to someone else's file is refused outright). A refusal comes back as { refused: message }
// naming the entry by its path in the lambda, never its content.
#include "lambdaFiles.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "errors.h"

namespace sockbench {
namespace {

// Each level of the walk holds its directory open while its children are walked.
constexpr int kMaxDepth = 32;

struct File {
  std::string path;
  struct stat st;
  std::string contents;
};

// The lambda breaks a rule: the caller gets the message, not an exception.
struct Refusal {
  std::string message;
};

// A call that failed for a reason other than the lambda's shape (EMFILE, EIO, ...).
struct Failure {
  std::string call;
  int err;
  std::string path;
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

using Dir = std::unique_ptr<DIR, int (*)(DIR*)>;

std::string Octal(mode_t mode) {
  char text[8];
  snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

double Ms(const struct timespec& t) { return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }

std::string SymlinkRefusal(const std::string& rel) {
  return rel + " is a symbolic link, and the registry follows no link (put the file itself in the lambda)";
}

[[noreturn]] void RefuseType(const struct stat& st, const std::string& rel) {
  if (S_ISLNK(st.st_mode)) throw Refusal{SymlinkRefusal(rel)};
  const char* kind = S_ISFIFO(st.st_mode) ? "fifo" : S_ISSOCK(st.st_mode) ? "socket" : "device";
  throw Refusal{rel + " is a " + kind + "; a lambda holds only regular files and directories"};
}

// With O_DIRECTORY, openat answers a symbolic link's O_NOFOLLOW with ENOTDIR, not ELOOP.
bool IsLink(int dir, const std::string& name) {
  struct stat st;
  return fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
}

// The mount a file is on. st_dev cannot tell: on an overlayfs whose layers are on different file
// systems (a 9p root under a tmpfs upper, as in the kernels harness's guests) a directory reports
// the overlay's device and a file its layer's, though no mount lies between them.
uint64_t MountId(int dirfd, const char* name, int flags, const std::string& rel) {
  struct statx sx;
  if (statx(dirfd, name, flags | AT_STATX_DONT_SYNC, STATX_MNT_ID, &sx) != 0) throw Failure{"statx", errno, rel};
  if (!(sx.stx_mask & STATX_MNT_ID)) throw Failure{"statx", ENOSYS, rel + " (STATX_MNT_ID needs Linux 5.8)"};
  return sx.stx_mnt_id;
}

class Walk {
 public:
  Walk(bool contents, std::set<std::string> skip) : contents_(contents), skip_(std::move(skip)) {}

  // False when registry/name is not a directory: there is no such lambda.
  bool Run(const std::string& registry, const std::string& name) {
    const std::string where = registry + "/" + name;
    // The registry itself is the operator's, named on the command line: resolved as usual.
    Fd reg(open(registry.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (reg.get() < 0) {
      if (errno == ENOENT || errno == ENOTDIR) return false;
      throw Failure{"open", errno, registry};
    }
    Fd top(openat(reg.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (top.get() < 0) {
      if (errno == ENOTDIR && IsLink(reg.get(), name)) {
        throw Refusal{"its directory " + where + " is a symbolic link, and the registry follows no link (make it a directory)"};
      }
      if (errno == ENOENT || errno == ENOTDIR) return false;
      throw Failure{"openat", errno, where};
    }
    struct stat st;
    if (fstat(top.get(), &st) != 0) throw Failure{"fstat", errno, where};
    owner_ = st.st_uid;
    mount_ = MountId(top.get(), "", AT_EMPTY_PATH, where);
    Directory(OpenDir(top, "."), "", 0);
    std::sort(files_.begin(), files_.end(), [](const File& a, const File& b) { return a.path < b.path; });
    return true;
  }

  std::vector<File>& files() { return files_; }

 private:
  Dir OpenDir(Fd& fd, const std::string& rel) {
    DIR* d = fdopendir(fd.get());
    if (!d) throw Failure{"fdopendir", errno, rel};
    fd.release();
    return Dir(d, closedir);
  }

  void Directory(const Dir& d, const std::string& prefix, int depth) {
    std::vector<std::string> names;
    for (;;) {
      errno = 0;
      const struct dirent* e = readdir(d.get());
      if (!e) {
        if (errno != 0) throw Failure{"readdir", errno, prefix.empty() ? "." : prefix};
        break;
      }
      std::string name = e->d_name;
      if (name != "." && name != ".." && !skip_.count(name)) names.push_back(std::move(name));
    }
    const int fd = dirfd(d.get());
    for (const std::string& name : names) {
      const std::string rel = prefix.empty() ? name : prefix + "/" + name;
      struct stat st;
      if (fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;  // removed since it was listed: the author is editing
        throw Failure{"fstatat", errno, rel};
      }
      if (S_ISDIR(st.st_mode)) {
        Subdirectory(fd, name, rel, depth + 1);
        continue;
      }
      if (!S_ISREG(st.st_mode)) RefuseType(st, rel);
      if (!contents_) {
        Check(st, MountId(fd, name.c_str(), AT_SYMLINK_NOFOLLOW, rel), rel);
        files_.push_back({rel, st, {}});
        continue;
      }
      // O_NONBLOCK: were it swapped for a fifo since fstatat, the open must not hang the worker.
      Fd file(openat(fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
      if (file.get() < 0) {
        if (errno == ENOENT) continue;
        if (errno == ELOOP) throw Refusal{SymlinkRefusal(rel)};
        throw Failure{"openat", errno, rel};
      }
      if (fstat(file.get(), &st) != 0) throw Failure{"fstat", errno, rel};
      if (!S_ISREG(st.st_mode)) RefuseType(st, rel);
      Check(st, MountId(file.get(), "", AT_EMPTY_PATH, rel), rel);
      files_.push_back({rel, st, Read(file.get(), st.st_size, rel)});
    }
  }

  void Subdirectory(int parent, const std::string& name, const std::string& rel, int depth) {
    if (depth > kMaxDepth) throw Refusal{rel + " is nested deeper than " + std::to_string(kMaxDepth) + " directories"};
    Fd fd(openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) {
      if (errno == ENOENT) return;
      if (errno == ENOTDIR && IsLink(parent, name)) throw Refusal{SymlinkRefusal(rel)};
      if (errno == ENOTDIR) throw Refusal{rel + " stopped being a directory while it was read"};
      throw Failure{"openat", errno, rel};
    }
    struct stat st;
    if (fstat(fd.get(), &st) != 0) throw Failure{"fstat", errno, rel};
    Check(st, MountId(fd.get(), "", AT_EMPTY_PATH, rel), rel);
    Directory(OpenDir(fd, rel), rel, depth);
  }

  // Could the lambda directory's owner read this (and enter it, for a directory) themselves?
  // Approximate but strict: the owner bits when they own it, the group bits when its group is
  // their primary group, the other bits otherwise; supplementary groups and ACLs are ignored.
  void Check(const struct stat& st, uint64_t mount, const std::string& rel) {
    if (mount != mount_) throw Refusal{rel + " is on another file system (a mount point), and the registry does not cross file systems"};
    const std::string whose = "uid " + std::to_string(st.st_uid) + ", gid " + std::to_string(st.st_gid) + ", mode " + Octal(st.st_mode);
    const std::string owner = "the lambda directory's owner (uid " + std::to_string(owner_) + ")";
    // Its other names may lie where the owner cannot go, so its mode proves nothing.
    if (!S_ISDIR(st.st_mode) && st.st_uid != owner_ && st.st_nlink > 1) {
      throw Refusal{rel + " (" + whose + ") is a hard link to a file that is not " + owner + "'s"};
    }
    const mode_t need = S_ISDIR(st.st_mode) ? 05 : 04;
    const mode_t bits = st.st_uid == owner_ ? st.st_mode >> 6 : OwnerGid() == st.st_gid ? st.st_mode >> 3 : st.st_mode;
    if ((bits & need) != need) throw Refusal{rel + " (" + whose + ") is not readable by " + owner};
  }

  // Looked up only when a file is not the owner's own; unset when the uid has no passwd entry.
  std::optional<gid_t> OwnerGid() {
    if (!gidLooked_) {
      gidLooked_ = true;
      struct passwd pw;
      struct passwd* found = nullptr;
      std::vector<char> buf(16384);
      if (getpwuid_r(owner_, &pw, buf.data(), buf.size(), &found) == 0 && found) gid_ = pw.pw_gid;
    }
    return gid_;
  }

  // Up to end of file, whatever fstat said: a file still being written is re-read at the next
  // lookup, as its size or times will have changed.
  static std::string Read(int fd, off_t size, const std::string& rel) {
    std::string out(static_cast<size_t>(size), '\0');
    size_t got = 0;
    for (;;) {
      if (got == out.size()) out.resize(got + 65536);
      ssize_t n = read(fd, &out[got], out.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw Failure{"read", errno, rel};
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    out.resize(got);
    return out;
  }

  const bool contents_;
  const std::set<std::string> skip_;
  uid_t owner_ = 0;
  uint64_t mount_ = 0;  // the lambda directory's mount: nothing below may be on another
  bool gidLooked_ = false;
  std::optional<gid_t> gid_;
  std::vector<File> files_;
};

}  // namespace

// lambdaFiles(registry, name, { contents, skip }): null when registry/name is not a directory,
// { refused: message } when the lambda breaks a rule, else { files } sorted by path, each
// { path, mode, size, mtimeMs, ctimeMs } and, with contents, the bytes read (a Buffer). Other
// failures throw a SyscallError naming the entry.
Napi::Value LambdaFiles(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsObject()) {
    throw Napi::TypeError::New(env, "lambdaFiles(registry, name, { contents, skip })");
  }
  const std::string registry = info[0].As<Napi::String>().Utf8Value();
  const std::string name = info[1].As<Napi::String>().Utf8Value();
  if (name.empty() || name == "." || name == ".." || name.find_first_of(std::string("/\0", 2)) != std::string::npos) {
    throw Napi::TypeError::New(env, "lambdaFiles: name must be one path component");
  }
  Napi::Object options = info[2].As<Napi::Object>();
  std::set<std::string> skip;
  if (options.Get("skip").IsArray()) {
    Napi::Array list = options.Get("skip").As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); i++) skip.insert(list.Get(i).ToString().Utf8Value());
  }
  const bool contents = options.Get("contents").ToBoolean().Value();

  Walk walk(contents, std::move(skip));
  try {
    if (!walk.Run(registry, name)) return env.Null();
  } catch (const Refusal& r) {
    Napi::Object refused = Napi::Object::New(env);
    refused.Set("refused", r.message);
    return refused;
  } catch (const Failure& f) {
    throw SyscallError(env, f.call, f.err, f.path);
  }
  std::vector<File>& files = walk.files();
  Napi::Array list = Napi::Array::New(env, files.size());
  for (size_t i = 0; i < files.size(); i++) {
    File& f = files[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", f.path);
    o.Set("mode", static_cast<double>(f.st.st_mode & 07777));
    o.Set("size", static_cast<double>(f.st.st_size));
    o.Set("mtimeMs", Ms(f.st.st_mtim));
    o.Set("ctimeMs", Ms(f.st.st_ctim));
    if (contents) o.Set("contents", Napi::Buffer<char>::Copy(env, f.contents.data(), f.contents.size()));
    list.Set(static_cast<uint32_t>(i), o);
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("files", list);
  return result;
}

}  // namespace sockbench
