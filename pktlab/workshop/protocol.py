"""pktlabd's wire format: one message is a header, a JSON object and a blob of bytes.

    header  ">4sII": b"PKL1", the JSON's length, the blob's length (both big-endian)
    json    a request {"op": NAME, "args": {...}} or a reply {"ok": true, "result": {...}} /
            {"ok": false, "error": {"kind", "message", "errno"}}; a request that asks for
            it may get progress messages {"progress": {...}} before its reply
    blob    bytes that travel as bytes (a capture, a C source, frames, record arrays), never a
            path: the daemon opens no file a client names

Everything has a size cap, checked before anything is read into memory: a request's JSON
(MAX_REQUEST_JSON), its blob (MAX_REQUEST_BLOB); a reply is allowed more (a verifier log is up
to 16 MiB). Once a message has begun, the rest must arrive within PARTIAL_S. A header, a JSON
text or an op the daemon cannot read is a ProtocolError: answered, then the connection is
dropped. Arguments are checked by name and type per op (Args); an unknown argument is refused
by name (pktlab attaches nothing a client names: no interface, no path, no program fd).

A BatchResult (pktlab.replay.run: the verdicts of a few frames, as `lab.step` returns them)
travels as data: encode_batch() / decode_batch() (numpy arrays as raw bytes in the blob).
"""

import errno as _errno
import json
import socket
import struct
import time

from ..errors import BPFError, CaptureError, EnvironmentProblem, LabError, PktlabError

MAGIC = b"PKL1"
HEADER = struct.Struct(">4sII")
MAX_REQUEST_JSON = 256 << 10
#: a capture (MAX_CAPTURE_BYTES) and a C source (a verifier's MAX_SOURCE_BYTES) with room
MAX_REQUEST_BLOB = 20 << 20
MAX_REPLY_JSON = 64 << 20
MAX_REPLY_BLOB = 64 << 20
#: a capture a learner may send for a replay or a run
MAX_CAPTURE_BYTES = 16 << 20
#: the rest of a message that has begun must come within this
PARTIAL_S = 30.0


class ProtocolError(PktlabError, ValueError):
    """A message that is not one (header, size, JSON, op): the connection is dropped."""


class Refused(PktlabError):
    """The daemon refused a request it understood: another learner's lab, a quota, a limit.
    The message says which and what to do."""


class DaemonGone(EnvironmentProblem):
    """No daemon to talk to, or it went away mid-request."""


# framing --------------------------------------------------------------------------------------
def send_msg(sock, doc, blob=b""):
    data = json.dumps(doc, separators=(",", ":")).encode()
    sock.sendall(HEADER.pack(MAGIC, len(data), len(blob)) + data)
    if blob:
        sock.sendall(blob)


def _recv_exact(sock, n, deadline):
    buf = bytearray()
    while len(buf) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtocolError(f"a message stopped half-way: no byte for {PARTIAL_S:g} s")
            sock.settimeout(left)
        try:
            chunk = sock.recv(min(n - len(buf), 1 << 20))
        except socket.timeout:
            raise ProtocolError(f"a message stopped half-way: no byte for {PARTIAL_S:g} s") \
                from None
        if not chunk:
            if not buf and deadline is None:
                return None
            raise ProtocolError("the connection closed in the middle of a message")
        buf += chunk
    return bytes(buf)


def recv_msg(sock, max_json, max_blob, partial_s=PARTIAL_S, idle_s=None):
    """(doc, blob), or None at a clean end of the connection (before a message began).

    idle_s: how long to wait for a message to begin (None: for ever)."""
    sock.settimeout(idle_s)
    try:
        first = sock.recv(1)
    except socket.timeout:
        raise TimeoutError("no message") from None
    except ConnectionResetError:
        return None
    if not first:
        return None
    deadline = time.monotonic() + partial_s
    head = first + _recv_exact(sock, HEADER.size - 1, deadline)
    magic, jlen, blen = HEADER.unpack(head)
    if magic != MAGIC:
        raise ProtocolError(f"not a pktlabd message (starts with {magic!r}, not {MAGIC!r})")
    if jlen > max_json:
        raise ProtocolError(f"a message's JSON of {jlen:,} bytes; at most {max_json:,}")
    if blen > max_blob:
        raise ProtocolError(f"a message's data of {blen:,} bytes; at most {max_blob:,} (a "
                            f"capture is at most {MAX_CAPTURE_BYTES >> 20} MiB)")
    raw = _recv_exact(sock, jlen, deadline)
    blob = _recv_exact(sock, blen, deadline) if blen else b""
    sock.settimeout(None)
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:    # (nested past the stack)
        raise ProtocolError(f"a message's JSON does not parse: {e}") from None
    if not isinstance(doc, dict):
        raise ProtocolError("a message's JSON is not an object")
    return doc, blob


