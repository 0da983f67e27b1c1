"""The learner loader: every learner's C is compiled and loaded by a fresh, restricted worker,
and only pktlab ever holds the program and its maps.

    attempt, prog = loader.load(LoadRequest(text, "mine.c", "XDP"))
    with prog:                       # LearnerProgram (pktlab.owned.Owned): the fds, here only
        prog.fd, prog.maps["counts"].fd, prog.test_run(frame)
    verifier.verify("mine.c", "xdp")           # uses loader.attempt by default (as root)
    loader.probe()                   # what a worker is and sees (uid, caps, view, limits)

One request, one worker (pktlab.kernel.loadworker), started through pktlab.lab.spawn (it dies
with pktlab, also under SIGKILL, and has a PID namespace of its own). The worker enters a view
of the filesystem that holds only the kernel headers bcc reads, pktlab's bpf_snippets headers
and a private /tmp; becomes the `pktlab-loader` account with CAP_BPF and CAP_NET_ADMIN only
and no-new-privs; gets CPU, memory, file-size and process limits (the wall time is enforced
here); and hands this process its seccomp listener, so that every BPF_MAP_CREATE waits for
pktlab's answer (pktlab.kernel.mappolicy) before the kernel allocates anything. What it sends
back is data (the Attempt, as progload makes it) and, on a Unix socket only this process
holds, the program and map fds, which are checked (program type, map types and sizes, the
program's maps all among them) before anything uses them.
"""

import contextlib
import ctypes
import errno
import json
import os
import platform
import select
import signal
import socket
import struct
import sys
import tempfile
import time

from .. import resources
from ..errors import BPFError, EnvironmentProblem
from ..owned import Owned
from . import bpfobj, mappolicy
from .progload import PROG_TYPE_IDS, Attempt, check_define
from .sandbox import Limits

ACCOUNT = "pktlab-loader"
#: what a learner's test run may repeat (BPF_PROG_TEST_RUN's repeat)
TEST_RUN_REPEAT_MAX = 10_000
#: defined in every learner build: pktlab's headers (bpf_snippets/pktlab_parse.h) then keep to
#: what the verifier allows a program loaded without CAP_PERFMON (no packet pointer subtracted
#: from another, or moved by a number computed at run time); PL_PROG_XDP too for an XDP
#: program (the headers read the frame with XDP's helpers then, else with the skb's)
NO_PERFMON_DEFINE = "PL_NO_PERFMON"
XDP_DEFINE = "PL_PROG_XDP"
#: the largest message a worker may send (the verifier's log is at most 16 MiB)
MAX_FRAME = 48 << 20
MAX_FDS = 65
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from pktlab.kernel import loadworker; sys.exit(loadworker.main(sys.argv[2:]))")


def account():
    """(uid, gid) of the loader's system account; EnvironmentProblem with the fix when it is
    missing."""
    import pwd
    try:
        pw = pwd.getpwnam(ACCOUNT)
    except KeyError:
        raise EnvironmentProblem(
            f"the learner loader runs learner programs as the system user {ACCOUNT}, which "
            "does not exist here; run scripts/setup.sh (or `useradd --system --user-group "
            f"--no-create-home --shell /usr/sbin/nologin {ACCOUNT}`)") from None
    if pw.pw_uid == 0 or pw.pw_gid == 0:
        raise EnvironmentProblem(f"the system user {ACCOUNT} has uid or gid 0; it must be an "
                                 "unprivileged account (`userdel` it and run scripts/setup.sh)")
    return pw.pw_uid, pw.pw_gid


def available():
    """(True, None) when this process can start restricted workers, else (False, why)."""
    if os.geteuid() != 0:
        return False, "starting the learner loader's worker needs root"
    if platform.machine() not in ("x86_64", "AMD64"):
        return False, (f"the learner loader's seccomp filter knows x86-64's system calls; this "
                       f"is {platform.machine()}")
    try:
        account()
        learner_view()
    except EnvironmentProblem as e:
        return False, str(e)
    return True, None


