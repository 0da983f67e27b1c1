"""The client side of pktlabd: what a learner's `pktlab` command and notebook use when they are
not root and a daemon is there.

    from pktlab.workshop.client import Client, daemon_present
    if daemon_present():
        with Client() as c:
            c.status()                                 # {"pid", "clients", "labs"}
            lab = c.open_lab(["xdp", "tc-ingress"])    # {"lab", "hooks", "via", ...}
            doc = c.replay(open("x.pcap", "rb").read(), label="x.pcap", lab=lab["lab"])
            br = c.frames(lab["lab"], [frame])         # a replay.run.BatchResult
            c.close_lab(lab["lab"])

A client with JUPYTERHUB_API_TOKEN in its environment (every JupyterHub server and its kernels
have it) sends that token first (pktlab.workshop.identity): a daemon started with
--identity token knows learners by it, where they share a uid; one that knows them by uid
answers who you are and ignores it.

One connection per Client; its labs live as long as it (closing it, or the process ending,
closes them in the daemon). Bytes travel, never paths: the client reads the files a learner
names, with the learner's own rights, and sends their contents. What the daemon refuses comes
back as the pktlab exception it stands for (protocol.Refused, CaptureError, LabError, ...),
with the daemon's one-line message.
"""

import os
import socket
import threading

from . import identity, protocol as P
from .daemon import DEFAULT_SOCKET, SOCKET_ENV


def socket_path(path=None):
    return path or os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


def daemon_present(path=None):
    """Whether a pktlabd listens at `path` (default: $PKTLAB_SOCKET or DEFAULT_SOCKET)."""
    import stat
    path = socket_path(path)
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return False
    except OSError:
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(2.0)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def absent_message(what, path=None):
    """What a learner is told when neither root nor a daemon can do `what`."""
    return (f"{what} needs root (eBPF programs and network namespaces) or pktlab's workshop "
            f"daemon, and no daemon listens on {socket_path(path)}; ask your instructor to "
            "start it (`pktlab workshop up`), or run it with sudo")


class Client:
    """One connection to pktlabd. Thread-safe (one request at a time on it)."""

    def __init__(self, path=None, timeout=None, token=None):
        self.path = socket_path(path)
        self._lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.connect(self.path)
        except OSError as e:
            self.sock.close()
            raise P.DaemonGone(f"pktlabd at {self.path}: {e.strerror or e}; "
                               + absent_message("this", path).split("; ", 1)[1]) from None
        self.timeout = timeout
        self.you = None
        token = token if token is not None else os.environ.get(identity.TOKEN_ENV)
        if token:
            try:
                self.you = identity.send_hello(self.sock, token)
            except BaseException:
                self._drop()
                raise

    # plumbing ---------------------------------------------------------------------------------
    def call(self, op, args=None, blob=b"", on_progress=None):
        """(result, blob) of one request; the daemon's refusal raised as its exception.
        on_progress(doc): each progress message of a request that asked for them (it runs
        with this connection held: it may not call the daemon)."""
        with self._lock:
            if self.sock is None:
                raise P.DaemonGone("this pktlabd connection is closed")
            why = None
            try:
                P.send_msg(self.sock, {"op": op, "args": args or {}}, blob)
            except (BrokenPipeError, ConnectionResetError) as e:
                why = e           # refused at the door (too many connections): its answer waits
            while True:
                try:
                    got = P.recv_msg(self.sock, P.MAX_REPLY_JSON, P.MAX_REPLY_BLOB,
                                     idle_s=self.timeout)
                except (BrokenPipeError, ConnectionResetError) as e:
                    got, why = None, e
                if got is None or "ok" in got[0] or not isinstance(got[0].get("progress"),
                                                                   dict):
                    break
                if on_progress is not None:
                    try:
                        on_progress(got[0]["progress"])
                    except BaseException:
                        self._drop()     # the rest of this answer is unread: no other call
                        raise
            if got is None:
                self._drop()
                raise P.DaemonGone(f"pktlabd at {self.path} closed the connection"
                                   + (f" ({why})" if why else "") + "; your labs there are "
                                   "closed; try again, or ask your instructor whether it runs")
            doc, out = got
            err = None if doc.get("ok") else (doc.get("error") or {})
            ended = err is not None and "connection is closed" in str(err.get("message"))
            if err is not None and (err.get("kind") in ("protocol", "timeout") or ended
                                    or why is not None):
                self._drop()                       # the daemon has closed this connection
        if err is not None:
            P.raise_error(err)
        return doc.get("result"), out

    def _drop(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def close(self):
        """End the connection: the daemon closes every lab it holds for it."""
        with self._lock:
            self._drop()

    @property
    def closed(self):
        return self.sock is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # operations -------------------------------------------------------------------------------
    def status(self):
        return self.call("status")[0]

    def hooks(self):
        return self.call("hooks")[0]["hooks"]

    def open_lab(self, hooks="all", xdp_mode="generic", mtu=1500):
        return self.call("open_lab", {"hooks": _hooks(hooks), "xdp_mode": xdp_mode,
                                      "mtu": mtu})[0]

    def set_hooks(self, lab, hooks):
        return self.call("set_hooks", {"lab": lab, "hooks": _hooks(hooks)})[0]

    def close_lab(self, lab):
        return self.call("close_lab", {"lab": lab})[0]

    def labs(self):
        return self.call("labs")[0]["labs"]

    def replay(self, capture, label="capture.pcap", lab=None, **opts):
        """The capture's bytes replayed (in `lab`, or a throwaway lab of yours): the summary
        document of `pktlab replay --json`. opts: hooks, pps, mbps, loop, limit, dst_mac,
        dst_ip4, dst_ip6, xdp_mode, mtu, precise_ts, keep_disagreements."""
        args = {k: v for k, v in opts.items() if v is not None}
        if "hooks" in args:
            args["hooks"] = _hooks(args["hooks"])
        args.update(label=str(label), lab=lab)
        return self.call("replay", args, bytes(capture))[0]

    def frames(self, lab, frames):
        """Frames sent across `lab` through its hooks: a replay.run.BatchResult."""
        lengths, blob = P.pack_frames(frames)
        doc, out = self.call("frames", {"lab": lab, "lengths": lengths}, blob)
        return P.decode_batch(doc, out)

    def run(self, source, name, hook, capture, pcap="capture.pcap", func=None, lab=None):
        """`pktlab run`'s document for C `source` (bytes) at `hook` with `capture` (bytes);
        "report" is the verifier's report as a dict when it refused (else None)."""
        source = bytes(source)
        return self.call("run", {"name": str(name), "hook": hook, "func": func, "lab": lab,
                                 "pcap": str(pcap), "source_len": len(source)},
                         source + bytes(capture))[0]

    def verify(self, source, name, hook, func=None):
        source = bytes(source)
        return self.call("verify", {"name": str(name), "hook": hook, "func": func,
                                    "source_len": len(source)}, source)[0]

    def clean(self, all_labs=False):
        return self.call("clean", {"all": bool(all_labs)})[0]


def _hooks(hooks):
    return hooks if isinstance(hooks, str) else list(hooks)


def read_capture(path):
    """A capture's bytes for the daemon (read with the caller's own rights), size-checked
    first: one line when it is too big to send."""
    size = os.path.getsize(path)
    if size > P.MAX_CAPTURE_BYTES:
        raise ValueError(f"capture {path}: {size:,} bytes; the workshop daemon takes captures of "
                         f"at most {P.MAX_CAPTURE_BYTES:,} bytes (cut it with `editcap -c`)")
    with open(path, "rb") as f:
        return f.read()