# errors as data -------------------------------------------------------------------------------
_KINDS = (("refused", Refused), ("protocol", ProtocolError), ("capture", CaptureError),
          ("lab", LabError), ("bpf", BPFError), ("environment", EnvironmentProblem),
          ("file", FileNotFoundError), ("value", ValueError), ("timeout", TimeoutError))


def error_doc(e):
    """An exception as a reply's error object (what the client raises again)."""
    kind = next((k for k, cls in _KINDS if isinstance(e, cls)), None)
    if kind is None and isinstance(e, (TypeError, KeyError, OverflowError)):
        kind = "value"
    msg = str(e) if kind is not None else (
        f"pktlabd: internal error ({type(e).__name__}: {e}); the daemon's log has the details")
    return {"kind": kind or "internal", "message": msg, "errno": getattr(e, "errno", None),
            "log": getattr(e, "log", "") or ""}


def raise_error(err):
    """The exception a reply's error object stands for, raised in the client."""
    kind, msg = err.get("kind"), str(err.get("message") or "pktlabd refused the request")
    if kind == "lab":
        raise LabError(err.get("errno") or _errno.EIO, msg)
    if kind == "bpf":
        raise BPFError(msg, err.get("log") or "")
    if kind == "timeout":
        raise Refused(msg)
    cls = dict(_KINDS).get(kind)
    if cls is None:
        raise PktlabError(msg)
    raise cls(msg)


