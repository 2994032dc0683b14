"""A zygote: a Python process that has imported a set of packages and forks handler instances.

The engine starts the first one as `python3 -B /sock/zygote.py /host/worker.sock <config>` in a
lean container of its own, in a user namespace of its own (its uid 0 is an unprivileged host
uid) that owns its mount, PID, IPC, UTS and network namespaces, pivoted into its root, as that
namespace's root with only CAP_SYS_ADMIN, CAP_SYS_CHROOT, CAP_NET_ADMIN, CAP_SETUID, CAP_SETGID
and CAP_SETPCAP, no_new_privs and the zygote seccomp filter. Being PID 1 of that container's PID
namespace, it forks the root zygote (no packages) and stays behind as the namespace's reaper:
every handler instance and zygote lives below it, so a zygote that dies takes none of its forks
with it. <config> is JSON: see _config.

Each zygote dials the worker's socket in its scratch directory (/host), imports its packages,
says {"ready": true, "pid": ..., "modules": <loaded>} (or {"fatal": "bad-package", ...}), then
answers fork requests, one at a time:

    worker -> zygote   {"fork": "handler" | "zygote", "id": <name>, "paths": [sys.path entries],
                        "imports": [modules, zygote only],
                        "entry": {the handler's entry and environment, handler only: server.py's config}}
                       with SCM_RIGHTS: [root, cgroup.procs of each hierarchy]
    zygote -> worker   {"forked": <id>} | {"error": <why>, "id": <id>}

The descriptors are the new container, made by the engine: its stitched root (a detached copy
of its mounts, from open_tree, or with "tree" off a directory) and its cgroup from the pool.
How a fork is put in its container, step by step, and why each step is done as it is (the spare
forked ahead of the request, the PID namespace it is PID 1 of, a child zygote's pivot) is told
once, in engine/README.md under "The fork protocol".
"""

import _signal
import _socket
import ctypes
import fcntl
import json
import os
import select
import struct
import sys

sys.path.insert(0, "/sock")
import server  # noqa: E402

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MNT_DETACH = 2
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
SYS_PIVOT_ROOT, SYS_MOVE_MOUNT = 155, 429  # x86_64
AT_FDCWD, MOVE_MOUNT_F_EMPTY_PATH = -100, 4
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
SANDBOX_USER = 65534
MAX_FDS = 16
SPARE_AFTER_IDLE = 0.02  # seconds

_libc = ctypes.CDLL(None, use_errno=True)

# What the engine asked for (argv[2], JSON): "tree": the zygote lives in a user and mount
# namespace of its own and each fork request's root comes as a detached mount tree, attached
# by the fork in a mount namespace of its own; "netns": each handler gets a network namespace
# of its own (made by the spare, ahead of the request); "filter": the hex of the seccomp
# filter a handler installs on top of the zygote's (struct sock_filter[], 8 bytes each).
_config = {"tree": False, "netns": False, "filter": ""}


def _check(rc, what):
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags):
    _check(_libc.unshare(flags), "unshare")


def mount_proc(at):
    _check(_libc.mount(b"proc", at.encode(), b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), f"mount {at}")


def attach(tree, at):
    """Attaches a detached mount tree (open_tree's) at `at`, in this process's mount namespace."""
    _check(_libc.syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, at.encode(), MOVE_MOUNT_F_EMPTY_PATH), f"attaching the container's root at {at}")


def pivot_here():
    """Makes the working directory the mount namespace's root and detaches the old one."""
    _check(_libc.syscall(SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detaching the old root")


def loopback_up():
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        request = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | IFF_UP))
    finally:
        sock.close()


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_filter():
    """The handler's seccomp filter, stacked on the zygote's; needs no_new_privs (drop_privileges)."""
    program = bytes.fromhex(_config["filter"])
    if not program:
        return
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "installing the seccomp filter")


def sethostname(name):
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def enter(fds, pivot):
    """Joins the new container's cgroup, then its root (pivoting into it, for a zygote, or
    chrooting, for a handler, which keeps no capability to leave it), then mounts the /proc of
    its PID namespace there; the descriptors are closed after."""
    root, procs = fds[0], fds[1:]
    for fd in procs:
        os.write(fd, b"0")
        os.close(fd)
    if _config["tree"]:
        # /mnt is the base's empty directory; what is attached there stays in this process's
        # own mount namespace (made by the spare, or by become_zygote).
        attach(root, "/mnt")
        os.chdir("/mnt")
    else:
        os.fchdir(root)
    os.close(root)
    # Before entering: in a user namespace a new /proc is allowed only while one that shows
    # everything is mounted in the mount namespace, and a pivot detaches the zygote's.
    mount_proc("proc")
    if pivot:
        pivot_here()
    else:
        os.chroot(".")
    os.chdir("/")


