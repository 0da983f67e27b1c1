"""Read struct member offsets from the running kernel's BTF (/sys/kernel/btf/vmlinux).

The kprobe hook reads sk_buff fields with bpf_probe_read_kernel(). Where those fields sit
changes between kernel versions and configs, and the headers bcc compiles against may be from
another kernel (on the CI machine they are Debian 6.1 headers for a 6.18 kernel), so offsets
come from here and reach the program as -D constants.

Only what pktlab needs is implemented: walk the type section once, then resolve member paths
(through anonymous structs/unions) and function parameter types. Format: the kernel's
Documentation/bpf/btf.rst.
"""

import functools
import os
import struct

from ..errors import EnvironmentProblem

VMLINUX = "/sys/kernel/btf/vmlinux"

KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_FWD = range(1, 8)
KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_FUNC, KIND_FUNC_PROTO = range(8, 14)
KIND_VAR, KIND_DATASEC, KIND_FLOAT, KIND_DECL_TAG, KIND_TYPE_TAG, KIND_ENUM64 = range(14, 20)

# bytes of kind-specific data after the 12-byte common header: (fixed, per vlen item)
_TRAILER = {
    KIND_INT: (4, 0), KIND_ARRAY: (12, 0), KIND_STRUCT: (0, 12), KIND_UNION: (0, 12),
    KIND_ENUM: (0, 8), KIND_FUNC_PROTO: (0, 8), KIND_VAR: (4, 0), KIND_DATASEC: (0, 12),
    KIND_DECL_TAG: (4, 0), KIND_ENUM64: (0, 12),
}
_MODIFIERS = (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG)


class BTF:
    """A parsed BTF blob: types by id, struct lookup by name."""

    def __init__(self, blob, source=VMLINUX):
        self.source = source
        magic, version, flags, hdr_len = struct.unpack_from("<HBBI", blob, 0)
        if magic != 0xEB9F:
            raise EnvironmentProblem(f"{source}: not BTF (magic {magic:#x}); the kernel needs "
                                     "CONFIG_DEBUG_INFO_BTF=y")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", blob, 8)
        self._blob = blob
        self._str0 = hdr_len + str_off
        self._str_end = self._str0 + str_len
        self._types = [None]        # id 0 is void
        self._by_name = {}
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len
        unpack = struct.Struct("<III").unpack_from
        while pos < end:
            name_off, info, size_type = unpack(blob, pos)
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            fixed, per = _TRAILER.get(kind, (0, 0))
            tid = len(self._types)
            self._types.append((kind, name_off, info, size_type, pos + 12, vlen))
            if kind in (KIND_STRUCT, KIND_UNION, KIND_FUNC) and name_off:
                self._by_name.setdefault((kind, name_off), tid)
            pos += 12 + fixed + per * vlen
        self._name_index = None

    def _str(self, off):
        end = self._blob.index(b"\0", self._str0 + off)
        return self._blob[self._str0 + off:end].decode()

    def _find(self, kind, name):
        if self._name_index is None:
            self._name_index = {(k, self._str(off)): tid for (k, off), tid in self._by_name.items()}
        tid = self._name_index.get((kind, name))
        if tid is None:
            what = "function" if kind == KIND_FUNC else "struct"
            raise KeyError(f"{what} {name} not in {self.source}")
        return tid

    def _resolve(self, tid):
        """Skip typedefs and qualifiers."""
        while self._types[tid] and self._types[tid][0] in _MODIFIERS:
            tid = self._types[tid][3]
        return tid

    def size_of(self, tid):
        tid = self._resolve(tid)
        kind, _, _, size_type, data, _ = self._types[tid]
        if kind in (KIND_INT, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_ENUM64, KIND_FLOAT):
            return size_type
        if kind == KIND_PTR:
            return 8
        if kind == KIND_ARRAY:
            elem, _, nelems = struct.unpack_from("<III", self._blob, data)
            return self.size_of(elem) * nelems
        raise KeyError(f"type {tid} (kind {kind}) has no size")

    def _members(self, tid):
        kind, _, info, _, data, vlen = self._types[tid]
        kflag = info >> 31
        for i in range(vlen):
            name_off, mtype, off = struct.unpack_from("<III", self._blob, data + 12 * i)
            bit = off & 0xFFFFFF if kflag else off
            yield (self._str(name_off) if name_off else ""), mtype, bit

    def _member(self, tid, name):
        """(bit offset, type id) of `name` in struct/union tid, looking into anonymous members."""
        for mname, mtype, bit in self._members(tid):
            if mname == name:
                return bit, mtype
            if not mname:
                inner = self._resolve(mtype)
                if self._types[inner][0] in (KIND_STRUCT, KIND_UNION):
                    found = self._member(inner, name)
                    if found:
                        return bit + found[0], found[1]
        return None

    def offset(self, path):
        """Byte offset and size of a member path such as 'sk_buff.dev' or 'net.ns.inum'."""
        parts = path.split(".")
        tid = self._find(KIND_STRUCT, parts[0])
        total = 0
        for p in parts[1:]:
            found = self._member(self._resolve(tid), p)
            if found is None:
                raise KeyError(f"{path}: no member {p} in the running kernel's BTF")
            bit, tid = found
            if bit % 8:
                raise KeyError(f"{path}: {p} is a bitfield; pktlab reads whole bytes")
            total += bit // 8
        return total, self.size_of(tid)

    def func_param_pointer_depth(self, func, index=0, target="sk_buff"):
        """How many pointers deep parameter `index` of `func` is to struct `target` (1 or 2)."""
        ftid = self._find(KIND_FUNC, func)
        proto = self._types[ftid][3]
        kind, _, _, _, data, vlen = self._types[proto]
        if index >= vlen:
            raise KeyError(f"{func} has {vlen} parameters")
        _, ptype = struct.unpack_from("<II", self._blob, data + 8 * index)
        depth = 0
        tid = self._resolve(ptype)
        while self._types[tid] and self._types[tid][0] == KIND_PTR:
            depth += 1
            tid = self._resolve(self._types[tid][3])
        name = self._str(self._types[tid][1]) if self._types[tid] else "void"
        if name != target:
            raise KeyError(f"{func} parameter {index} is not a pointer to struct {target}")
        return depth

    def has_func(self, func):
        try:
            self._find(KIND_FUNC, func)
            return True
        except KeyError:
            return False


