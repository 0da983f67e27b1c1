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
and every offset agree. Nothing is read at import time: ``from pktlab.record import Record`` (or
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

from .errors import EnvironmentProblem, PktlabError

__all__ = [
    "Record", "RECORD_DTYPE", "RECORD_STRUCT", "RECORD_FIELDS", "constants", "describe",
    "fingerprint", "record_from_bytes", "records_from_buffer", "compare_fields", "snippets_dir",
    "status_name", "layer_name", "l7_name", "hook_name", "flag_names", "RecordSizeError",
]

#: Environment variable that points at a bpf_snippets directory (an installed copy, a test).
SNIPPETS_ENV = "PKTLAB_BPF_SNIPPETS"
RECORD_HEADER = "pktlab_record.h"
PARSE_HEADER = "pktlab_parse.h"


class RecordSizeError(PktlabError, ValueError):
    """Bytes offered as a pl_record do not have the record's size."""


# --- locating and reading the header ---------------------------------------------------------

def snippets_dir() -> Path:
    """The bpf_snippets directory: $PKTLAB_BPF_SNIPPETS, else the sibling of the package.

    The repository keeps pktlab/ and bpf_snippets/ side by side and is installed editable, so
    the sibling is found both from a checkout and from the installed package.
    """
    here = Path(__file__).resolve().parent
    candidates = []
    if os.environ.get(SNIPPETS_ENV):
        candidates.append(Path(os.environ[SNIPPETS_ENV]))
    candidates += [here.parent / "bpf_snippets", here / "bpf_snippets"]
    for c in candidates:
        if (c / RECORD_HEADER).is_file():
            return c
    raise EnvironmentProblem(
        f"pktlab record header {RECORD_HEADER}: not found in {', '.join(map(str, candidates))}; "
        "the checkout is incomplete or pktlab was installed without its bpf_snippets; "
        f"install it editable from the repository (pip install -e .) or set {SNIPPETS_ENV}")


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
    """(offset basis, prime, unpackers by hashed length) for pl_fingerprint()."""
    c = constants()
    nbytes = c["PL_HASH_BYTES"]
    # pl_fingerprint() folds whole little-endian words while 8 bytes remain (at most
    # nbytes/8), then at most 7 single bytes when it stopped early. Both steps are the same
    # xor-then-multiply, so for each possible number of bytes one struct call yields every
    # value to fold, in order.
    units = []
    for n in range(nbytes + 1):
        words = min(n // 8, nbytes // 8)
        singles = min(n - 8 * words, 7) if words < nbytes // 8 else 0
        units.append(struct.Struct(f"<{words}Q{singles}B").unpack_from)
    return c["PL_FNV_OFFSET"], c["PL_FNV_PRIME"], nbytes, tuple(units)


def fingerprint(frame: bytes, length: int | None = None) -> int:
    """pl_fingerprint(): FNV-1a 64 over min(len, 64) bytes, as the hooks compute it.

    Little-endian 8-byte words while 8 bytes remain, then single bytes, then the frame length
    (``length``, default len(frame): a hook passes the length it saw). The mask is applied
    every other step: xor with a value below 2**64 and multiplication both commute with
    ``mod 2**64``, so the high bits that pile up in between never reach the low 64.
    """
    offset, prime, nbytes, units = _fnv()
    n = len(frame)
    h = offset
    odd = False
    for v in units[n if n < nbytes else nbytes](frame):
        h = (h ^ v) * prime
        if odd:
            h &= 0xFFFFFFFFFFFFFFFF
        odd = not odd
    return ((h & 0xFFFFFFFFFFFFFFFF ^ ((n if length is None else length) & 0xFFFFFFFF))
            * prime & 0xFFFFFFFFFFFFFFFF)


def fingerprints(frames) -> "numpy.ndarray":
    """pl_fingerprint() of many frames at once (numpy, uint64 arithmetic wraps like C's)."""
    import numpy as np

    nbytes = _fnv()[2]
    frames = [f if type(f) is bytes else bytes(f) for f in frames]
    count = len(frames)
    lens = np.fromiter((len(f) for f in frames), dtype=np.int64, count=count)
    buf = np.frombuffer(b"".join(f[:nbytes].ljust(nbytes, b"\0") for f in frames),
                        dtype=np.uint8).reshape(count, nbytes)
    return fingerprints_of_prefixes(buf, lens)


def fingerprints_of_prefixes(buf, lens) -> "numpy.ndarray":
    """pl_fingerprint() from a (count, >= PL_HASH_BYTES) uint8 matrix of zero-padded frame
    starts and the frames' lengths: the bulk walker already holds such a matrix."""
    import numpy as np

    offset, prime, nbytes, _u = _fnv()
    count = len(lens)
    buf = np.ascontiguousarray(buf[:, :nbytes])
    words = buf.view("<u8")
    h = np.full(count, offset, dtype=np.uint64)
    p = np.uint64(prime)
    hashed = np.minimum(lens, nbytes)
    nwords = np.minimum(hashed // 8, nbytes // 8)
    with np.errstate(over="ignore"):
        for i in range(nbytes // 8):
            m = nwords > i
            h = np.where(m, (h ^ words[:, i]) * p, h)
        singles = np.where(nwords < nbytes // 8, np.minimum(hashed - 8 * nwords, 7), 0)
        for j in range(7):
            m = singles > j
            if not m.any():
                break
            idx = np.minimum(8 * nwords + j, nbytes - 1)
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
