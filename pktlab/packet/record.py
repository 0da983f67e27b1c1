"""The pl_record: the one record every hook emits and the walker returns, mirrored from C.

bpf_snippets/pktlab_record.h is the single declaration. Rather than copying its field list and
constants by hand (and drifting), this module reads that header the first time something asks
for them: the `PL_*` constants, and the `struct pl_record` field list, from which it builds

- ``Record``: a ctypes structure in host byte order (the kernel writes records in host order);
- ``RECORD_DTYPE``: the matching numpy structured dtype, for reading thousands of records from
  the hooks' record rings at once;
- ``RECORD_STRUCT``: a ``struct.Struct`` with the same layout, which is how the walker fills a
  record in one call.

tests/test_record_layout.py compiles the header with the system C compiler and proves that size
and every offset agree. Nothing is read at import time: ``from pktlab.packet.record import Record`` (or
any ``PL_*`` name) triggers the one cached read, through the module ``__getattr__``.
"""

from __future__ import annotations

import ctypes
import functools
import ipaddress
import os
import re
import struct
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

from .. import resources
from ..errors import EnvironmentProblem, PktlabError

__all__ = [
    "Record", "RECORD_DTYPE", "RECORD_STRUCT", "RECORD_FIELDS", "constants", "describe",
    "fingerprint", "record_from_bytes", "records_from_buffer", "compare_fields", "snippets_dir",
    "status_name", "layer_name", "l7_name", "hook_name", "flag_names", "tcp_opt_names",
    "mptcp_subtype_name", "RecordSizeError",
]

#: Environment variable that points at a bpf_snippets directory (an installed copy, a test).
RECORD_HEADER = resources.RECORD_HEADER
PARSE_HEADER = "pktlab_parse.h"


class RecordSizeError(PktlabError, ValueError):
    """Bytes offered as a pl_record do not have the record's size."""


# --- locating and reading the header ---------------------------------------------------------

def snippets_dir() -> Path:
    """The bpf_snippets directory (pktlab/resources.py says where it is looked for)."""
    return Path(resources.snippets_dir())


_DEFINE = re.compile(
    r"^[ \t]*#define[ \t]+(PL_\w+)[ \t]+\(?(0[xX][0-9A-Fa-f]+|\d+)(?:[uU]?[lL]{0,2})\)?"
    r"[ \t]*(?:/\*(.*?)\*/)?", re.M)


@functools.lru_cache(maxsize=None)
def _read_defines() -> tuple[Mapping[str, int], Mapping[str, str]]:
    values: dict[str, int] = {}
    comments: dict[str, str] = {}
    d = snippets_dir()
    for name in (RECORD_HEADER, PARSE_HEADER):
        p = d / name
        if not p.is_file():
            continue        # the parse header only adds protocol numbers; the record is enough
        for m in _DEFINE.finditer(p.read_text()):
            values.setdefault(m.group(1), int(m.group(2), 0))
            if m.group(3):
                comments.setdefault(m.group(1), " ".join(m.group(3).split()))
    return MappingProxyType(values), MappingProxyType(comments)


def constants() -> Mapping[str, int]:
    """Every numeric ``#define PL_*`` of pktlab_record.h (and pktlab_parse.h), by name."""
    return _read_defines()[0]


def describe(name: str) -> str:
    """The header's own comment for a constant (e.g. why a status exists), or ''."""
    return _read_defines()[1].get(name, "")


def _names(prefix: str) -> dict[int, str]:
    out = {}
    for k, v in constants().items():
        if k.startswith(prefix) and not k.startswith(prefix + "_"):
            out.setdefault(v, k[len(prefix):])
    return out


@functools.lru_cache(maxsize=None)
def status_names() -> Mapping[int, str]:
    return MappingProxyType(_names("PL_ST_"))


@functools.lru_cache(maxsize=None)
def layer_names() -> Mapping[int, str]:
    return MappingProxyType(_names("PL_L_"))


@functools.lru_cache(maxsize=None)
def l7_names() -> Mapping[int, str]:
    return MappingProxyType(_names("PL_L7_"))


