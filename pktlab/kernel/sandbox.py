"""The learner loader's cell: what a worker process does to itself before it compiles a
learner's C (pktlab.kernel.loadworker runs these, in this order; stdlib and ctypes only).

    enter_view(view)       new mount, network, IPC and UTS namespaces; a root of its own that
                           holds only the kernel headers bcc reads, pktlab's bpf_snippets
                           headers and a private /tmp; everything else unmounted
    drop_privileges(u, g)  the bounding set cut to CAP_BPF + CAP_NET_ADMIN, setgroups([]),
                           setresgid/setresuid to the loader's account, those two capabilities
                           (effective, permitted, inheritable, ambient) and nothing else,
                           not dumpable, no-new-privs
    set_limits(limits)     CPU seconds, address space, file size, no core, no new processes
    install_filter()       seccomp: bpf() commands other than the ones a load needs refused,
                           BPF_MAP_CREATE handed to the parent (a user notification: pktlab
                           sees every map before the kernel allocates it), no new threads or
                           processes; returns the listener fd, which goes to the parent
    identity()             what the worker is now, as data (the probe the tests read)

Everything the worker needs later (bcc, libbcc, LLVM) is loaded before enter_view(): after
it, the interpreter has no library, no Python module and no file outside the view.
"""

import ctypes
import dataclasses
import errno
import os
import resource
import signal

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET = 0x20000, 0x4000000, 0x8000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_KEEPCAPS = 1, 4, 8
PR_CAPBSET_READ, PR_CAPBSET_DROP = 23, 24
PR_GET_SECCOMP, PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 21, 38, 39, 47
PR_CAP_AMBIENT_RAISE, PR_CAP_AMBIENT_IS_SET = 2, 1
CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 12, 21, 38, 39
#: what a learner's loader keeps: XDP and TC programs load with these, and the verifier then
#: refuses kernel-memory reads and pointer leaks itself (no CAP_PERFMON, no CAP_SYS_ADMIN)
LEARNER_CAPS = (CAP_BPF, CAP_NET_ADMIN)
CAP_NAMES = {0: "chown", 1: "dac_override", 2: "dac_read_search", 3: "fowner", 4: "fsetid",
             5: "kill", 6: "setgid", 7: "setuid", 8: "setpcap", 9: "linux_immutable",
             10: "net_bind_service", 11: "net_broadcast", 12: "net_admin", 13: "net_raw",
             14: "ipc_lock", 15: "ipc_owner", 16: "sys_module", 17: "sys_rawio",
             18: "sys_chroot", 19: "sys_ptrace", 20: "sys_pacct", 21: "sys_admin",
             22: "sys_boot", 23: "sys_nice", 24: "sys_resource", 25: "sys_time",
             26: "sys_tty_config", 27: "mknod", 28: "lease", 29: "audit_write",
             30: "audit_control", 31: "setfcap", 32: "mac_override", 33: "mac_admin",
             34: "syslog", 35: "wake_alarm", 36: "block_suspend", 37: "audit_read",
             38: "perfmon", 39: "bpf", 40: "checkpoint_restore"}

NR = {"bpf": 321, "seccomp": 317, "pivot_root": 155, "capget": 125, "capset": 126,
      "clone": 56, "fork": 57, "vfork": 58, "clone3": 435, "ptrace": 101,
      "process_vm_readv": 310, "process_vm_writev": 311, "perf_event_open": 298,
      "userfaultfd": 323, "io_uring_setup": 425, "unshare": 272, "setns": 308,
      "mount": 165, "umount2": 166, "kexec_load": 246, "add_key": 248, "keyctl": 250,
      "request_key": 249, "init_module": 175, "finit_module": 313}
#: bpf() commands a compile and load needs (bcc and libbpf's feature probes included)
BPF_MAP_CREATE = 0
BPF_ALLOWED = {1: "MAP_LOOKUP_ELEM", 2: "MAP_UPDATE_ELEM", 3: "MAP_DELETE_ELEM",
               4: "MAP_GET_NEXT_KEY", 5: "PROG_LOAD", 15: "OBJ_GET_INFO_BY_FD",
               18: "BTF_LOAD", 21: "MAP_LOOKUP_AND_DELETE_ELEM", 22: "MAP_FREEZE"}