def learner_view():
    """What a worker sees: the kernel headers bcc reads (/lib/modules/$(uname -r)/build and
    source, the trees they point to), pktlab's bpf_snippets/*.h, each read-only."""
    moddir = f"/lib/modules/{os.uname().release}"
    trees, links = [], {}
    for name in ("build", "source"):
        p = os.path.join(moddir, name)
        if os.path.islink(p):
            links[p] = os.readlink(p)
        if os.path.isdir(p):
            real = os.path.realpath(p)
            if real not in trees:
                trees.append(real)
    files = []
    if not trees and os.path.exists("/sys/kernel/kheaders.tar.xz"):
        files.append("/sys/kernel/kheaders.tar.xz")      # bcc unpacks it into the private /tmp
    elif not trees:
        raise EnvironmentProblem(f"no kernel headers at {moddir}/build for bcc; run "
                                 "scripts/setup.sh")
    snippets = resources.snippets_dir()
    # regular files only: a bind mount follows a symlink, wherever it points
    files += sorted(p for p in (os.path.join(snippets, f) for f in os.listdir(snippets)
                                if f.endswith(".h"))
                    if os.path.isfile(p) and not os.path.islink(p))
    return {"trees": trees, "files": files, "links": links}


# the worker's end of the conversation --------------------------------------------------------
class _Supervisor:
    """This process's side of the worker's seccomp filter: each BPF_MAP_CREATE is read from
    the worker's memory while it waits (its only thread: it may start no other) and answered:
    continue, or EPERM with the reason kept in `refusal`."""
    RECV, SEND, ID_VALID = 0xC0502100, 0xC0182101, 0x40082102
    FLAG_CONTINUE = 1

    def __init__(self, fd, ncpus):
        self.fd, self.ncpus = fd, ncpus
        self.used, self.refusal, self.maps, self.done = 0, None, [], False
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]

    def serve(self):
        notif = ctypes.create_string_buffer(128)
        if self.libc.ioctl(self.fd, self.RECV, notif) != 0:
            self.done = True        # the worker is gone (its filter has no task left)
            return
        nid, pid = struct.unpack_from("<QI", notif, 0)
        nr = struct.unpack_from("<i", notif, 16)[0]
        args = struct.unpack_from("<6Q", notif, 32)
        if nr != 321 or args[0] & 0xFFFFFFFF != 0:
            return self._answer(nid, errno.EPERM)
        try:
            with open(f"/proc/{pid}/mem", "rb", buffering=0) as f:
                attr = os.pread(f.fileno(), min(int(args[2]), 48), args[1])
        except OSError:
            return self._answer(nid, errno.EPERM)
        if len(attr) < 44 or not self._valid(nid):
            return self._answer(nid, errno.EPERM)
        mtype, ksize, vsize, entries = struct.unpack_from("<4I", attr, 0)
        name = attr[28:44].split(b"\0")[0].decode(errors="replace")
        refused = mappolicy.check_map(name, mtype, ksize, vsize, entries, self.ncpus, self.used)
        if refused is not None:
            self.refusal = self.refusal or dict(refused, at="BPF_MAP_CREATE")
            return self._answer(nid, errno.EPERM)
        self.used += mappolicy.map_bytes(mappolicy.type_name(mtype), ksize, vsize, entries,
                                         self.ncpus)
        self.maps.append(name)
        return self._answer(nid, 0)

    def _valid(self, nid):
        v = ctypes.c_uint64(nid)
        return self.libc.ioctl(self.fd, self.ID_VALID, ctypes.byref(v)) == 0

    def _answer(self, nid, err):
        resp = struct.pack("<QqiI", nid, 0, -err if err else 0,
                           0 if err else self.FLAG_CONTINUE)
        buf = ctypes.create_string_buffer(resp, len(resp))
        self.libc.ioctl(self.fd, self.SEND, buf)


