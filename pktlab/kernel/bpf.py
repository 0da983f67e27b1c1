"""Compile, load and test-run pktlab's eBPF programs (bcc), once per source and flags.

    prog = bpf.load("xdp")            # compiled once per process for these flags
    prog.fd, prog.ring().read(), prog.lost(), prog.seen()
    bpf.test_run(prog, frame)         # BPF_PROG_TEST_RUN: retval, ns per run

Programs live in bpf_snippets/<name>.bpf.c. A Program is leased: `load()` hands out a cached,
already compiled and verified copy when one is free (re-running a notebook cell does not
recompile), and compiles another only when every cached copy is in use (two labs at once each
need their own maps). `release()` returns it to the cache, with its maps emptied.
"""

import contextlib
import ctypes
import hashlib
import os
import tempfile
import threading

from .. import resources
from ..errors import BPFError, EnvironmentProblem


#: hook name -> (source file, function, bcc program type name, extra cflags)
HOOK_PROGRAMS = {
    "xdp": ("xdp.bpf.c", "pktlab_xdp", "XDP", ()),
    "tc-ingress": ("tc.bpf.c", "pktlab_tc", "SCHED_CLS", ("-DPL_HOOK=PL_HOOK_TC_INGRESS",)),
    "tc-egress": ("tc.bpf.c", "pktlab_tc", "SCHED_CLS", ("-DPL_HOOK=PL_HOOK_TC_EGRESS",)),
}
#: the kprobe hook's entry point per mechanism
KPROBE_MECHS = {
    "kprobe": (1, "pktlab_kprobe", "KPROBE"),
    "fentry": (2, "kfunc____netif_receive_skb_core", "TRACING"),
    "raw_tracepoint": (3, "pktlab_rawtp", "RAW_TRACEPOINT"),
}
KPROBE_FUNCTION = "__netif_receive_skb_core"
KPROBE_TRACEPOINT = "netif_receive_skb"

#: records per CPU ring: 608 KiB per CPU and hook, small enough to stay in a 1 MiB L2 (a
#: 16,384-slot ring measured 10-20 ns more per record under test run: the writes miss the cache)
SLOTS_DEFAULT = 4096

_bcc = None


def bcc():
    """Import bcc on first use (never at pktlab import), with a fix in the message."""
    global _bcc
    if _bcc is None:
        try:
            import bcc as mod
        except ImportError as e:
            raise EnvironmentProblem(
                f"bcc's Python bindings are not importable ({e}); install python3-bpfcc "
                "(Debian/Ubuntu) or python3-bcc (Fedora), and use a virtualenv made with "
                "--system-site-packages (scripts/setup.sh does both)") from None
        _bcc = mod
    return _bcc


@contextlib.contextmanager
def _capture_stderr():
    """bcc and libbpf write compiler errors and verifier logs to fd 2; keep them for the error."""
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        box = {"text": ""}
        try:
            yield box
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            box["text"] = tmp.read().decode(errors="replace")