#: system calls the worker never needs: new threads or processes (the parent reads a map's
#: attributes from the worker's memory while its only thread waits in bpf()), other
#: processes' memory, namespaces and mounts once the view is made, perf, keys, modules
DENIED = ("clone", "fork", "vfork", "clone3", "ptrace", "process_vm_readv",
          "process_vm_writev", "perf_event_open", "userfaultfd", "io_uring_setup", "unshare",
          "setns", "mount", "umount2", "pivot_root", "kexec_load", "add_key", "keyctl",
          "request_key", "init_module", "finit_module")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may take. cpu_s: CPU seconds (compiler and verifier); wall_s: seconds
    from start to answer, enforced by the parent; memory: bytes of address space; file_bytes:
    the largest file it may write (its private /tmp holds bcc's output); tmp_bytes: /tmp's
    size."""
    cpu_s: int = 20
    wall_s: float = 60.0
    memory: int = 2 << 30
    file_bytes: int = 64 << 20
    tmp_bytes: int = 128 << 20

    def to_dict(self):
        return dataclasses.asdict(self)


_libc = None


def libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
        _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.c_ulong, ctypes.c_char_p]
        _libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                                ctypes.c_ulong]
    return _libc


def _check(rc, what):
    if rc < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return rc


def _mount(src, dst, fstype, flags, data=None):
    enc = (lambda s: None if s is None else os.fsencode(s))
    _check(libc().mount(enc(src), enc(dst), enc(fstype), flags, enc(data)),
           f"mount {src or fstype} on {dst}")


def _prctl(op, a=0, b=0, c=0, d=0):
    return _check(libc().prctl(op, a, b, c, d), f"prctl({op})")


# the view -----------------------------------------------------------------------------------
def enter_view(view, tmp_bytes):
    """Namespaces of its own, and a root that holds only `view` (see learner_view in
    pktlab.kernel.loader): {"trees": [dirs, read-only], "files": [files, read-only],
    "links": {path: target}}, plus a private /tmp of tmp_bytes. The host's root is unmounted:
    from here on nothing else exists for this process."""
    _check(libc().unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    new = "/tmp"                       # any directory: this namespace's own mount hides it
    _mount("pktlab-loader", new, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=16m,mode=0755")
    ro = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC

    def inside(p):
        return new + os.path.abspath(p)
    for tree in view["trees"]:
        os.makedirs(inside(tree), exist_ok=True)
        _mount(tree, inside(tree), None, MS_BIND)
        _mount(None, inside(tree), None, ro)
    for f in view["files"]:
        os.makedirs(os.path.dirname(inside(f)), exist_ok=True)
        open(inside(f), "wb").close()
        _mount(f, inside(f), None, MS_BIND)
        _mount(None, inside(f), None, ro)
    for path, target in view["links"].items():
        os.makedirs(os.path.dirname(inside(path)), exist_ok=True)
        os.symlink(target, inside(path))
    os.makedirs(inside("/tmp"))
    _mount("pktlab-loader-tmp", inside("/tmp"), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
           f"size={int(tmp_bytes)},mode=1777")
    os.chdir(new)
    _check(libc().syscall(NR["pivot_root"], b".", b"."), "pivot_root")
    _check(libc().umount2(b".", MNT_DETACH), "umount the host's root")
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    libc().sethostname(b"pktlab-loader", 13)


# privileges ---------------------------------------------------------------------------------
class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_CAP_V3 = 0x20080522


def capabilities():
    """(effective, permitted, inheritable) of this thread, as 64-bit masks (capget: no /proc
    needed, the worker has none)."""
    hdr, data = _CapHeader(_CAP_V3, 0), (_CapData * 2)()
    _check(libc().syscall(NR["capget"], ctypes.byref(hdr), data), "capget")
    return tuple(getattr(data[0], f) | getattr(data[1], f) << 32
                 for f in ("effective", "permitted", "inheritable"))


def _capset(mask):
    hdr, data = _CapHeader(_CAP_V3, 0), (_CapData * 2)()
    for i in range(2):
        word = (mask >> (32 * i)) & 0xFFFFFFFF
        data[i].effective = data[i].permitted = data[i].inheritable = word
    _check(libc().syscall(NR["capset"], ctypes.byref(hdr), data), "capset")


def drop_privileges(uid, gid, keep=LEARNER_CAPS):
    """Become uid:gid with exactly `keep` (and no way back to more)."""
    if uid == 0 or gid == 0:
        raise ValueError("the learner loader never runs as uid or gid 0")
    for cap in range(64):                       # the bounding set: only `keep` stays
        if cap in keep:
            continue
        if libc().prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL:       # past the kernel's last capability
                break
            _check(-1, f"drop capability {cap} from the bounding set")
    _prctl(PR_SET_KEEPCAPS, 1)
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    mask = sum(1 << c for c in keep)
    _capset(mask)
    for cap in keep:
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
    _prctl(PR_SET_KEEPCAPS, 0)
    # a change of uid clears the parent-death signal unshare(1) --kill-child set: again
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _prctl(PR_SET_DUMPABLE, 0)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    eff, prm, _inh = capabilities()
    if eff != mask or prm != mask or os.getresuid() != (uid, uid, uid):
        raise OSError(errno.EPERM, f"the worker kept more than it should (caps {eff:#x})")


def set_limits(limits):
    """rlimits for this process; the wall time is the parent's to enforce."""
    cpu = int(limits.cpu_s)
    for res, value in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, int(limits.memory)),
                       (resource.RLIMIT_FSIZE, int(limits.file_bytes)),
                       (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, 0)):
        # soft = hard: the worker is its PID namespace's init, and init ignores the soft
        # limit's SIGXCPU; the hard limit's SIGKILL reaches it
        resource.setrlimit(res, (value, value))


# seccomp ------------------------------------------------------------------------------------
class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