class _Conversation:
    """A started worker: its frames in, its fds kept in arrival order, its supervisor."""

    def __init__(self, proc, sock, ncpus):
        self.proc, self.sock, self.ncpus = proc, sock, ncpus
        self.buf, self.fds, self.sup = bytearray(), [], None
        self.phase = "compile"

    def frames(self, deadline):
        """Yield the worker's frames (dicts, with "fds" added) until it closes the socket;
        TimeoutError at the deadline."""
        while True:
            while len(self.buf) >= 4:
                n = struct.unpack_from(">I", self.buf)[0]
                if n > MAX_FRAME:
                    raise BPFError(f"the learner loader's worker sent a {n}-byte message")
                if len(self.buf) < 4 + n:
                    break
                doc = json.loads(bytes(self.buf[4:4 + n]))
                del self.buf[:4 + n]
                yield doc
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            listening = self.sup is not None and self.sup.fd is not None and not self.sup.done
            watch = [self.sock] + ([self.sup.fd] if listening else [])
            ready, _, _ = select.select(watch, [], [], left)
            if listening and self.sup.fd in ready:
                self.sup.serve()
            if self.sock in ready and not self._read():
                return

    def _read(self):
        data, fds, flags, _ = socket.recv_fds(self.sock, 1 << 20, MAX_FDS,
                                              socket.MSG_CMSG_CLOEXEC)
        self.fds.extend(fds)
        if flags & socket.MSG_CTRUNC:
            raise BPFError("the learner loader's worker sent more fds than a program has maps")
        self.buf += data
        return bool(data)

    def take_fds(self, n):
        if len(self.fds) < n:
            raise BPFError(f"the learner loader's worker sent {len(self.fds)} fds, not {n}")
        out, self.fds = self.fds[:n], self.fds[n:]
        return out

    @property
    def refusal(self):
        return self.sup.refusal if self.sup is not None else None

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        if self.sup is not None and self.sup.fd is not None:
            os.close(self.sup.fd)
            self.sup.fd = None


def _start(job):
    """The worker, started: (proc, our end of its socket, its stderr file)."""
    from ..lab.spawn import spawn
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    request = os.memfd_create("pktlab-loader-job", os.MFD_CLOEXEC)
    err = tempfile.TemporaryFile()
    try:
        os.write(request, json.dumps(job).encode())
        os.lseek(request, 0, os.SEEK_SET)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        proc = spawn([sys.executable, "-I", "-B", "-c", _BOOT, root, str(theirs.fileno())],
                     pass_fds=(theirs.fileno(),), stdin=request, stdout=err, stderr=err,
                     env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C",
                          "TMPDIR": "/tmp"})
    except BaseException:
        ours.close()
        err.close()
        raise
    finally:
        theirs.close()
        os.close(request)
    return proc, ours, err


def _end(proc, err, overran):
    """Stop the worker and say how it ended: (returncode, CPU seconds it used, the tail of
    what it wrote on stderr). One that answered exits by itself (a moment is allowed); one
    that overran, or lingers, gets SIGKILL (its process group: unshare and the worker).

    The direct child is unshare(1) (spawn's PID namespace), which waits for the worker: its
    rusage from wait4() includes the worker's, whatever unshare itself says about a SIGKILLed
    child (util-linux cannot re-raise SIGKILL and exits 1)."""
    if not overran:
        _wait_a_little(proc)             # (and then SIGKILL: it is done either way)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    cpu = 0.0
    try:
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
    except ChildProcessError:             # reaped already (returncode set by Popen)
        proc.wait()
    err.seek(0, os.SEEK_END)
    err.seek(max(0, err.tell() - 2000))
    tail = err.read().decode(errors="replace").strip()
    err.close()
    return proc.returncode, cpu, tail


