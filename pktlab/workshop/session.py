"""One client's connection to pktlabd, served by a process of its own.

The daemon (pktlab.workshop.daemon) forks one session process per connection, after it has
read who connected (SO_PEERCRED: a uid, never a bare pid). The session holds that caller's labs
and nothing else: every lab it opens is tagged with the caller's uid in its state file
(pktlab.lab.state: extra["pktlabd"]) and owned by this process, so

- a lab is named to the session by the name it gave, and only a lab this session holds is
  ever found (another learner's lab, or an interface such as lo, is "no lab of yours");
- when the connection closes the session closes its labs and ends; when the client process
  dies mid-request (kill -9 of a notebook kernel), the daemon sees its pidfd and sends this
  process SIGTERM: the request unwinds through its `finally` blocks (the labs go) and the
  process ends; whatever a SIGKILL would leave, the daemon removes (the owner is gone);
- learners run side by side: one process per connection, no lock shared between learners
  (the quota lock and the compile lock are per uid).

Requests are served one at a time per connection (pktlab.workshop.protocol), each with a wall
time (SIGALRM); ops live in pktlab.workshop.ops.
"""

import contextlib
import errno
import fcntl
import json
import os
import re
import select
import shutil
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field

from . import identity, ops, protocol as P
from .labs import LAB_PREFIX, TAG, daemon_labs
from ..errors import LabError



@dataclass
class Limits:
    """What one learner may take (the daemon's defaults; `pktlabd --help` lists them)."""
    labs: int = 3                      # labs open at once, over all of a learner's connections
    sessions: int = 8                  # connections at once per learner
    max_sessions: int = 128            # connections at once, all learners
    rate: float = 20.0                 # requests per second per connection (a token bucket)
    burst: int = 60
    capture_bytes: int = P.MAX_CAPTURE_BYTES
    replay_frames: int = 500_000       # frames x loop of one replay
    replay_loop: int = 100
    batch_frames: int = 4096           # frames of one lab.step / lab.compare request
    compiles: int = max(2, 2 * (os.cpu_count() or 1))   # hook programs compiled at once, all
                                       # sessions together (a pool, not a lock: replays and
                                       # everything else run side by side)
    wall_s: dict = field(default_factory=lambda: {
        "replay": 300, "run": 240, "verify": 120, "frames": 60, "open_lab": 90,
        "set_hooks": 90, "clean": 60, "default": 30})

    def wall(self, op):
        return self.wall_s.get(op, ops.WALL.get(op, self.wall_s["default"]))


@dataclass
class Peer:
    """Who a connection is. uid is the key the learner's labs, quota and locks go by: the
    SO_PEERCRED uid, or with --identity token the hub's name for them ("hub:NAME": every
    learner pod runs as the same uid there); os_uid is always the kernel's uid."""
    uid: object
    gid: int
    pid: int
    user: str
    os_uid: int = None

    def __post_init__(self):
        if self.os_uid is None:
            self.os_uid = self.uid

    @classmethod
    def of(cls, uid, gid, pid):
        import pwd
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        return cls(uid, gid, pid, user)

    def as_hub_user(self, name):
        """This connection known by the hub's name for it (--identity token)."""
        return Peer(HUB_KEY + name, self.gid, self.pid, name, self.os_uid)

    @property
    def key(self):
        """The identity as a file name (lock files): uid1000, or hub-<digest of the name>."""
        if isinstance(self.uid, int):
            return f"uid{self.uid}"
        import hashlib
        return "hub-" + hashlib.sha256(str(self.uid).encode()).hexdigest()[:24]


#: the prefix of a learner's key when the hub's token says who they are
HUB_KEY = "hub:"


@dataclass
class Config:
    socket: str
    state_dir: str
    daemon_pid: int
    limits: Limits
    kprobe: tuple = None               # (mechanism or None, {mechanism: why not}), probed once
    identity: str = "uid"              # "uid" (SO_PEERCRED) or "token" (the hub's API token)
    hub_api: str = None                # with "token": the hub's REST API (GET {hub_api}/user)
    token_cache_s: float = 10.0        # how long a token's owner is remembered

    @property
    def sessions_file(self):
        return os.path.join(self.state_dir, "sessions.json")