# arguments ------------------------------------------------------------------------------------
class Args:
    """A request's arguments, taken by name and checked by type; finish() refuses the rest.

        a = Args("open_lab", doc.get("args"))
        mtu = a.int("mtu", 1500, 1280, 9000)
        a.finish()
    """

    def __init__(self, op, args):
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ProtocolError(f"{op}: its args are not an object")
        self.op, self.args, self.taken = op, args, set()

    def _get(self, name, default):
        self.taken.add(name)
        v = self.args.get(name, default)
        return v

    def str(self, name, default=None, choices=None, max_len=256, required=False):
        v = self._get(name, default)
        if v is None:
            if required:
                raise ValueError(f"{self.op}: argument {name!r} is required")
            return None
        if not isinstance(v, str) or len(v) > max_len or "\0" in v:
            raise ValueError(f"{self.op}: argument {name!r} must be text of at most {max_len} "
                             "characters")
        if choices is not None and v not in choices:
            raise ValueError(f"{self.op}: {name} {v!r}: choose from {', '.join(choices)}")
        return v

    def int(self, name, default=None, lo=None, hi=None):
        v = self._get(name, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{self.op}: argument {name!r} must be a whole number")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise Refused(f"{self.op}: {name} {v}: must be {lo:,}..{hi:,}")
        return v

    def num(self, name, lo, hi):
        v = self._get(name, None)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise ValueError(f"{self.op}: argument {name!r} must be a number in {lo:g}..{hi:g}")
        return v

    def bool(self, name, default=False):
        v = self._get(name, default)
        if not isinstance(v, bool):
            raise ValueError(f"{self.op}: argument {name!r} must be true or false")
        return v

    def ints(self, name, max_items, lo=0, hi=1 << 31):
        v = self._get(name, [])
        if not isinstance(v, list) or len(v) > max_items or not all(
                isinstance(x, int) and not isinstance(x, bool) and lo <= x <= hi for x in v):
            raise ValueError(f"{self.op}: argument {name!r} must be a list of at most "
                             f"{max_items} whole numbers {lo}..{hi}")
        return v

    def hooks(self, name="hooks", default="all"):
        """A hook list as pktlab.kernel.hooks.parse_hooks takes it (text or a list of names)."""
        v = self._get(name, default)
        if isinstance(v, list) and len(v) <= 8 and all(isinstance(h, str) and len(h) < 32
                                                       for h in v):
            return v
        if isinstance(v, str) and len(v) < 128:
            return v
        raise ValueError(f"{self.op}: argument {name!r} must be hook names")

    def finish(self):
        extra = sorted(set(self.args) - self.taken)
        if extra:
            raise Refused(f"{self.op}: no argument {extra[0]!r}: pktlabd acts only on your own "
                          "labs, by the names it gave you, with pktlab's own hooks (no "
                          "interface, path or program of yours is ever named to it)")


# a batch's verdicts as data -------------------------------------------------------------------
def _put(parts, meta, key, arr):
    import numpy as np
    arr = np.ascontiguousarray(arr)
    meta[key] = [sum(len(p) for p in parts), arr.nbytes, len(arr)]
    parts.append(arr.tobytes())


def encode_batch(br):
    """A replay.run.BatchResult -> (JSON-able dict, blob)."""
    parts, arrays = [], {}
    frames = [bytes(f) for f in br.frames]
    doc = {"lengths": [len(f) for f in frames], "arrays": arrays,
           "skip_reasons": {str(k): str(v) for k, v in br.skip_reasons.items()},
           "hooks": {}}
    parts.append(b"".join(frames))
    _put(parts, arrays, "sendable", br.sendable.astype("u1"))
    _put(parts, arrays, "walked", br.walked)
    for h, r in br.hooks.items():
        doc["hooks"][h] = {"foreign": int(r.foreign), "unmatched": int(r.unmatched),
                           "diffs": {str(i): list(v) for i, v in r.diffs.items()}}
        _put(parts, arrays, f"{h}.verdict", r.verdict.astype("u1"))
        _put(parts, arrays, f"{h}.reason", r.reason.astype("u1"))
        _put(parts, arrays, f"{h}.matched", r.matched)
    return doc, b"".join(parts)


def decode_batch(doc, blob):
    """(dict, blob) from encode_batch -> a replay.run.BatchResult (its arrays copied out)."""
    import numpy as np
    from ..packet import record as rec
    from ..replay.compare import HookResult
    from ..replay.run import BatchResult
    rdt = rec.RECORD_DTYPE

    def arr(key, dtype):
        off, nbytes, n = doc["arrays"][key]
        a = np.frombuffer(blob, dtype=dtype, count=n, offset=off).copy()
        if a.nbytes != nbytes:
            raise ProtocolError(f"a batch's {key} has {a.nbytes} bytes, not {nbytes}")
        return a

    frames, at = [], 0
    for n in doc["lengths"]:
        frames.append(blob[at:at + n])
        at += n
    hooks = {}
    for h, d in doc["hooks"].items():
        hooks[h] = HookResult(arr(f"{h}.verdict", "u1"), arr(f"{h}.reason", "u1"),
                              arr(f"{h}.matched", rdt), foreign=d["foreign"],
                              unmatched=d["unmatched"],
                              diffs={int(i): list(v) for i, v in d["diffs"].items()})
    return BatchResult(frames, arr("sendable", "u1").astype(bool),
                       {int(k): v for k, v in doc["skip_reasons"].items()},
                       arr("walked", rdt), hooks)


def pack_frames(frames):
    """Frames for a request: (their lengths, one blob)."""
    frames = [bytes(f) for f in frames]
    return [len(f) for f in frames], b"".join(frames)


def unpack_frames(lengths, blob):
    if sum(lengths) != len(blob):
        raise ProtocolError(f"frames of {sum(lengths)} bytes announced, {len(blob)} sent")
    out, at = [], 0
    for n in lengths:
        out.append(blob[at:at + n])
        at += n
    return out