def _wait_a_little(proc, timeout=2.0):
    """Until the child has exited (not reaping it), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                return
        except ChildProcessError:
            return
        time.sleep(0.005)


def run_worker(job, limits=None):
    """Start a worker for `job`, converse with it, stop it. Returns (the last frame: "result",
    "probe" or "error"; the fds that came with it; the supervisor; how it ended)."""
    from .bpf import possible_cpus
    limits = limits or Limits()
    uid, gid = account()
    job = dict(job, uid=uid, gid=gid, limits=limits.to_dict(), view=learner_view())
    proc, sock, err = _start(job)
    conv = _Conversation(proc, sock, possible_cpus())
    last, fds, ended = None, [], None
    code = cpu = tail = None
    try:
        try:
            for doc in conv.frames(time.monotonic() + limits.wall_s):
                kind = doc.get("kind")
                if kind == "listener" and conv.sup is None:
                    conv.sup = _Supervisor(conv.take_fds(1)[0], conv.ncpus)
                elif kind == "loading":
                    conv.phase = "load"
                elif kind in ("result", "probe", "error"):
                    last = doc
                    if kind == "result" and doc["attempt"]["stage"] == "loaded":
                        fds = conv.take_fds(1 + len(doc["tables"]))
        except TimeoutError:
            ended = "wall"
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    finally:
        conv.close()
        sock.close()
        # a worker that answered exits by itself; any other (overran, or pktlab is
        # unwinding: Ctrl-C, an error) is killed at once
        code, cpu, tail = _end(proc, err, overran=last is None)
    return last, fds, conv, (ended, code, cpu, tail)


# the answers ----------------------------------------------------------------------------------
def _limit_refusal(what, limits, phase):
    says = {"wall": f"no answer within {limits.wall_s:g} s",
            "cpu": f"stopped after {limits.cpu_s} s of CPU",
            "memory": f"out of its {limits.memory >> 20} MiB of memory"}[what]
    doing = "compiling" if phase == "compile" else "loading (the verifier)"
    return {"kind": f"{'time' if what != 'memory' else 'memory'} limit", "line": None,
            "message": f"the learner loader {says} while {doing}",
            "meaning": f"Your program took more than a learner's program may while {doing}: "
                       "the worker was stopped.",
            "fix": "Look for a loop the compiler unrolls a huge number of times, or macros that "
                   "expand without end; keep loops small and bounded."}


def _ended_badly(ended, limits, phase):
    """A refusal for a worker the limits stopped, else None."""
    why, code, cpu, _tail = ended
    if why == "wall":
        return _limit_refusal("wall", limits, phase)
    # RLIMIT_CPU's SIGKILL comes at cpu_s of the kernel's tick accounting; the rusage unshare
    # passes on says less (19.2 s at a 20 s limit, measured): within 10% of the limit, and
    # stopped, is the limit (it was misreported as "the worker failed (unshare: sigprocmask
    # unblock failed)", unshare's words for a child it cannot re-raise the signal of)
    if code != 0 and cpu >= limits.cpu_s * 0.9:
        return _limit_refusal("cpu", limits, phase)
    if code == -signal.SIGABRT:          # LLVM's allocation failed: std::bad_alloc, abort()
        return _limit_refusal("memory", limits, phase)
    return None


def learner_defines(defines, prog_type):
    """The -D flags a learner build gets: the request's, NO_PERFMON_DEFINE (the worker has no
    CAP_PERFMON, whoever asks) and, for an XDP program, XDP_DEFINE."""
    ours = (NO_PERFMON_DEFINE, XDP_DEFINE) if prog_type == "XDP" else (NO_PERFMON_DEFINE,)
    return (*[d for d in defines if d.split("=")[0] not in (NO_PERFMON_DEFINE, XDP_DEFINE)],
            *ours)


def load(req, limits=None):
    """Compile and load `req` (progload.LoadRequest) in a restricted worker: (Attempt,
    LearnerProgram or None). The Attempt is what progload.attempt would say, or a refusal of
    pktlab's own (attempt.refusal: a map type or size, a pinned table, a limit)."""
    limits = limits or Limits()
    snippets = resources.snippets_dir()
    text = req.text.decode(errors="replace")
    defines = [check_define(d) for d in learner_defines(req.defines, req.prog_type)]
    job = {"op": "load", "request": {
        "text": req.text.decode("latin-1"), "name": req.name, "prog_type": req.prog_type,
        "func": req.func, "include_dirs": [d for d in req.include_dirs if d == snippets]
        or [snippets], "defines": defines}}
    last, fds, conv, ended = run_worker(job, limits)
    try:
        if conv.refusal is not None:          # a map refused at BPF_MAP_CREATE
            refusal = dict(conv.refusal, line=mappolicy.declaration_line(text, conv.refusal["map"]))
            return Attempt("load", errno=errno.EPERM, refusal=refusal, perfmon=False), None
        stopped = _ended_badly(ended, limits, conv.phase)
        if stopped is not None:
            return Attempt(conv.phase, errno=errno.EPERM, refusal=stopped, perfmon=False), None
        if last is None or last.get("kind") == "error":
            said = last["message"] if last else (ended[3].splitlines() or ["no word"])[-1]
            raise EnvironmentProblem(
                f"the learner loader's worker failed ({said}; exit {ended[1]}); see `pktlab "
                "doctor`, and run scripts/setup.sh")
        a = Attempt.from_dict(last["attempt"])
        if a.stage != "loaded":
            return a, None
        prog = LearnerProgram(a, req.prog_type, req.name, fds[0], last["tables"], fds[1:])
        fds = []
        return a, prog
    finally:
        for fd in fds:
            os.close(fd)


def attempt(req, limits=None):
    """A loader for pktlab.kernel.verifier: load in a worker, judge, close. An Attempt."""
    a, prog = load(req, limits)
    if prog is not None:
        prog.close()
    return a