def log_to(path):
    """The engine made the log, private and its opener's: a zygote, root without CAP_DAC_OVERRIDE, cannot create files in scratch (nobody's)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)


def drop_privileges():
    """For good: the bounding set emptied, no groups, nobody's ids (which empties the rest). Needs /proc."""
    with open("/proc/self/status") as f:
        bounding = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    # The zygote's bounding set holds only what it kept: a handful of calls, not one per capability.
    for cap in range(64):
        if bounding >> cap & 1:
            _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"dropping capability {cap}")
    os.setgroups([])
    os.setresgid(SANDBOX_USER, SANDBOX_USER, SANDBOX_USER)
    os.setresuid(SANDBOX_USER, SANDBOX_USER, SANDBOX_USER)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def isolate_spare():
    """A spare's own session and namespaces, made ahead of the request it will serve."""
    os.setsid()
    flags = CLONE_NEWIPC | CLONE_NEWUTS
    if _config["tree"]:
        flags |= CLONE_NEWNS
    if _config["netns"]:
        flags |= CLONE_NEWNET
    unshare(flags)
    if _config["netns"]:
        loopback_up()


def become_handler(request, fds, ok):
    # PID 1 of its own namespace already (see fork()), in namespaces of its own (isolate_spare),
    # still privileged, nothing of the handler's run yet.
    enter(fds, pivot=False)
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    sethostname(request["id"])
    drop_privileges()
    install_filter()
    # The engine made the log nobody's: opened only once nothing else is left to do as root.
    log_to("/host/runtime.log")
    sys.path[:0] = request["paths"]
    os.write(ok, b"ok\n")
    os.closerange(3, 1 << 20)
    server.run("/host/worker.sock", "/handler", request.get("entry"))


def become_zygote(request, fds, ok):
    if _config["tree"]:
        # A mount namespace of its own to attach its root in and pivot into: package code it
        # imports, root in the tree's user namespace, cannot climb out of that root.
        unshare(CLONE_NEWNS)
    enter(fds, pivot=_config["tree"])
    unshare(CLONE_NEWIPC | CLONE_NEWUTS)
    sethostname(request["id"])
    log_to("/host/runtime.log")
    sys.path[:0] = request["paths"]
    os.write(ok, b"ok\n")
    os.closerange(3, 1 << 20)
    global _own_pid_namespace, _spare
    _own_pid_namespace = None  # closed above; reopened (the same namespace) at the first fork
    _spare = None  # the parent's spare: its socket was closed above
    serve("/host/worker.sock", request["imports"])


def run_child(become, request, fds, ok):
    """In a forked child: become what was asked; never returns into the zygote's loop."""
    status = 1
    try:
        become(request, fds, ok)
        status = 0
    except BaseException as e:  # noqa: B036
        try:
            os.write(ok, f"{type(e).__name__}: {e}\n".encode())
        except OSError:
            # Past "ok" the channel is closed: the log is where the worker looks (the fork's
            # own runtime.log, or the zygote's for a failure before it).
            import traceback

            traceback.print_exc()
    os._exit(status)


def read_verdict(fd):
    """The child's "ok", or why it failed, up to its newline or its end."""
    said = b""
    while not said.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        said += chunk
    return said.decode(errors="replace").strip()


def answer(request, said):
    if said == "ok":
        return {"forked": request["id"]}
    return {"error": said or "the child ended before it entered its container", "id": request["id"]}


