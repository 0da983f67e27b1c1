"""When a socket must be in the sockmap: before its first read (lesson 08).

    res = late_insert(lab)      # {"blocked_in", "echoed", "recv_q", "verdicts", ...}

The belt's sk-skb hook puts every accepted socket into its sockhash from SOCK_OPS, at the end
of the handshake, before accept() returns: the application's first read already goes through
the sockmap's receive path. Here the other order, on a real TCP echo server outside the lab's
cgroup (so SOCK_OPS never sees it): a client connects, the server accepts and blocks in
recv(), and only then is its socket put into the sockhash by hand (pidfd_getfd, map update).
The next bytes the client sends reach the sk-skb program (a verdict is recorded, SK_PASS), are
queued for the application on the socket's psock, and the reader that went to sleep in the
plain TCP receive path before the socket changed hands is never woken with them: no echo,
while the kernel holds the bytes. The server is then ended, and the lab stays clean.
"""

import errno
import os
import socket
import time

from ..errors import LabError
from ..lab import netns
from . import apps

#: x86-64 syscall numbers of the calls a server may be blocked in
SYSCALLS = {"0": "read", "7": "poll", "23": "select", "43": "accept", "45": "recvfrom",
            "47": "recvmsg", "232": "epoll_wait", "270": "pselect6", "271": "ppoll",
            "288": "accept4"}


def blocked_in(pid):
    """The syscall process `pid`'s main thread is blocked in (by name), or ''."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            nr = f.read().split()[0]
    except (OSError, IndexError):
        return ""
    return SYSCALLS.get(nr, nr)


def _accepted_fd(pid, listener_fd):
    """The fd of process `pid`'s one socket that is not its listener, or None."""
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        if int(fd) == listener_fd:
            continue
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                return int(fd)
        except OSError:
            continue
    return None


def recv_queue(pid, port):
    """Bytes in the receive queue (/proc/PID/net/tcp's rx_queue) of pid's established
    sockets on local `port`."""
    total = 0
    with open(f"/proc/{pid}/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "01":
                total += int(cols[4].split(":")[1], 16)
    return total


def _wait_for(fn, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.01)
    return fn()


def late_insert(lab, port=7009, wait=1.0):
    """The late insertion on `lab` (see the module docstring). Needs the sk-skb hook."""
    from ..kernel.sockhooks import SocketHooks
    out = {}
    with SocketHooks(lab, lab.cgroup(), ["sk-skb"]) as sh, \
            apps.Server(lab, "tcp", port) as srv:        # not in the cgroup: no SOCK_OPS
        with netns.enter(lab.ns_src):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with c:
            c.settimeout(wait)
            c.connect((lab.dut_ip4, port))
            fd = _wait_for(lambda: _accepted_fd(srv.pid, srv.fd), 3.0)
            if fd is None or not _wait_for(lambda: blocked_in(srv.pid) == "recvfrom", 3.0):
                raise LabError(errno.EIO, f"the echo server (pid {srv.pid}) did not accept and "
                                          "block in recv() within 3 s")
            out["blocked_in"] = blocked_in(srv.pid)
            sh.insert_socket(srv.pid, fd)
            msg = b"late-insert\n"
            c.sendall(msg)
            try:
                out["echoed"] = c.recv(100) == msg
            except socket.timeout:
                out["echoed"] = False
            out["waited_s"] = wait
            out["recv_q"] = recv_queue(srv.pid, port)
            out["still_blocked_in"] = blocked_in(srv.pid)
            out["verdicts"] = len([r for r in sh.drain()["sk-skb"] if bytes(r["payload"])
                                   .startswith(msg)])
    return out


#: every sock_ops callback (uapi/linux/bpf.h, enum bpf_sock_ops_op, without BPF_SOCK_OPS_):
#: lesson 08's third exercise names one of them
SOCK_OPS = ("VOID", "TIMEOUT_INIT", "RWND_INIT", "TCP_CONNECT_CB", "ACTIVE_ESTABLISHED_CB",
            "PASSIVE_ESTABLISHED_CB", "NEEDS_ECN", "BASE_RTT", "RTO_CB", "RETRANS_CB",
            "STATE_CB", "TCP_LISTEN_CB", "RTT_CB", "PARSE_HDR_OPT_CB", "HDR_OPT_LEN_CB",
            "WRITE_HDR_OPT_CB")


def insert_variant(op):
    """sk_skb.bpf.c with the sock_ops callback that inserts sockets replaced by `op` (one of
    SOCK_OPS: checked, the text is compiled)."""
    from .. import resources
    if op not in SOCK_OPS:
        raise ValueError(f"{op!r}: not a sock_ops callback; choose BPF_SOCK_OPS_ + one of "
                         f"{', '.join(SOCK_OPS[1:])}")
    with open(resources.snippet_path("sk_skb.bpf.c")) as f:
        text = f.read()
    return text.replace("BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB", f"BPF_SOCK_OPS_{op}")


def insert_moment(op, lab=None):
    """One real request to a TCP echo server with the sk-skb program inserting sockets at
    sock_ops callback `op`: {"seen", "agree"} of the verdict program, or {"error"} when the
    request did not get through. `lab`: an open lab to use (default a fresh one)."""
    from ..errors import PktlabError
    from .belt import Belt
    text = insert_variant(op)
    try:
        with Belt("tcp", hooks="sk-skb", lab=lab, texts={"sk-skb": text}) as belt:
            run = belt.request()
    except PktlabError as e:
        return {"seen": 0, "agree": None, "error": str(e)}
    v = run.hooks["sk-skb"]
    return {"seen": v["seen"], "agree": v["agree"], "error": None}
