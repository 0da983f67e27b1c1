"""The learner loader's worker: one fresh process per request (pktlab.kernel.loader starts it).

    python -I -B -c <bootstrap> SOCKET_FD        (stdin: the job, JSON)

In order: read the job from stdin; load bcc, libbcc and LLVM, and everything else it will use;
enter its own view of the filesystem and its own namespaces (pktlab.kernel.sandbox); become
the loader's account with CAP_BPF and CAP_NET_ADMIN only, no-new-privs; set its limits;
install the seccomp filter and hand its listener to the parent; then do the one thing asked:

    "load"   compile and load (pktlab.kernel.progload.attempt), send the Attempt as data and
             the program and map fds by SCM_RIGHTS over the socket, which only the parent holds
    "probe"  send what it is and sees (sandbox.identity()), for the tests

and exit. Messages are frames on the socket: 4 bytes of length (big-endian), then JSON; fds
ride on a frame's first bytes.
"""

import json
import os
import socket
import struct
import sys


def send(sock, doc, fds=()):
    data = json.dumps(doc).encode()
    frame = struct.pack(">I", len(data)) + data
    head, rest = frame[:4096], frame[4096:]
    if fds:
        socket.send_fds(sock, [head], list(fds))
    else:
        sock.sendall(head)
    if rest:
        sock.sendall(rest)


def _peer_gone(sock):
    """pktlab's end of the socket closed (it sends nothing before the worker speaks)."""
    import select
    ready, _, _ = select.select([sock], [], [], 0)
    return bool(ready) and sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""


def _preload():
    """Everything used after the view is entered: nothing can be loaded from disk then."""
    import ctypes  # noqa: F401
    import tempfile
    from . import progload, sandbox  # noqa: F401
    from .bpf import bcc, possible_cpus
    bcc()                       # libbcc, libclang, libLLVM mapped now
    possible_cpus()             # /sys is not in the view
    tempfile.gettempdir()
    "".encode("utf-8").decode("latin-1")


def _load(sock, job):
    from . import progload
    req = progload.LoadRequest(job["text"].encode("latin-1"), job["name"], job["prog_type"],
                               job.get("func"), tuple(job.get("include_dirs", ())),
                               tuple(job.get("defines", ())))
    kept = {}

    def keep(fd, tables):
        kept["prog"] = os.dup(fd)
        kept["tables"] = [dict(t, fd=None) for t in tables]
        kept["maps"] = [os.dup(t["fd"]) for t in tables]

    a = progload.attempt(req, keep=keep, on_load=lambda: send(sock, {"kind": "loading"}))
    if "prog" not in kept:
        send(sock, {"kind": "result", "attempt": a.to_dict(), "tables": []})
        return
    send(sock, {"kind": "result", "attempt": a.to_dict(), "tables": kept["tables"]},
         fds=[kept["prog"], *kept["maps"]])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    sock = socket.socket(fileno=int(argv[0]))
    try:
        job = json.loads(sys.stdin.buffer.read())
        from . import sandbox
        _preload()
        sandbox.single_thread()
        limits = sandbox.Limits(**job["limits"])
        sandbox.enter_view(job["view"], limits.tmp_bytes)
        sandbox.drop_privileges(job["uid"], job["gid"])
        if _peer_gone(sock):          # pktlab died before the parent-death signal was set
            return 1
        sandbox.set_limits(limits)
        listener = sandbox.install_filter()
        send(sock, {"kind": "listener"}, fds=[listener])
        os.close(listener)
        if job["op"] == "probe":
            send(sock, {"kind": "probe", "identity": sandbox.identity()})
        else:
            _load(sock, job["request"])
    except MemoryError:
        send(sock, {"kind": "error", "what": "memory", "message": "out of memory"})
    except Exception as e:       # said to the parent as data; the parent decides
        send(sock, {"kind": "error", "what": type(e).__name__, "message": str(e)})
    finally:
        sock.close()
    return 0
