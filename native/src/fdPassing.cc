// Unix-socket calls Node has no API for: sending file descriptors (SCM_RIGHTS) with a message,
// and asking who is at the other end (SO_PEERCRED). The engine hands a zygote the root and
// cgroup of a new container as descriptors, and learns a forked child's pid in its own PID
// namespace from the connection the child makes.
#include "fdPassing.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include "errors.h"

namespace sockbench {

namespace {
constexpr size_t kMaxFds = 16;

int FdArg(Napi::Env env, const Napi::Value& v, const char* what) {
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && d <= 0x7fffffff && d == static_cast<double>(static_cast<int>(d))))
    throw Napi::TypeError::New(env, std::string(what) + " must be a file descriptor number");
  return static_cast<int>(d);
}
}  // namespace

// sendFds(socketFd, data: Buffer, fds: number[]): one sendmsg of all of data with the fds
// attached to its first byte. The socket is Node's (non-blocking): a message that does not fit
// in the socket's buffer at once is an error (EAGAIN), never a partial send left behind.
Napi::Value SendFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[1].IsBuffer() || !info[2].IsArray())
    throw Napi::TypeError::New(env, "sendFds(socketFd, data: Buffer, fds: number[])");
  int sock = FdArg(env, info[0], "socketFd");
  Napi::Buffer<char> data = info[1].As<Napi::Buffer<char>>();
  Napi::Array list = info[2].As<Napi::Array>();
  if (data.Length() == 0) throw Napi::TypeError::New(env, "sendFds: data must not be empty (the fds ride on its first byte)");
  if (list.Length() > kMaxFds) throw Napi::TypeError::New(env, "sendFds: at most 16 fds");
  std::vector<int> fds;
  for (uint32_t i = 0; i < list.Length(); i++) fds.push_back(FdArg(env, list.Get(i), "each fd"));

  struct iovec iov = {data.Data(), data.Length()};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do n = sendmsg(sock, &msg, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
  if (n < 0) throw SyscallError(env, "sendmsg", errno, "SCM_RIGHTS");
  if (static_cast<size_t>(n) != data.Length())
    throw Napi::Error::New(env, "sendFds: the socket took " + std::to_string(n) + " of " + std::to_string(data.Length()) + " bytes");
  return env.Undefined();
}

// peerCred(socketFd) -> {pid, uid, gid} of the process that connected, as seen from our
// namespaces (the kernel translates the pid).
Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) throw Napi::TypeError::New(env, "peerCred(socketFd)");
  int sock = FdArg(env, info[0], "socketFd");
  struct ucred cred = {};
  socklen_t len = sizeof cred;
  if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) throw SyscallError(env, "getsockopt", errno, "SO_PEERCRED");
  Napi::Object r = Napi::Object::New(env);
  r.Set("pid", Napi::Number::New(env, cred.pid));
  r.Set("uid", Napi::Number::New(env, cred.uid));
  r.Set("gid", Napi::Number::New(env, cred.gid));
  return r;
}

}  // namespace sockbench
