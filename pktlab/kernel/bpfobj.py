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