@functools.lru_cache(maxsize=1)
def vmlinux():
    """The running kernel's BTF, parsed once per process ($PKTLAB_BTF overrides the path)."""
    path = os.environ.get("PKTLAB_BTF", VMLINUX)
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except FileNotFoundError:
        raise EnvironmentProblem(f"{path} is missing: this kernel was built without "
                                 "CONFIG_DEBUG_INFO_BTF; the kprobe hook needs it to find sk_buff "
                                 "fields (use a distribution kernel, which has it)") from None
    except PermissionError:
        raise EnvironmentProblem(f"{path}: permission denied; run pktlab as root") from None
    return BTF(blob, path)


# What the kprobe hook reads, as -D names for its compile.
SKB_FIELDS = {
    "PL_OFF_SKB_HEAD": "sk_buff.head",
    "PL_OFF_SKB_DATA": "sk_buff.data",
    "PL_OFF_SKB_LEN": "sk_buff.len",
    "PL_OFF_SKB_DATA_LEN": "sk_buff.data_len",
    "PL_OFF_SKB_MAC_HEADER": "sk_buff.mac_header",
    "PL_OFF_SKB_DEV": "sk_buff.dev",
    "PL_OFF_DEV_IFINDEX": "net_device.ifindex",
    "PL_OFF_DEV_NET": "net_device.nd_net",
    "PL_OFF_NET_INUM": "net.ns.inum",
}
EXPECTED_SIZES = {"PL_OFF_SKB_HEAD": 8, "PL_OFF_SKB_DATA": 8, "PL_OFF_SKB_LEN": 4,
                  "PL_OFF_SKB_DATA_LEN": 4,
                  "PL_OFF_SKB_MAC_HEADER": 2, "PL_OFF_SKB_DEV": 8, "PL_OFF_DEV_IFINDEX": 4,
                  "PL_OFF_DEV_NET": 8, "PL_OFF_NET_INUM": 4}


@functools.lru_cache(maxsize=1)
def skb_offsets():
    """{define: byte offset} for the kprobe hook, checked for the sizes the program reads."""
    btf = vmlinux()
    out = {}
    for define, path in SKB_FIELDS.items():
        try:
            off, size = btf.offset(path)
        except KeyError as e:
            raise EnvironmentProblem(f"kernel BTF: {e}; this kernel's sk_buff differs from "
                                     "what pktlab knows, please report it") from None
        if size != EXPECTED_SIZES[define]:
            raise EnvironmentProblem(f"kernel BTF: {path} is {size} bytes, pktlab reads "
                                     f"{EXPECTED_SIZES[define]}; please report this kernel")
        out[define] = off
    return out


# What the recv hook reads to know a thread's network namespace (current->nsproxy->net_ns
# ->net_cookie): tracepoint programs may not call bpf_get_netns_cookie().
NETNS_FIELDS = {
    "PL_OFF_TASK_NSPROXY": ("task_struct.nsproxy", 8),
    "PL_OFF_NSPROXY_NET": ("nsproxy.net_ns", 8),
    "PL_OFF_NET_COOKIE": ("net.net_cookie", 8),
}


@functools.lru_cache(maxsize=1)
def netns_offsets():
    """{define: byte offset} for the recv hook's namespace test, checked for their sizes."""
    btf = vmlinux()
    out = {}
    for define, (path, want) in NETNS_FIELDS.items():
        try:
            off, size = btf.offset(path)
        except KeyError as e:
            raise EnvironmentProblem(f"kernel BTF: {e}; the recv hook needs it to tell the "
                                     "lab's threads from others (Linux 5.14 or newer has "
                                     "net.net_cookie)") from None
        if size != want:
            raise EnvironmentProblem(f"kernel BTF: {path} is {size} bytes, pktlab reads {want}; "
                                     "please report this kernel")
        out[define] = off
    return out
