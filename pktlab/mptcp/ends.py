"""The two ends of a real MPTCP transfer (IPPROTO_MPTCP, 262), run inside a lab's namespaces.

    python ends.py server PORT NETNS_PATH CGROUP_PROCS PROTO
    python ends.py client ADDR PORT NETNS_PATH CGROUP_PROCS PROTO NBYTES CHUNK GAP_S TIMEOUT_S

PROTO is `mptcp` or `tcp`. Run as scripts by pktlab.mptcp.peers (through pktlab.lab.spawn:
they die with their owner), so they import nothing but the standard library.

Each joins the cgroup first (writing 0 to cgroup.procs moves the writer), then enters the
namespace, then makes its socket: a socket belongs to the cgroup its creator was in at
socket(), which is what the sock_ops program on the lab's cgroup sees.

The server says `ready FD` (or `error ERRNAME text`) on stdout, accepts one connection, reads
to EOF, sends back the count, and prints one JSON line. The client connects, sends NBYTES in
CHUNK-byte writes with GAP_S seconds between them (paced: the connection has data in flight
all along), shuts down its sending side, reads the count, and prints one JSON line. Both lines
carry what the end's own socket says: its MPTCP token (MPTCP_INFO) and, per subflow, its
addresses (MPTCP_SUBFLOW_ADDRS) and tcp_info byte counters (MPTCP_TCPINFO), taken before the
socket closes. A failure is one JSON line with "error" and "errno": never a traceback.
"""

import ctypes
import errno as _errno
import json
import os
import signal
import socket
import struct
import sys
import time

IPPROTO_MPTCP = 262
SOL_MPTCP = 284
MPTCP_INFO, MPTCP_TCPINFO, MPTCP_SUBFLOW_ADDRS = 1, 2, 3
CLONE_NEWNET = 0x40000000
TCPI_LEN = 248           # struct tcp_info up to total_rto_time (6.x); an older kernel copies less
ADDRS_LEN = 256          # struct mptcp_subflow_addrs: two sockaddr_storage
SUBFLOWS_MAX = 8
_libc = ctypes.CDLL(None, use_errno=True)


def _quiet_exit(*_):
    os._exit(0)


def _enter(netns_path, procs):
    # as its PID namespace's init, the child ignores signals it has no handler for
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _quiet_exit)
    if procs != "-":
        with open(procs, "w") as f:
            f.write("0")
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns {netns_path}: {os.strerror(e)}")
    os.close(fd)


def _socket(proto):
    return socket.socket(socket.AF_INET, socket.SOCK_STREAM,
                         IPPROTO_MPTCP if proto == "mptcp" else 0)


def mptcp_info(s):
    b = s.getsockopt(SOL_MPTCP, MPTCP_INFO, 64)
    # u8 subflows (the ADDITIONAL ones), add_addr_signal, add_addr_accepted, subflows_max,
    # add_addr_signal_max, add_addr_accepted_max; u32 flags at 8, u32 token at 12 (host order)
    flags, token = struct.unpack_from("=II", b, 8)
    return {"subflows": b[0], "add_addr_signal": b[1], "add_addr_accepted": b[2],
            "flags": flags, "token": token}


def _subflow_data(s, opt, elem):
    # struct mptcp_subflow_data {u32 size_subflow_data, num_subflows, size_kernel, size_user}
    # comes first in the buffer, read by the kernel: socket.getsockopt() cannot pass input
    # bytes, so libc's getsockopt through ctypes
    raw = ctypes.create_string_buffer(struct.pack("=IIII", 16, 0, 0, elem) +
                                      b"\0" * (SUBFLOWS_MAX * elem))
    ln = ctypes.c_uint32(len(raw))
    if _libc.getsockopt(s.fileno(), SOL_MPTCP, opt, raw, ctypes.byref(ln)) < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"getsockopt(SOL_MPTCP, {opt}): {os.strerror(e)}")
    _, num, _ksize, usize = struct.unpack_from("=IIII", raw.raw, 0)
    return [raw.raw[16 + i * usize:16 + (i + 1) * usize] for i in range(min(num, SUBFLOWS_MAX))]