@functools.lru_cache(maxsize=None)
def hook_names() -> Mapping[int, str]:
    return MappingProxyType({k: v.lower().replace("_", "-") for k, v in _names("PL_HOOK_").items()})


@functools.lru_cache(maxsize=None)
def _flag_bits() -> tuple[tuple[int, str], ...]:
    return tuple(sorted(_names("PL_F_").items()))


@functools.lru_cache(maxsize=None)
def _tcpo_bits() -> tuple[tuple[int, str], ...]:
    return tuple(sorted(_names("PL_TCPO_").items()))


@functools.lru_cache(maxsize=None)
def mptcp_subtype_names() -> Mapping[int, str]:
    return MappingProxyType(_names("PL_MPTCP_"))


def status_name(v: int) -> str:
    return status_names().get(v, f"UNKNOWN({v})")


def layer_name(v: int) -> str:
    return layer_names().get(v, f"UNKNOWN({v})")


def l7_name(v: int) -> str:
    return l7_names().get(v, f"UNKNOWN({v})")


def hook_name(v: int) -> str:
    return hook_names().get(v, f"unknown({v})")


def flag_names(v: int) -> list[str]:
    return [n for bit, n in _flag_bits() if v & bit]


def tcp_opt_names(v: int) -> list[str]:
    """The PL_TCPO_* names of a tcp_opt_flags value (MSS, WSCALE, ..., OTHER, BAD)."""
    return [n for bit, n in _tcpo_bits() if v & bit]


def mptcp_subtype_name(v: int) -> str:
    """An MPTCP subtype's name (RFC 8684): MP_CAPABLE, MP_JOIN, DSS..., else 'subtype N'."""
    return mptcp_subtype_names().get(v, f"subtype {v}")


# --- the struct -----------------------------------------------------------------------------

_CTYPES = {"__u8": ctypes.c_uint8, "__u16": ctypes.c_uint16, "__u32": ctypes.c_uint32,
           "__u64": ctypes.c_uint64}
_STRUCT_CHARS = {1: "B", 2: "H", 4: "I", 8: "Q"}
_FIELD = re.compile(r"^[ \t]*(__u(?:8|16|32|64))[ \t]+(\w+)[ \t]*(?:\[[ \t]*(\w+)[ \t]*\])?[ \t]*;"
                    r"[ \t]*(?:/\*(.*?)(?:\*/|$))?", re.M)


@functools.lru_cache(maxsize=None)
def _parse_struct() -> tuple[tuple[str, str, int, str], ...]:
    """(name, C type, array length or 0, comment) for each pl_record field, in order."""
    path = snippets_dir() / RECORD_HEADER
    text = path.read_text()
    m = re.search(r"struct\s+pl_record\s*\{(.*?)\};", text, re.S)
    if not m:
        raise EnvironmentProblem(f"{path}: no `struct pl_record {{ ... }};` found; the header was "
                                 "edited into a shape pktlab/record.py cannot read; restore it "
                                 "from git or adjust record.py's parser")
    consts = constants()
    fields = []
    for f in _FIELD.finditer(m.group(1)):
        ctype, name, dim, comment = f.groups()
        n = 0
        if dim:
            n = int(dim, 0) if dim[0].isdigit() else consts.get(dim, -1)
            if n <= 0:
                raise EnvironmentProblem(f"{path}: pl_record.{name}[{dim}]: unknown array size; "
                                         f"define {dim} as a number in {RECORD_HEADER}")
        fields.append((name, ctype, n, " ".join((comment or "").split())))
    return tuple(fields)