AUDIT_ARCH_X86_64 = 0xC000003E
RET_ALLOW, RET_USER_NOTIF, RET_KILL_PROCESS = 0x7FFF0000, 0x7FC00000, 0x80000000
RET_ERRNO = 0x00050000
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC, SECCOMP_FILTER_FLAG_NEW_LISTENER = 1, 1 << 3
SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 1 << 4
_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06


def filter_program():
    """The classic-BPF seccomp filter (a list of (code, jt, jf, k)). Jumps are relative, so it
    is built back to front from named exits."""
    denied = [NR[n] for n in DENIED]
    allowed_cmds = sorted(BPF_ALLOWED)
    prog = []
    # tail: the exits
    exits = ["allow", "eperm", "enosys", "notify", "kill"]
    tail = [(_RET_K, 0, 0, RET_ALLOW), (_RET_K, 0, 0, RET_ERRNO | errno.EPERM),
            (_RET_K, 0, 0, RET_ERRNO | errno.ENOSYS), (_RET_K, 0, 0, RET_USER_NOTIF),
            (_RET_K, 0, 0, RET_KILL_PROCESS)]
    body = [("ld", 4), ("jeq", AUDIT_ARCH_X86_64, None, "kill"), ("ld", 0),
            ("jge", 0x40000000, "enosys", None),                     # the x32 ABI
            ("jeq", NR["bpf"], "bpf", None)]
    body += [("jeq", nr, "eperm", None) for nr in denied]
    body += [("goto", "allow"), ("label", "bpf"), ("ld", 16),        # args[0]: the command
             ("jeq", BPF_MAP_CREATE, "notify", None)]
    body += [("jeq", cmd, "allow", None) for cmd in allowed_cmds]
    body += [("goto", "eperm")]
    labels, n = {}, 0
    for op in body:
        if op[0] == "label":
            labels[op[1]] = n
        else:
            n += 1
    for i, name in enumerate(exits):
        labels[name] = n + i

    def rel(target, pc):
        return 0 if target is None else labels[target] - pc - 1
    pc = 0
    for op in body:
        if op[0] == "label":
            continue
        if op[0] == "ld":
            prog.append((_LD_W_ABS, 0, 0, op[1]))
        elif op[0] == "goto":
            prog.append((_JEQ_K, rel(op[1], pc), rel(op[1], pc), 0))
        else:
            code = _JEQ_K if op[0] == "jeq" else _JGE_K
            prog.append((code, rel(op[2], pc), rel(op[3], pc), op[1]))
        pc += 1
    return prog + tail


def install_filter():
    """Install the filter on every thread of the process (there is one: single_thread()); the
    listener fd for the parent."""
    prog = filter_program()
    insns = (_SockFilter * len(prog))(*[_SockFilter(*p) for p in prog])
    fprog = _SockFprog(len(prog), insns)
    flags = (SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_TSYNC |
             SECCOMP_FILTER_FLAG_TSYNC_ESRCH)
    return _check(int(libc().syscall(NR["seccomp"], SECCOMP_SET_MODE_FILTER, flags,
                                     ctypes.byref(fprog))), "install the seccomp filter")


def single_thread():
    """The worker must be one thread when the filter goes in (read before the view hides
    /proc): the parent reads a map's attributes from its memory while that thread waits in
    bpf(), and no other may change them meanwhile (the filter then refuses new threads)."""
    n = len(os.listdir("/proc/self/task"))
    if n != 1:
        raise OSError(errno.EBUSY, f"the learner loader's worker has {n} threads, not 1")


# the probe ----------------------------------------------------------------------------------
def identity():
    """What this process is and sees: uid/gid/groups, capability sets (the bounding and ambient
    sets by prctl), no-new-privs, seccomp mode, rlimits, and every path in its view (header
    trees counted, not listed)."""
    eff, prm, inh = capabilities()
    names = (lambda mask: sorted(CAP_NAMES.get(c, str(c)) for c in range(64) if mask >> c & 1))
    bounding = [c for c in range(64) if libc().prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1]
    ambient = [c for c in range(64)
               if libc().prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) == 1]
    limits = {n: resource.getrlimit(getattr(resource, f"RLIMIT_{n.upper()}"))
              for n in ("cpu", "as", "fsize", "core", "nproc")}
    paths, headers = [], 0
    for d, dirs, files in os.walk("/"):
        if d.startswith("/usr/src/") or d == "/tmp":
            headers += len(files)
            dirs[:] = [] if d == "/tmp" else dirs
            continue
        paths += [os.path.join(d, x) for x in dirs + files]
    return {"uid": os.getresuid(), "gid": os.getresgid(), "groups": os.getgroups(),
            "effective": names(eff), "permitted": names(prm), "inheritable": names(inh),
            "bounding": names(sum(1 << c for c in bounding)),
            "ambient": names(sum(1 << c for c in ambient)),
            "no_new_privs": libc().prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0),
            "seccomp": libc().prctl(PR_GET_SECCOMP, 0, 0, 0, 0),
            "limits": limits, "paths": sorted(paths), "header_files": headers,
            "cwd": os.getcwd(), "hostname": os.uname().nodename, "pid": os.getpid()}
