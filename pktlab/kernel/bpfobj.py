"""What the kernel says about a program or map fd (BPF_OBJ_GET_INFO_BY_FD), whether an id is
still loaded, and which processes hold it (/proc/*/fdinfo).

    info = prog_info(fd)      # ProgInfo(type, id, map_ids, name, created_by_uid)
    info = map_info(fd)       # MapInfo(type, id, key_size, value_size, max_entries, flags, name)
    prog_exists(id), map_exists(id)
    holders("prog_id", id)    # {pid: [fd, ...]} of every process holding it
"""

import ctypes
import dataclasses
import errno
import os
import platform

BPF_MAP_GET_NEXT_ID, BPF_PROG_GET_FD_BY_ID, BPF_MAP_GET_FD_BY_ID = 12, 13, 14
BPF_OBJ_GET_INFO_BY_FD = 15
NR_BPF = {"x86_64": 321, "AMD64": 321, "aarch64": 280, "arm64": 280}


class _InfoAttr(ctypes.Structure):
    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32),
                ("info", ctypes.c_uint64)]


class _IdAttr(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint32), ("next_id", ctypes.c_uint32),
                ("open_flags", ctypes.c_uint32)]


class _ProgInfo(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("tag", ctypes.c_uint8 * 8),
                ("jited_prog_len", ctypes.c_uint32), ("xlated_prog_len", ctypes.c_uint32),
                ("jited_prog_insns", ctypes.c_uint64), ("xlated_prog_insns", ctypes.c_uint64),
                ("load_time", ctypes.c_uint64), ("created_by_uid", ctypes.c_uint32),
                ("nr_map_ids", ctypes.c_uint32), ("map_ids", ctypes.c_uint64),
                ("name", ctypes.c_char * 16)]


class _MapInfo(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32),
                ("key_size", ctypes.c_uint32), ("value_size", ctypes.c_uint32),
                ("max_entries", ctypes.c_uint32), ("map_flags", ctypes.c_uint32),
                ("name", ctypes.c_char * 16)]


@dataclasses.dataclass(frozen=True)
class ProgInfo:
    type: int
    id: int
    map_ids: tuple
    name: str
    created_by_uid: int


@dataclasses.dataclass(frozen=True)
class MapInfo:
    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    name: str


_syscall = None