class _RecordMixin:
    """Accessors shared by the generated Record class (kept apart so the layout stays pure)."""

    __slots__ = ()

    # names
    @property
    def status_name(self) -> str:
        return status_name(self.status)

    @property
    def layer_name(self) -> str:
        return layer_name(self.layer)

    @property
    def l7_name(self) -> str:
        return l7_name(self.l7)

    @property
    def hook_name(self) -> str:
        return hook_name(self.hook)

    @property
    def flag_names(self) -> list[str]:
        return flag_names(self.flags)

    # TCP options
    @property
    def tcp_opt_names(self) -> list[str]:
        """Which options the walk found, and how it ended (tcp_opt_flags by name)."""
        return tcp_opt_names(self.tcp_opt_flags)

    @property
    def mptcp_subtype_names(self) -> list[str]:
        """Every MPTCP option's subtype (mptcp_subtypes by name, lowest first), [] without."""
        return [mptcp_subtype_name(i) for i in range(16) if self.mptcp_subtypes >> i & 1]

    @property
    def mptcp_subtype_name(self) -> str:
        """The first MPTCP option's subtype by name, '' when there is no MPTCP option."""
        if not self.tcp_opt_flags & constants()["PL_TCPO_MPTCP"]:
            return ""
        return mptcp_subtype_name(self.mptcp_subtype)

    # addresses
    @property
    def dst_mac_str(self) -> str:
        return ":".join(f"{b:02x}" for b in bytes(self.dst_mac))

    @property
    def src_mac_str(self) -> str:
        return ":".join(f"{b:02x}" for b in bytes(self.src_mac))

    def _ip_filled(self) -> bool:
        c = constants()
        if self.layer < c["PL_L_IPV4"] or self.layer == c["PL_L_ARP"]:
            return False
        # A truncated fixed IP header leaves the addresses unset.
        return not (self.status == c["PL_ST_TRUNCATED"]
                    and self.layer in (c["PL_L_IPV4"], c["PL_L_IPV6"]))

    def _addr(self, raw) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        if not self._ip_filled():
            return None
        if self.eth_proto == 0x0800:
            return ipaddress.IPv4Address(bytes(raw)[:4])
        if self.eth_proto == 0x86DD:
            return ipaddress.IPv6Address(bytes(raw))
        return None

    @property
    def src_addr(self):
        """Source IP as an ipaddress object, or None when the walk never read one."""
        return self._addr(self.src_ip)

    @property
    def dst_addr(self):
        return self._addr(self.dst_ip)

    @property
    def vlan_ids(self) -> list[int]:
        return [t & 0xFFF for t in list(self.vlan_tci)[: self.vlan_depth]]

    @property
    def payload_bytes(self) -> bytes:
        """The peeked payload, trimmed to what the packet really has (at most PL_PAYLOAD_PEEK)."""
        return bytes(self.payload)[: min(self.payload_len, len(self.payload))]

    # conversions
    def to_bytes(self) -> bytes:
        return bytes(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: every field (MACs, IPs as text, arrays as lists), plus names."""
        d: dict[str, Any] = {}
        for name, _ct, n, _c in _parse_struct():
            v = getattr(self, name)
            if name in ("dst_mac", "src_mac"):
                v = ":".join(f"{b:02x}" for b in bytes(v))
            elif name in ("src_ip", "dst_ip"):
                a = self._addr(v)
                v = str(a) if a is not None else ""
            elif name == "payload":
                v = self.payload_bytes.hex()
            elif n:
                v = list(v)
            d[name] = v
        d["hook_name"] = self.hook_name
        d["status_name"] = self.status_name
        d["layer_name"] = self.layer_name
        d["l7_name"] = self.l7_name
        d["flag_names"] = self.flag_names
        d["tcp_opt_names"] = self.tcp_opt_names
        d["mptcp_subtype_name"] = self.mptcp_subtype_name
        d["mptcp_subtype_names"] = self.mptcp_subtype_names
        d["fingerprint_hex"] = f"{self.fingerprint:016x}"
        return d

    def __eq__(self, other):
        if isinstance(other, _RecordMixin):
            return bytes(self) == bytes(other)
        return NotImplemented

    __hash__ = None  # mutable, like every ctypes structure

    def __repr__(self) -> str:
        parts = [f"{self.status_name}@{self.layer_name}", f"len={self.frame_len}"]
        if self.ip_version:
            parts.append(f"{self.src_addr}->{self.dst_addr}")
        if self.sport or self.dport:
            parts.append(f"ports={self.sport}->{self.dport}")
        if self.l7:
            parts.append(self.l7_name)
        return f"Record({', '.join(parts)})"


@functools.lru_cache(maxsize=None)
def _build():
    fields = _parse_struct()
    cfields = []
    for name, ctype, n, _c in fields:
        t = _CTYPES[ctype]
        cfields.append((name, t * n if n else t))
    # ctypes.Structure is host byte order, which is what the kernel writes.
    cls = type("Record", (_RecordMixin, ctypes.Structure),
               {"_fields_": cfields, "__module__": __name__,
                "__doc__": "struct pl_record, generated from bpf_snippets/pktlab_record.h."})
    # The same layout as a struct format; pad bytes where ctypes put padding (there should be
    # none, the layout test says so) so the two can never disagree silently.
    fmt, pos = "=", 0
    for name, ctype, n, _c in fields:
        off = getattr(cls, name).offset
        if off > pos:
            fmt += f"{off - pos}x"
        size = ctypes.sizeof(_CTYPES[ctype])
        if n and size == 1:
            fmt += f"{n}s"
        else:
            fmt += (str(n) if n else "") + _STRUCT_CHARS[size]
        pos = off + getattr(cls, name).size
    total = ctypes.sizeof(cls)
    if total > pos:
        fmt += f"{total - pos}x"
    st = struct.Struct(fmt)
    assert st.size == total, (fmt, st.size, total)
    return cls, st


def _build_dtype():
    import numpy as np  # only the bulk readers need numpy

    cls, _ = _build()
    names, formats, offsets = [], [], []
    for name, ctype, n, _c in _parse_struct():
        base = np.dtype(f"=u{ctypes.sizeof(_CTYPES[ctype])}")
        names.append(name)
        formats.append((base, (n,)) if n else base)
        offsets.append(getattr(cls, name).offset)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": ctypes.sizeof(cls)})


_lazy_dtype = functools.lru_cache(maxsize=None)(_build_dtype)


def __getattr__(name: str):
    # Module-level lazy attributes: the header is read on first use, not at import.
    if name == "Record":
        return _build()[0]
    if name == "RECORD_STRUCT":
        return _build()[1]
    if name == "RECORD_DTYPE":
        return _lazy_dtype()
    if name == "RECORD_SIZE":
        return ctypes.sizeof(_build()[0])
    if name == "RECORD_FIELDS":
        return tuple(f[0] for f in _parse_struct())
    if name.startswith("PL_"):
        try:
            return constants()[name]
        except KeyError:
            pass
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- helpers --------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _fnv():
    """(offset basis, prime, PL_HASH_BYTES, PL_HASH_MAX) for pl_fingerprint()."""
    c = constants()
    return c["PL_FNV_OFFSET"], c["PL_FNV_PRIME"], c["PL_HASH_BYTES"], c["PL_HASH_MAX"]


def hashed_bytes(readable: int, parse_end: int = 0) -> int:
    """How many of a frame's first bytes pl_fingerprint() hashes: at least PL_HASH_BYTES, every
    byte the parse read (parse_end) rounded up to a word, at most PL_HASH_MAX, and never more
    than the hook could read."""
    _o, _p, nbytes, cap = _fnv()
    want = max(nbytes, (parse_end + 7) & ~7)
    return min(readable, want, cap)


@functools.lru_cache(maxsize=4096)
def _unpacker(n: int):
    """Unpacks the n hashed bytes into the values pl_fingerprint() folds: little-endian words
    while 8 bytes remain, then the single bytes of a frame that ends inside a word."""
    return struct.Struct(f"<{n // 8}Q{n % 8}B").unpack_from


def fingerprint(frame: bytes, length: int | None = None, parse_end: int = 0) -> int:
    """pl_fingerprint(), as the hooks compute it (pktlab_record.h): FNV-1a 64 over the first
    hashed_bytes(len(frame), parse_end) bytes, then the frame length (``length``, default
    len(frame): a hook passes the length it saw, which may exceed what it could read).

    The mask is applied every other step: xor with a value below 2**64 and multiplication both
    commute with ``mod 2**64``, so the high bits that pile up in between never reach the low 64.
    """
    offset, prime, _nb, _cap = _fnv()
    n = len(frame)
    h = offset
    odd = False
    for v in _unpacker(hashed_bytes(n, parse_end))(frame):
        h = (h ^ v) * prime
        if odd:
            h &= 0xFFFFFFFFFFFFFFFF
        odd = not odd
    return ((h & 0xFFFFFFFFFFFFFFFF ^ ((n if length is None else length) & 0xFFFFFFFF))
            * prime & 0xFFFFFFFFFFFFFFFF)


def _fingerprinter():
    """fingerprint() for the walker's hot path, as fp(frame, n, parse_end) with n = len(frame):
    the common case (whole words) inside, the rest through fingerprint()."""
    C = constants()
    fallback = fingerprint
    FNV_OFF, FNV_PRIME, M64 = C["PL_FNV_OFFSET"], C["PL_FNV_PRIME"], 0xFFFFFFFFFFFFFFFF
    HASH_MIN, HASH_MAX = C["PL_HASH_BYTES"], C["PL_HASH_MAX"]
    WORDS = [struct.Struct(f"<{k}Q").unpack_from for k in range(HASH_MAX // 8 + 1)]

    def fp(frame, n, pend):
        hb = HASH_MIN if pend <= HASH_MIN else (pend + 7) & ~7
        if hb > n or hb > HASH_MAX:
            return fallback(frame, None, pend)
        h = FNV_OFF
        # two steps per mask: xor with a word below 2**64 and the multiplication both commute
        # with mod 2**64, so masking every other step gives the same low 64 bits
        ws = WORDS[hb >> 3](frame)
        for i in range(0, len(ws) - 1, 2):
            h = ((h ^ ws[i]) * FNV_PRIME ^ ws[i + 1]) * FNV_PRIME & M64
        if len(ws) & 1:
            h = (h ^ ws[-1]) * FNV_PRIME & M64
        return (h ^ (n & 0xFFFFFFFF)) * FNV_PRIME & M64

    return fp


def fingerprints(frames, parse_ends=None) -> "numpy.ndarray":
    """pl_fingerprint() of many frames at once (numpy, uint64 arithmetic wraps like C's)."""
    import numpy as np

    frames = [f if type(f) is bytes else bytes(f) for f in frames]
    count = len(frames)
    lens = np.fromiter((len(f) for f in frames), dtype=np.int64, count=count)
    if parse_ends is None:
        parse_ends = np.zeros(count, dtype=np.int64)
    parse_ends = np.asarray(parse_ends, dtype=np.int64)
    width = _hashed(lens, parse_ends).max(initial=_fnv()[2])
    width = (int(width) + 7) & ~7
    buf = np.frombuffer(b"".join(f[:width].ljust(width, b"\0") for f in frames),
                        dtype=np.uint8).reshape(count, width)
    return fingerprints_of_prefixes(buf, lens, parse_ends)


def _hashed(lens, parse_ends):
    """hashed_bytes() of arrays."""
    import numpy as np
    _o, _p, nbytes, cap = _fnv()
    want = np.maximum(nbytes, (parse_ends + 7) & ~7)
    return np.minimum(np.minimum(lens, want), cap)


def fingerprints_of_prefixes(buf, lens, parse_ends=None) -> "numpy.ndarray":
    """pl_fingerprint() from a (count, width) uint8 matrix of frame starts, zero-padded (or
    padded with anything: bytes past a frame's hashed length are never read), the frames'
    lengths and their records' parse_end: the bulk walker already holds such a matrix. The
    matrix must be at least as wide as every row's hashed bytes (rounded up to 8)."""
    import numpy as np

    offset, prime, nbytes, _cap = _fnv()
    count = len(lens)
    lens = np.asarray(lens, dtype=np.int64)
    pe = np.zeros(count, dtype=np.int64) if parse_ends is None else \
        np.asarray(parse_ends, dtype=np.int64)
    hashed = _hashed(lens, pe)
    nwords = hashed // 8
    maxw = int(nwords.max(initial=0))
    width = buf.shape[1] if count else 0
    if count and int(hashed.max()) > width:
        raise ValueError(f"fingerprints_of_prefixes: a {width}-byte matrix is narrower than "
                         f"the {int(hashed.max())} bytes some frame hashes")
    buf = np.ascontiguousarray(buf)
    words = (buf[:, :width - width % 8] if width % 8 else buf).copy().view("<u8") \
        if width % 8 else buf.view("<u8")
    h = np.full(count, offset, dtype=np.uint64)
    p = np.uint64(prime)
    with np.errstate(over="ignore"):
        # the first words for every row; the long tail only for the rows that have one
        for i in range(min(maxw, nbytes // 8)):
            m = nwords > i
            h = np.where(m, (h ^ words[:, i]) * p, h)
        if maxw > nbytes // 8:
            rows = np.flatnonzero(nwords > nbytes // 8)
            hr, wr, nr = h[rows], words[rows], nwords[rows]
            for i in range(nbytes // 8, maxw):
                m = nr > i
                hr = np.where(m, (hr ^ wr[:, i]) * p, hr)
            h[rows] = hr
        singles = hashed - 8 * nwords
        for j in range(7):
            m = singles > j
            if not m.any():
                break
            idx = np.minimum(8 * nwords + j, buf.shape[1] - 1)
            b = buf[np.arange(count), idx].astype(np.uint64)
            h = np.where(m, (h ^ b) * p, h)
        h = (h ^ (lens & 0xFFFFFFFF).astype(np.uint64)) * p
    return h


def record_from_bytes(b: bytes | bytearray | memoryview):
    """A Record from exactly sizeof(pl_record) bytes (a record ring slot, a saved record)."""
    cls = _build()[0]
    size = ctypes.sizeof(cls)
    mv = memoryview(b).cast("B")
    if mv.nbytes != size:
        raise RecordSizeError(f"record from {mv.nbytes} bytes: a pl_record is {size} bytes; "
                              "pass exactly one record (slice the buffer at record boundaries) "
                              "or use records_from_buffer() for many")
    return cls.from_buffer_copy(mv)


def records_from_buffer(b):
    """A numpy array (RECORD_DTYPE) over a buffer holding whole records back to back."""
    import numpy as np

    dt = _lazy_dtype()
    mv = memoryview(b).cast("B")
    if mv.nbytes % dt.itemsize:
        raise RecordSizeError(f"records from {mv.nbytes} bytes: not a multiple of the "
                              f"{dt.itemsize}-byte pl_record; the buffer is cut or holds other "
                              "data; pass whole records")
    return np.frombuffer(mv, dtype=dt)


def _as_record(x):
    cls = _build()[0]
    if isinstance(x, cls):
        return x
    if isinstance(x, (bytes, bytearray, memoryview)):
        return record_from_bytes(x)
    try:   # a numpy record (np.void) of RECORD_DTYPE
        return record_from_bytes(x.tobytes())
    except AttributeError:
        raise TypeError(f"compare_fields: {type(x).__name__} is not a Record, bytes or a "
                        "RECORD_DTYPE element") from None


def compare_fields(a, b, ignore: Iterable[str] = ("ts_ns", "ifindex", "hook")) -> list[str]:
    """Names of the fields where two records differ (record order), skipping ``ignore``.

    The default ignores what only a hook sets (time, interface, which hook), so a hook's record
    can be compared with the walker's directly.
    """
    ra, rb = _as_record(a), _as_record(b)
    skip = set(ignore)
    out = []
    for name, _ct, n, _c in _parse_struct():
        if name in skip:
            continue
        va, vb = getattr(ra, name), getattr(rb, name)
        if n:
            conv = bytes if _ct == "__u8" else list
            va, vb = conv(va), conv(vb)
        if va != vb:
            out.append(name)
    return out


def field_comments() -> Mapping[str, str]:
    """Each record field's comment from the header: what it holds, in the C author's words."""
    return MappingProxyType({f[0]: f[3] for f in _parse_struct()})


def field_layout() -> Sequence[tuple[str, int, int]]:
    """(name, offset, size) of every record field, as ctypes laid them out."""
    cls = _build()[0]
    return tuple((n, getattr(cls, n).offset, getattr(cls, n).size) for n, *_ in _parse_struct())