def _source_digest(path):
    """Hash of the program and every header in bpf_snippets (they include each other)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    for name in sorted(os.listdir(os.path.dirname(path))):
        if name.endswith(".h"):
            with open(os.path.join(os.path.dirname(path), name), "rb") as f:
                h.update(name.encode() + f.read())
    return h.hexdigest()


class Program:
    """One compiled and loaded program with its maps (events and ctl: the record rings and
    counters; config for the kprobe hook)."""

    def __init__(self, path, fn_name, prog_type, cflags, text=None):
        b = bcc()
        self.path = path
        self.fn_name = fn_name
        self.prog_type_name = prog_type
        self.cflags = tuple(cflags)
        flags = [f"-I{resources.snippets_dir()}", *self.cflags]
        label = os.path.basename(path) if path else "<text>"
        with _capture_stderr() as log:
            try:
                if text is not None:
                    self.bpf = b.BPF(text=text.encode(), cflags=flags)
                else:
                    self.bpf = b.BPF(src_file=path.encode(), cflags=flags)
            except Exception as e:
                err = e
            else:
                err = None
        if err is not None:
            raise BPFError(f"compile {label}: {err}", log=log["text"]) from None
        ptype = getattr(b.BPF, prog_type)
        with _capture_stderr() as log:
            try:
                self.fn = self.bpf.load_func(fn_name.encode(), ptype)
            except Exception as e:
                err = e
        if err is not None:
            raise BPFError(f"load {label}:{fn_name}: the kernel refused it ({err}); the "
                           "verifier's reasons are in .log", log=log["text"]) from None
        self.fd = self.fn.fd
        self._ring = None
        self.leased = False
        self.closed = False

    # maps ---------------------------------------------------------------------------------------
    def _flag(self, name, default=None):
        for f in self.cflags:
            if f == f"-D{name}":
                return True
            if f.startswith(f"-D{name}="):
                return f.split("=", 1)[1]
        return default

    @property
    def records(self):
        """Does this program emit records (or only count statuses)?"""
        return self._has_map("events") and not self._flag("PL_NO_RECORD")

    @property
    def precise_ts(self):
        """ts_ns from bpf_ktime_get_ns() (True) or from jiffies (False; see pktlab_common.h)."""
        return bool(self._flag("PL_TS_PRECISE"))

    def ring(self):
        """The program's record rings and counters (pktlab.kernel.ringbuf.RingReader)."""
        if self._ring is None:
            from ..packet.record import RECORD_DTYPE
            from .ringbuf import RingReader
            if not self._has_map("ctl"):
                raise BPFError(f"{self.fn_name} has no record ring (maps ctl and events)")
            events = self.bpf.get_table(b"events").map_fd if self.records else None
            self._ring = RingReader(self.bpf.get_table(b"ctl").map_fd, events,
                                    int(self._flag("PL_NCPUS")), int(self._flag("PL_SLOTS")),
                                    RECORD_DTYPE)
        return self._ring

    def lost(self):
        """Records the program refused because its ring was full, summed over CPUs."""
        return self.ring().lost()

    def seen(self):
        """Packets parsed, by status number."""
        return self.ring().seen()

    def reset(self):
        """Empty the rings and zero the counters (a lease starts clean)."""
        if self._has_map("ctl"):        # an empty program (the test-run floor) has no maps
            self.ring().reset()

    def _has_map(self, name):
        try:
            self.bpf.get_table(name.encode())
            return True
        except KeyError:
            return False

    def table(self, name):
        return self.bpf.get_table(name.encode())

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self._ring is not None:
            self._ring.close()
        self.bpf.cleanup()


_cache = {}
_lock = threading.Lock()

#: what every compile runs inside (a context manager factory): nothing by default; pktlab's
#: workshop daemon bounds how many of its sessions compile at once with it (30 clang
#: instances at once on 2 CPUs gained nothing and crashed libclang now and then)
compile_gate = contextlib.nullcontext


def compile_program(source, fn_name, prog_type, cflags=(), text=None):
    """Lease a loaded program for this source and flags, compiling only when needed."""
    path = resources.snippet_path(source) if text is None else None
    digest = _source_digest(path) if path else hashlib.sha256(text.encode()).hexdigest()
    key = (digest, fn_name, prog_type, tuple(cflags))
    with _lock:
        for p in _cache.get(key, []):
            if not p.leased and not p.closed:
                p.leased = True
                p.reset()
                return p
    with compile_gate():
        p = Program(path, fn_name, prog_type, cflags, text=text)
    p.leased = True
    with _lock:
        _cache.setdefault(key, []).append(p)
    return p


def compile_count():
    """How many programs this process compiled (the notebook-rerun test reads it)."""
    return sum(len(v) for v in _cache.values())


def release(prog):
    """Give a leased program back to the cache (it stays loaded for the next lease)."""
    prog.leased = False


def possible_cpus():
    """How many CPU ids the kernel may use (the per-CPU rings are indexed by them)."""
    global _ncpus
    if _ncpus is None:
        try:
            with open("/sys/devices/system/cpu/possible") as f:
                text = f.read().strip()
            top = 0
            for part in text.split(","):
                top = max(top, int(part.split("-")[-1]))
            _ncpus = top + 1
        except (OSError, ValueError) as e:
            # not os.cpu_count(): that counts online CPUs, and a record from a CPU id beyond
            # the rings would have nowhere to go, not even the `lost` counter
            raise EnvironmentProblem(f"read /sys/devices/system/cpu/possible ({e}): pktlab sizes "
                                     "its per-CPU record rings from it") from None
    return _ncpus


_ncpus = None
_hz = None
KNOWN_HZ = (100, 250, 300, 1000)