def _sockaddr(b):
    fam, port = struct.unpack_from("=HH", b, 0)
    if fam == socket.AF_INET:
        return [socket.inet_ntoa(b[4:8]), socket.ntohs(port)]
    return None


def subflows(s):
    out = []
    for a, t in zip(_subflow_data(s, MPTCP_SUBFLOW_ADDRS, ADDRS_LEN),
                    _subflow_data(s, MPTCP_TCPINFO, TCPI_LEN)):
        acked, received = struct.unpack_from("=QQ", t, 120)
        sent, retrans = struct.unpack_from("=QQ", t, 200)
        out.append({"local": _sockaddr(a[:128]), "remote": _sockaddr(a[128:]), "state": t[0],
                    "rto_us": struct.unpack_from("=I", t, 8)[0],
                    "total_retrans": struct.unpack_from("=I", t, 100)[0],
                    "bytes_sent": sent, "bytes_acked": acked, "bytes_received": received,
                    "bytes_retrans": retrans})
    return out


def view(s, proto):
    if proto != "mptcp":
        return {}
    out = {}
    try:
        out["info"] = mptcp_info(s)
        out["subflows"] = subflows(s)
    except OSError as e:       # a connection that fell back to TCP has no MPTCP view
        out["view_error"] = e.strerror or str(e)
    return out


def _fail(side, e, **extra):
    name = _errno.errorcode.get(e.errno, "EIO") if getattr(e, "errno", None) else "EIO"
    print(json.dumps({"side": side, "ok": False, "errno": name,
                      "error": getattr(e, "strerror", None) or str(e), **extra}), flush=True)
    sys.exit(0)


def server(argv):
    port, netns_path, procs, proto = int(argv[0]), argv[1], argv[2], argv[3]
    try:
        _enter(netns_path, procs)
        ls = _socket(proto)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("0.0.0.0", port))
        ls.listen(4)
    except OSError as e:
        name = _errno.errorcode.get(e.errno, "EIO") if e.errno else "EIO"
        print(f"error {name} {e.strerror or e}", flush=True)
        sys.exit(0)
    print(f"ready {ls.fileno()}", flush=True)
    try:
        c, peer = ls.accept()
        t0 = time.monotonic()
        n = 0
        while (d := c.recv(1 << 16)):
            n += len(d)
        v = view(c, proto)                 # before close: the subflows are still there
        c.sendall(f"{n}\n".encode())
    except OSError as e:
        _fail("server", e)
    print(json.dumps({"side": "server", "ok": True, "peer": [peer[0], peer[1]], "received": n,
                      "seconds": round(time.monotonic() - t0, 3), **v}), flush=True)
    c.close()
    ls.close()


def client(argv):
    addr, port, netns_path, procs, proto = argv[0], int(argv[1]), argv[2], argv[3], argv[4]
    nbytes, chunk, gap, timeout = int(argv[5]), int(argv[6]), float(argv[7]), float(argv[8])
    sent, t0 = 0, time.monotonic()
    try:
        _enter(netns_path, procs)
        s = _socket(proto)
        s.settimeout(timeout)
        s.connect((addr, port))
        local = list(s.getsockname())
        buf = b"P" * chunk
        while sent < nbytes:
            k = min(chunk, nbytes - sent)
            s.sendall(buf[:k])
            sent += k
            if gap:
                time.sleep(gap)
        v = view(s, proto)
        s.shutdown(socket.SHUT_WR)
        reply = s.recv(100).decode().strip()
    except socket.timeout:
        _fail("client", OSError(_errno.ETIMEDOUT, f"no progress within {timeout} s"), sent=sent)
    except OSError as e:
        _fail("client", e, sent=sent)
    print(json.dumps({"side": "client", "ok": True, "local": local, "sent": sent,
                      "server_got": int(reply) if reply.isdigit() else -1,
                      "seconds": round(time.monotonic() - t0, 3), **v}), flush=True)
    s.close()


if __name__ == "__main__":
    {"server": server, "client": client}[sys.argv[1]](sys.argv[2:])