def default_loader():
    """The loader verify() uses when given none: the restricted worker as root (the account
    must exist: setup makes it); the in-process loader only for a process that holds no more
    than a learner would (CAP_BPF and CAP_NET_ADMIN, not root)."""
    from . import progload
    if os.geteuid() == 0:
        ok, why = available()
        if not ok:
            raise EnvironmentProblem(why)
        return attempt
    if progload.has_caps(progload.LOAD_CAPS):
        return progload.attempt
    raise EnvironmentProblem(
        "loading a program into the kernel needs root (pktlab then loads it as the "
        f"unprivileged {ACCOUNT}, with CAP_BPF and CAP_NET_ADMIN only); run it with sudo, "
        "e.g. `sudo .venv/bin/pktlab verify ...`")


def probe(limits=None):
    """What a worker is and sees, from inside (sandbox.identity()), plus its seccomp
    listener's arrival: for the tests and the doctor."""
    last, fds, conv, ended = run_worker({"op": "probe"}, limits)
    for fd in fds:
        os.close(fd)
    if last is None or last.get("kind") != "probe":
        said = last["message"] if last else ended[3]
        raise EnvironmentProblem(f"the learner loader's worker failed: {said}")
    return dict(last["identity"], listener=conv.sup is not None)


# what pktlab holds ----------------------------------------------------------------------------
class LearnerMap:
    """One of a learner program's maps: its fd (pktlab's only), the kernel's info, and bcc's
    description of its key and value types (pktlab.kernel.mapdump reads them)."""

    def __init__(self, name, fd, info, key_desc, leaf_desc):
        self.name, self.fd, self.info = name, fd, info
        self.key_desc, self.leaf_desc = key_desc, leaf_desc

    @property
    def type_name(self):
        return mappolicy.type_name(self.info.type)

    def __repr__(self):
        return f"<map {self.name}: {self.type_name}, {self.info.max_entries} entries>"


class LearnerProgram(Owned):
    """A learner's program loaded by the restricted worker; its fds exist in this process only.
    Checked on arrival: the program's type is the one asked for, each map is one the policy
    allows, and every map the program uses came with it."""

    def __init__(self, attempt, prog_type, name, prog_fd, tables, map_fds):
        from .bpf import possible_cpus
        self.attempt, self.prog_type, self.path = attempt, prog_type, name
        self.func = attempt.func
        self.fd, self.maps = prog_fd, {}
        self._fds = [prog_fd, *map_fds]
        self._hold()
        try:
            info = bpfobj.prog_info(prog_fd)
            if info.type != PROG_TYPE_IDS[prog_type]:
                raise BPFError(f"the learner loader sent a program of type {info.type}, not "
                               f"{prog_type}")
            self.id, self.created_by_uid = info.id, info.created_by_uid
            used = 0
            for t, fd in zip(tables, map_fds):
                mi = bpfobj.map_info(fd)
                bad = mappolicy.check_map(t["name"], mi.type, mi.key_size, mi.value_size,
                                          mi.max_entries, possible_cpus(), used)
                if bad is not None:
                    raise BPFError(f"the learner loader sent a map it should have refused: "
                                   f"{bad['message']}")
                used += mappolicy.map_bytes(mappolicy.type_name(mi.type), mi.key_size,
                                            mi.value_size, mi.max_entries, possible_cpus())
                self.maps[t["name"]] = LearnerMap(t["name"], fd, mi, t["key_desc"],
                                                  t["leaf_desc"])
            missing = set(info.map_ids) - {m.info.id for m in self.maps.values()}
            if missing:
                raise BPFError(f"the program uses maps the learner loader did not send "
                               f"(ids {sorted(missing)})")
        except BaseException:
            self.close()
            raise

    def map_ids(self):
        return {n: m.info.id for n, m in self.maps.items()}

    def test_run(self, frame, repeat=1):
        """BPF_PROG_TEST_RUN on one frame: (retval, ns per run); repeat at most
        TEST_RUN_REPEAT_MAX."""
        from .bpf import test_run
        if not 1 <= int(repeat) <= TEST_RUN_REPEAT_MAX:
            raise ValueError(f"repeat {repeat}: a learner's test run repeats 1.."
                             f"{TEST_RUN_REPEAT_MAX} times")
        return test_run(self, frame, repeat=int(repeat))

    def _release(self):
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)

    def __repr__(self):
        state = "closed" if self.closed else f"id {self.id}"
        return f"<learner program {self.func} ({self.prog_type}, {state})>"