def kernel_hz():
    """The running kernel's HZ (jiffies per second), for the jiffy timestamps.

    From the kernel's config when it is installed (/boot/config-<release>, /proc/config.gz);
    else measured: the jiffies counter in /proc/timer_list over 0.2 s, rounded to the nearest
    HZ the kernel can be built with.
    """
    global _hz
    if _hz is None:
        _hz = _hz_from_config() or _hz_measured()
    return _hz


def _hz_from_config():
    import gzip
    import re
    candidates = [(open, f"/boot/config-{os.uname().release}"), (gzip.open, "/proc/config.gz")]
    for opener, path in candidates:
        try:
            with opener(path, "rt") as f:
                m = re.search(r"^CONFIG_HZ=(\d+)$", f.read(), re.M)
        except OSError:
            continue
        if m:
            return int(m.group(1))
    return None


def _hz_measured():
    import re
    import time

    def sample():
        with open("/proc/timer_list") as f:
            for line in f:
                m = re.match(r"jiffies: (\d+)", line)
                if m:
                    return int(m.group(1)), time.monotonic()
        raise EnvironmentProblem("no jiffies line in /proc/timer_list")
    try:
        j0, t0 = sample()
        time.sleep(0.2)
        j1, t1 = sample()
    except OSError as e:
        raise EnvironmentProblem(f"the kernel's HZ: no config file and /proc/timer_list "
                                 f"unreadable ({e}); pktlab needs root") from None
    rate = (j1 - j0) / (t1 - t0)
    return min(KNOWN_HZ, key=lambda hz: abs(hz - rate))


#: the most memory one program's record rings may take (all CPUs): on a machine with many
#: possible CPUs the rings get fewer slots each, not gigabytes of kernel memory
RING_BYTES_MAX = 128 << 20
SLOTS_MIN = 1024


def ring_slots(slots=None):
    """Records per CPU ring for a request: a power of two, within RING_BYTES_MAX in all."""
    from ..packet.record import RECORD_DTYPE
    slots = SLOTS_DEFAULT if slots is None else int(slots)
    if slots <= 0 or slots & (slots - 1):
        raise ValueError(f"slots {slots}: the records per CPU ring must be a power of two")
    while slots > SLOTS_MIN and slots * possible_cpus() * RECORD_DTYPE.itemsize > RING_BYTES_MAX:
        slots //= 2
    return slots


def transport_cflags(*, slots=None, precise_ts=False, no_record=False):
    """The -D flags of the record transport and the timestamp (bpf_snippets/pktlab_common.h)."""
    import platform
    if platform.machine() not in ("x86_64", "AMD64"):
        raise EnvironmentProblem(
            f"pktlab's record rings rely on x86-64's memory order (pktlab_common.h); this is "
            f"{platform.machine()}, which needs release/acquire ordering they do not have yet")
    slots = ring_slots(slots)
    flags = [f"-DPL_NCPUS={possible_cpus()}", f"-DPL_SLOTS={slots}",
             f"-DPL_JIFFY_NS={1_000_000_000 // kernel_hz()}"]
    if precise_ts:
        flags.append("-DPL_TS_PRECISE")
    if no_record:
        flags.append("-DPL_NO_RECORD")
    return flags


def load(hook, *, no_record=False, slots=None, precise_ts=False, extra_cflags=()):
    """Lease the program of a packet hook (xdp, tc-ingress, tc-egress).

    slots: records per CPU ring (power of two). precise_ts: ns timestamps from
    bpf_ktime_get_ns() (a helper call per record: see `pktlab bench`) instead of jiffies.
    """
    try:
        source, fn, ptype, flags = HOOK_PROGRAMS[hook]
    except KeyError:
        raise ValueError(f"hook {hook!r}: choose one of {', '.join(HOOK_PROGRAMS)}") from None
    cflags = [*flags, *transport_cflags(slots=slots, precise_ts=precise_ts, no_record=no_record),
              *extra_cflags]
    return compile_program(source, fn, ptype, cflags)