class Terminated(BaseException):
    """SIGTERM from the daemon: the client is gone, or the daemon is stopping."""


class Overran(Exception):
    """A request ran past its wall time (SIGALRM)."""


class Files:
    """A request's bytes as files in a directory only root can enter, under names made from
    the client's labels; unmask() puts the labels back into anything said about them."""

    def __init__(self, state_dir):
        import tempfile
        base = os.path.join(state_dir, "tmp")
        os.makedirs(base, mode=0o700, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix=f"s{os.getpid()}-", dir=base)
        self.labels = {}

    def write(self, label, data, default):
        base = os.path.basename(label or "") or default
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", base)[-64:].lstrip(".") or default
        path = os.path.join(self.dir, safe)
        if path in self.labels:
            path = os.path.join(self.dir, f"{len(self.labels)}-{safe}")
        with open(path, "wb") as f:
            f.write(data)
        self.labels[path] = label or safe
        return path

    def unmask_json(self, text):
        """JSON text with each file's path replaced by its label (escaped for JSON)."""
        for path, label in self.labels.items():
            text = text.replace(path, json.dumps(label)[1:-1])
        return text.replace(self.dir + "/", "")

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Session:
    """One connection: read a request, do it as this peer, answer; until the connection ends."""

    def __init__(self, conn, peer, cfg):
        self.conn, self.peer, self.cfg = conn, peer, cfg
        self.limits = cfg.limits
        self.labs = {}
        self.files = None
        self._tokens, self._refill = float(self.limits.burst), time.monotonic()

    # the loop ---------------------------------------------------------------------------------
    def serve(self):
        try:
            while True:
                try:
                    got = P.recv_msg(self.conn, P.MAX_REQUEST_JSON, P.MAX_REQUEST_BLOB)
                except P.ProtocolError as e:
                    self._answer_error(e)
                    return                          # malformed: answered, then dropped
                if got is None:
                    return                          # the client closed the connection
                doc, blob = got
                op = doc.get("op")
                if op != "hello" and (not isinstance(op, str) or op not in ops.OPS):
                    self._answer_error(P.ProtocolError(
                        f"unknown op {str(op)[:40]!r}; pktlabd does {', '.join(sorted(ops.OPS))}"))
                    return
                if not self._take_token():
                    self._answer_error(P.Refused(
                        f"too many requests: more than {self.limits.burst} sent without waiting "
                        f"for the answers, beyond {self.limits.rate:g} a second; the "
                        "connection is closed"))
                    return
                if op == "hello":          # who this connection is (pktlab.workshop.identity)
                    P.send_msg(self.conn, {"ok": True, "result": identity.hello_result(
                        self.peer, self.cfg)})
                    continue
                if not self._one(ops.OPS[op], op, doc, blob):
                    return
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            self.close_all()

    def _one(self, fn, op, doc, blob):
        """Do one request and answer it; False when the connection must end."""
        old = signal.signal(signal.SIGALRM, _overran)
        signal.setitimer(signal.ITIMER_REAL, self.limits.wall(op))
        keep, out, files = True, b"", None
        try:
            result, out = fn(self, P.Args(op, doc.get("args")), blob)
            reply = {"ok": True, "result": result}
        except P.ProtocolError as e:
            reply, keep = {"ok": False, "error": P.error_doc(e)}, False
        except Overran:
            reply, keep = {"ok": False, "error": {
                "kind": "timeout", "errno": None, "log": "",
                "message": f"{op}: stopped after {self.limits.wall(op)} s, the longest a "
                           "request may take; your labs were closed with the connection"}}, False
        except Exception as e:                   # said to the client, the session goes on
            if P.error_doc(e)["kind"] == "internal":
                print(f"pktlabd session {os.getpid()} (uid {self.peer.uid}) {op}:\n"
                      + traceback.format_exc(), file=sys.stderr, flush=True)
            reply = {"ok": False, "error": P.error_doc(e)}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
            files, self.files = self.files, None
            if files is not None:
                files.close()
        if files is not None:            # the client's names, never the daemon's own paths
            reply = json.loads(files.unmask_json(json.dumps(reply)))
        P.send_msg(self.conn, reply, out)
        return keep

    def progress(self, doc):
        """A word while a request runs, before its answer: {"progress": doc} (sent only for
        a request that asked for it; a client that does not read it stops the request at its
        time limit, as any write that cannot go)."""
        P.send_msg(self.conn, {"progress": doc})

    def _answer_error(self, e):
        with contextlib.suppress(OSError):
            P.send_msg(self.conn, {"ok": False, "error": P.error_doc(e)})

    def _take_token(self):
        """The rate limit: a burst, then `rate` requests a second. Past it, a client that
        waits for each answer (a notebook stepping through a capture) is slowed down to the
        rate; one that piles requests up without reading the answers is cut off."""
        now = time.monotonic()
        self._tokens = min(self.limits.burst,
                           self._tokens + (now - self._refill) * self.limits.rate)
        self._refill = now
        if self._tokens < 1:
            if select.select([self.conn], [], [], 0)[0]:
                return False                     # more requests already waiting: a flood
            time.sleep((1 - self._tokens) / self.limits.rate)
            self._tokens, self._refill = 1.0, time.monotonic()
        self._tokens -= 1
        return True

    # labs -------------------------------------------------------------------------------------
    def mine(self, name):
        """A lab this session holds, by name; anything else (another learner's lab, one of
        yours on another connection, an interface) is refused the same way."""
        sl = self.labs.get(name) if isinstance(name, str) else None
        if sl is None or sl.lab.closed:
            held = ", ".join(sorted(self.labs)) or "none"
            raise P.Refused(f"lab {str(name)[:40]!r}: no lab of yours on this connection (yours "
                            f"here: {held}); pktlabd acts only on labs it opened for you")
        return sl

    @contextlib.contextmanager
    def _uid_lock(self, what, wait=True):
        d = os.path.join(self.cfg.state_dir, "locks")
        os.makedirs(d, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(d, f"{self.peer.key}.{what}"),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def new_lab(self, mtu=1500):
        """A fresh lab for this learner, within the quota, tagged with their uid."""
        from ..lab import Lab
        with self._uid_lock("labs"):
            have = daemon_labs(uid=self.peer.uid)
            if len(have) >= self.limits.labs:
                names = ", ".join(st.name for st in have)
                raise P.Refused(
                    f"lab quota: you have {len(have)} labs open ({names}), the most a learner "
                    f"may have at once is {self.limits.labs}; close one first (lab.close() or "
                    "pl.close_all() in a notebook), or `pktlab lab clean --all` to close "
                    "every lab of yours")
            lab = Lab(prefix=LAB_PREFIX, mtu=mtu).up()
            try:
                lab.state.extra[TAG] = {"uid": self.peer.uid, "user": self.peer.user,
                                        "daemon": self.cfg.daemon_pid, "session": os.getpid()}
                lab.state.save()
            except BaseException:
                lab.close()
                raise
        return lab

    @contextlib.contextmanager
    def throwaway_lab(self, mtu=1500):
        """A lab for one request (`pktlab replay`, `pktlab run`), counted in the quota, gone
        after; yields [lab] and appends what of it is left after removal."""
        from ..lab import leftovers
        lab = self.new_lab(mtu)
        out = [lab]
        try:
            yield out
        finally:
            lab.close()
            out.append(leftovers(lab.name))

    def compile_slot(self):
        """The learner's one compile at a time (a lock per uid, not waited for)."""
        @contextlib.contextmanager
        def slot():
            with self._uid_lock("compile", wait=False) as got:
                if not got:
                    raise P.Refused("one compile at a time: another program of yours is being "
                                    "compiled or run right now; wait for it, then try again")
                yield
        return slot()

    def new_files(self):
        if self.files is None:
            self.files = Files(self.cfg.state_dir)
        return self.files

    def close_all(self):
        """Every lab this session holds, closed (on the way out: nothing else may run)."""
        old = signal.signal(signal.SIGTERM, _term_held)
        try:
            for name in list(self.labs):
                sl = self.labs.pop(name)
                try:
                    sl.close()
                except Exception as e:          # keep going: the rest must still go
                    print(f"pktlabd session {os.getpid()}: close lab {name}: {e}",
                          file=sys.stderr, flush=True)
        finally:
            signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def hook_compile_slot(state_dir, slots):
    """One of `slots` compile slots shared by every session (flock: freed if we die). Waiting
    for one is not the request's own time: its wall clock stops meanwhile."""
    d = os.path.join(state_dir, "locks")
    os.makedirs(d, mode=0o700, exist_ok=True)
    fds = [os.open(os.path.join(d, f"compile.{i}"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                   0o600) for i in range(slots)]
    left = None
    try:
        while True:
            for fd in fds:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    continue
            else:
                if left is None:
                    left = signal.setitimer(signal.ITIMER_REAL, 0)[0]
                time.sleep(0.02)
                continue
            break
        if left:
            signal.setitimer(signal.ITIMER_REAL, left)
            left = None
        yield
    finally:
        if left:
            signal.setitimer(signal.ITIMER_REAL, left)
        for fd in fds:
            os.close(fd)


def _overran(signum, frame):
    raise Overran()


_SESSION_PID = None


def _on_term(signum, frame):
    # pyroute2 forks helper processes (a socket made inside a namespace) and ends them with
    # SIGTERM: such a child inherits this handler and must just die, never unwind our labs
    if os.getpid() != _SESSION_PID:
        os._exit(128 + signum)
    signal.signal(signal.SIGTERM, _term_held)        # once: the unwinding must finish
    raise Terminated()


def _term_held(signum, frame):
    """SIGTERM while the session closes its labs: nothing for the session (not SIG_IGN: a
    helper forked meanwhile inherits it, and must still die on SIGTERM)."""
    if os.getpid() != _SESSION_PID:
        os._exit(128 + signum)


def run_session(conn, peer, cfg, keep_fds=(), door=None):
    """A forked session process's whole life: fds it must not hold closed, tied to the
    daemon's life, signals set, who the peer is (--identity token: the hub's word, the
    daemon's loop told over `door`), the session served. Never returns (os._exit)."""
    global _SESSION_PID
    code = 0
    _SESSION_PID = os.getpid()
    try:
        doors = () if door is None else (door.fileno(),)
        keep = sorted({0, 1, 2, conn.fileno(), *doors, *keep_fds})
        for lo, hi in zip(keep, keep[1:] + [1 << 24]):
            os.closerange(lo + 1, hi)
        _die_with_parent(cfg.daemon_pid)
        signal.set_wakeup_fd(-1)
        for s in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(s, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, _on_term)
        import functools
        from ..kernel import bpf
        bpf.compile_gate = functools.partial(hook_compile_slot, cfg.state_dir, cfg.limits.compiles)
        if cfg.kprobe is not None:
            from ..kernel import hooks
            probed = cfg.kprobe
            hooks.choose_kprobe_mechanism = lambda: probed
        if cfg.identity == "token" and peer.os_uid != 0:
            peer = identity.identify(conn, peer, cfg, door)
            if peer is None:
                return                          # refused (answered): the connection ends
        Session(conn, peer, cfg).serve()
    except Terminated:
        code = 0
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            sys.stderr.flush()
        os._exit(code)


def _die_with_parent(parent):
    """SIGTERM to this process when the daemon dies (its only thread forked us)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)              # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        raise LabError(errno.ESRCH, "pktlabd went away while this session started")