def _bpf(cmd, attr):
    global _syscall
    if _syscall is None:
        libc = ctypes.CDLL(None, use_errno=True)
        _syscall = libc.syscall
        _syscall.restype = ctypes.c_long
        _syscall.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_ulong]
    rc = _syscall(NR_BPF[platform.machine()], cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if rc < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return rc


def _info(fd, info):
    attr = _InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    _bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    return info


def prog_info(fd, max_maps=64):
    """The kernel's word on a program fd (OSError when it is not one)."""
    ids = (ctypes.c_uint32 * max_maps)()
    raw = _ProgInfo(nr_map_ids=max_maps, map_ids=ctypes.addressof(ids))
    _info(fd, raw)
    n = min(raw.nr_map_ids, max_maps)
    return ProgInfo(raw.type, raw.id, tuple(ids[:n]), raw.name.decode(errors="replace"),
                    raw.created_by_uid)


def map_info(fd):
    """The kernel's word on a map fd (OSError when it is not one)."""
    raw = _info(fd, _MapInfo())
    return MapInfo(raw.type, raw.id, raw.key_size, raw.value_size, raw.max_entries,
                   raw.map_flags, raw.name.decode(errors="replace"))


def _exists(cmd, obj_id):
    try:
        fd = _bpf(cmd, _IdAttr(id=obj_id))
    except OSError as e:
        if e.errno == errno.ENOENT:
            return False
        raise
    os.close(fd)
    return True


def prog_exists(prog_id):
    """Is a program of this id still loaded (needs CAP_SYS_ADMIN)?"""
    return _exists(BPF_PROG_GET_FD_BY_ID, prog_id)


def map_exists(map_id):
    """Is a map of this id still in the kernel (needs CAP_SYS_ADMIN)?"""
    return _exists(BPF_MAP_GET_FD_BY_ID, map_id)


def holders(field, obj_id):
    """{pid: [fds]} of every process with an fd whose fdinfo says `field: obj_id` (field
    "prog_id" or "map_id"): who holds a program or map."""
    out = {}
    want = f"{field}:\t{obj_id}\n"
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fdinfo")
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    text = f.read()
            except OSError:
                continue
            if want in text:
                out.setdefault(int(pid), []).append(int(fd))
    return out


# map contents --------------------------------------------------------------------------------
BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_GET_NEXT_KEY, BPF_MAP_LOOKUP_BATCH = 1, 2, 4, 24
#: the kernel's "this map type has no batch lookup" (ENOTSUPP is 524, kernel-internal)
NO_BATCH = (errno.EINVAL, errno.EOPNOTSUPP, 524)


class _ElemAttr(ctypes.Structure):
    _fields_ = [("map_fd", ctypes.c_uint32), ("_pad", ctypes.c_uint32),
                ("key", ctypes.c_uint64), ("value", ctypes.c_uint64),
                ("flags", ctypes.c_uint64)]


class _BatchAttr(ctypes.Structure):
    _fields_ = [("in_batch", ctypes.c_uint64), ("out_batch", ctypes.c_uint64),
                ("keys", ctypes.c_uint64), ("values", ctypes.c_uint64),
                ("count", ctypes.c_uint32), ("map_fd", ctypes.c_uint32),
                ("elem_flags", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


def map_lookup(fd, key, value_bytes):
    """The value's bytes at `key` (a ctypes object or bytes); None when the key is absent.
    value_bytes: the whole value (for a per-CPU map, every CPU's copy: round_up(size, 8) x
    possible CPUs)."""
    k = ctypes.create_string_buffer(bytes(key), len(bytes(key)))
    v = ctypes.create_string_buffer(value_bytes)
    try:
        _bpf(BPF_MAP_LOOKUP_ELEM, _ElemAttr(map_fd=fd, key=ctypes.addressof(k),
                                            value=ctypes.addressof(v)))
    except OSError as e:
        if e.errno == errno.ENOENT:
            return None
        raise
    return v.raw


def map_update(fd, key, value):
    """Write `value` (bytes) at `key` (a ctypes object or bytes): BPF_MAP_UPDATE_ELEM, any."""
    k = ctypes.create_string_buffer(bytes(key), len(bytes(key)))
    v = ctypes.create_string_buffer(bytes(value), len(bytes(value)))
    _bpf(BPF_MAP_UPDATE_ELEM, _ElemAttr(map_fd=fd, key=ctypes.addressof(k),
                                        value=ctypes.addressof(v)))


def map_keys(fd, key_size, limit):
    """Up to `limit` keys (bytes), in the kernel's order (BPF_MAP_GET_NEXT_KEY)."""
    out, cur = [], None
    nxt = ctypes.create_string_buffer(key_size)
    while len(out) < limit:
        k = ctypes.create_string_buffer(cur, key_size) if cur is not None else None
        try:
            _bpf(BPF_MAP_GET_NEXT_KEY, _ElemAttr(map_fd=fd, key=ctypes.addressof(k) if k else 0,
                                                 value=ctypes.addressof(nxt)))
        except OSError as e:
            if e.errno == errno.ENOENT:
                break
            raise
        cur = nxt.raw
        out.append(cur)
    return out


def map_batch(fd, key_size, value_bytes, limit, chunk=4096):
    """Up to `limit` (key, value) byte pairs by BPF_MAP_LOOKUP_BATCH; None when the map type
    has no batch lookup (the caller then walks the keys)."""
    out, token_in = [], None
    token_out = ctypes.create_string_buffer(max(key_size, 8))
    while len(out) < limit:
        n = min(chunk, limit - len(out))
        keys = ctypes.create_string_buffer(key_size * n)
        values = ctypes.create_string_buffer(value_bytes * n)
        attr = _BatchAttr(in_batch=ctypes.addressof(token_in) if token_in is not None else 0,
                          out_batch=ctypes.addressof(token_out), keys=ctypes.addressof(keys),
                          values=ctypes.addressof(values), count=n, map_fd=fd)
        done = False
        try:
            _bpf(BPF_MAP_LOOKUP_BATCH, attr)
        except OSError as e:
            if e.errno in NO_BATCH and not out and token_in is None:
                return None
            if e.errno != errno.ENOENT:
                raise
            done = True
        kr, vr = keys.raw, values.raw
        out += [(kr[i * key_size:(i + 1) * key_size], vr[i * value_bytes:(i + 1) * value_bytes])
                for i in range(attr.count)]
        if done or attr.count == 0:
            break
        token_in = ctypes.create_string_buffer(token_out.raw, len(token_out))
    return out