def load_kprobe(mech, *, no_record=False, slots=None, precise_ts=False):
    """Lease the kprobe-hook program for a mechanism (kprobe, fentry, raw_tracepoint)."""
    from . import btf
    num, fn, ptype = KPROBE_MECHS[mech]
    offs = btf.skb_offsets()
    if mech == "raw_tracepoint":
        pp = 0          # the tracepoint's first argument is the skb itself
    else:
        pp = 1 if btf.vmlinux().func_param_pointer_depth(KPROBE_FUNCTION) == 2 else 0
    cflags = [f"-DPL_MECH={num}", f"-DPL_SKB_PP={pp}",
              *transport_cflags(slots=slots, precise_ts=precise_ts, no_record=no_record),
              *(f"-D{k}={v}" for k, v in sorted(offs.items()))]
    return compile_program("kprobe.bpf.c", fn, ptype, cflags)


def empty_program(prog_type):
    """An empty program of a type: the floor that test-run costs are measured against."""
    ret = {"XDP": "XDP_PASS", "SCHED_CLS": "TC_ACT_OK"}[prog_type]
    text = ("#include <uapi/linux/bpf.h>\n#include <uapi/linux/pkt_cls.h>\n"
            f"int pktlab_empty(void *ctx) {{ return {ret}; }}\n")
    return compile_program(None, "pktlab_empty", prog_type, (), text=text)


def parse_in_kernel(frames, hook="xdp"):
    """Run a hook's parse program on each frame with BPF_PROG_TEST_RUN: no lab, no veth.

    Returns (records, refused): a RECORD_DTYPE array aligned with `frames` (zeroed where the
    kernel could not run the frame) and {index: reason} for those frames (shorter than an
    Ethernet header: only the walker can parse them).
    """
    import numpy as np
    from ..packet.record import RECORD_DTYPE
    out = np.zeros(len(frames), dtype=RECORD_DTYPE)
    refused = {}
    prog = load(hook)
    try:
        ring = prog.ring()
        ring.read()
        for i, f in enumerate(frames):
            if len(f) < MIN_TEST_RUN_FRAME:
                refused[i] = (f"{len(f)} bytes: the kernel runs programs only on frames of at "
                              f"least {MIN_TEST_RUN_FRAME} bytes")
                continue
            try:
                test_run(prog, f)
            except BPFError as e:
                # e.g. an skb test run refuses an IPv4 frame whose IP header is cut short
                refused[i] = f"the kernel's test run refused it: {e}"
                continue
            got = ring.read()
            if len(got) != 1:
                raise BPFError(f"test run of {hook} on frame {i}: expected one record, got "
                               f"{len(got)} (the ring refused {prog.lost()})")
            out[i] = got[0]
    finally:
        release(prog)
    return out, refused


# BPF_PROG_TEST_RUN through libbcc's bundled libbpf ----------------------------------------------
class _TestRunOpts(ctypes.Structure):
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


_test_run_fn = None

#: The kernel refuses test runs of frames shorter than an Ethernet header.
MIN_TEST_RUN_FRAME = 14


def test_run(prog, frame, repeat=1):
    """Run `prog` once (or `repeat` times) on `frame`; returns (retval, ns per run)."""
    global _test_run_fn
    if len(frame) < MIN_TEST_RUN_FRAME:
        raise BPFError(f"test run of {len(frame)}-byte frame: the kernel needs at least "
                       f"{MIN_TEST_RUN_FRAME} bytes (an Ethernet header); the walker's record "
                       "is the only parse of such a frame")
    if _test_run_fn is None:
        lib = bcc().libbcc.lib
        fn = lib.bpf_prog_test_run_opts
        fn.argtypes = [ctypes.c_int, ctypes.POINTER(_TestRunOpts)]
        fn.restype = ctypes.c_int
        _test_run_fn = fn
    buf = ctypes.create_string_buffer(bytes(frame), len(frame))
    out = ctypes.create_string_buffer(len(frame) + 512)
    opts = _TestRunOpts(sz=ctypes.sizeof(_TestRunOpts), data_in=ctypes.addressof(buf),
                        data_size_in=len(frame), data_out=ctypes.addressof(out),
                        data_size_out=len(out), repeat=max(1, int(repeat)))
    rc = _test_run_fn(prog.fd, ctypes.byref(opts))
    if rc != 0:
        err = -rc if rc < 0 else ctypes.get_errno()
        raise BPFError(f"test run of {os.path.basename(prog.path or 'program')} on a "
                       f"{len(frame)}-byte frame: {os.strerror(err)}")
    return opts.retval, opts.duration