class Spare:
    """A child forked ahead of the next handler request: PID 1 of a new PID namespace, still in
    the zygote's container, waiting on a socket pair for its own container's descriptors. The
    fork (milliseconds for a zygote with big libraries mapped) is then off the request's path."""

    def __init__(self, conn, ahead):
        mine, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        pid = fork_into_new_pid_namespace()
        if pid == 0:
            mine.close()
            conn.close()
            try:
                isolate_spare()
                problem = None
            except OSError as e:
                problem = e
            if ahead:
                # Forked while idle: time to take a first answer's page copies off the
                # request's path (server.rehearse). A spare forked for a request waiting skips it.
                server.rehearse()
            line, fds = b"", []
            while not line.endswith(b"\n"):
                data, ancillary, _flags, _addr = theirs.recvmsg(65536, _socket.CMSG_SPACE(MAX_FDS * 4))
                if not data:
                    os._exit(0)  # the zygote has gone
                fds += received_fds(ancillary)
                line += data
            if problem is not None:
                os.write(theirs.fileno(), f"isolating the spare child: {problem}\n".encode())
                os._exit(1)
            run_child(become_handler, server.decode(line.decode()), fds, theirs.fileno())
        theirs.close()
        self.sock = mine

    def start(self, request, fds):
        """Hands the request and descriptors to the spare; its verdict, once it has entered its container."""
        try:
            payload = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
            self.sock.sendmsg([(server.encode(request) + "\n").encode()], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, payload)])
            return read_verdict(self.sock.fileno())
        except OSError as e:
            return f"the spare child could not be started: {e}"
        finally:
            self.sock.close()
            for fd in fds:
                os.close(fd)


_spare = None


def fork(conn, request, fds):
    """Forks the child the request asks for; answers once the child has entered its container."""
    global _spare
    become = {"handler": become_handler, "zygote": become_zygote}.get(request.get("fork"))
    if become is None or len(fds) < 1:
        for fd in fds:
            os.close(fd)
        return {"error": f"bad fork request: {request!r} with {len(fds)} descriptors", "id": request.get("id")}
    if become is become_handler:
        spare, _spare = _spare or Spare(conn, ahead=False), None
        return answer(request, spare.start(request, fds))
    r, w = os.pipe()
    if os.fork() == 0:
        os.close(r)
        conn.close()
        run_child(become, request, fds, w)
    os.close(w)
    for fd in fds:
        os.close(fd)
    said = read_verdict(r)
    os.close(r)
    return answer(request, said)


def keep_a_spare(conn):
    global _spare
    if _spare is None:
        _spare = Spare(conn, ahead=True)


_own_pid_namespace = None


def fork_into_new_pid_namespace():
    """os.fork() whose child is PID 1 of a new PID namespace; this process stays in its own."""
    global _own_pid_namespace
    if _own_pid_namespace is None:
        _own_pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)

    def back():
        _check(_libc.setns(_own_pid_namespace, CLONE_NEWPID), "setns back to the zygote's PID namespace")

    unshare(CLONE_NEWPID)
    try:
        pid = os.fork()
    except BaseException:
        back()
        raise
    if pid != 0:
        back()
    return pid


def received_fds(ancillary):
    fds = []
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds += [int.from_bytes(payload[i : i + 4], sys.byteorder) for i in range(0, usable, 4)]
    return fds


def requests(conn):
    """Fork requests with the descriptors that came with each (one request at a time). While
    none is waiting, a spare child is forked once the zygote has been idle for SPARE_AFTER_IDLE:
    not right after an answer, when the instance just started needs the CPU."""
    buffer, fds = b"", []
    while True:
        if _spare is None and not select.select([conn], [], [], SPARE_AFTER_IDLE)[0]:
            keep_a_spare(conn)
        data, ancillary, _flags, _addr = conn.recvmsg(65536, _socket.CMSG_SPACE(MAX_FDS * 4))
        fds += received_fds(ancillary)
        if not data:
            return
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield server.decode(line.decode()), fds
            fds = []


def serve(socket_path, imports):
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    conn.connect(socket_path)
    try:
        for module in imports:
            __import__(module)
    except BaseException as e:  # noqa: B036
        message = server.failure("bad-package", e)
        message["fatal"] = message.pop("error")
        server.send(conn, server.encode(message))
        sys.exit(1)
    server.send(conn, server.encode({"ready": True, "pid": os.getpid(), "modules": len(sys.modules)}))
    for request, fds in requests(conn):
        server.send(conn, server.encode(fork(conn, request, fds)))


def main():
    _config.update(json.loads(sys.argv[2]))
    # Forked children are reaped by the kernel; the engine watches them through pidfds.
    _signal.signal(_signal.SIGCHLD, _signal.SIG_IGN)
    if os.fork() != 0:
        # The namespace's reaper. With SIGCHLD ignored, wait() returns only once every
        # process below has ended; then the container is empty and this ends too.
        try:
            while True:
                os.wait()
        except ChildProcessError:
            os._exit(0)
    serve(sys.argv[1], [])


if __name__ == "__main__":
    main()
