"""pktlabd: the root daemon behind the privilege boundary (DESIGN.md, "Privilege boundary").

    pktlabd [--socket PATH] [--group GROUP]      (runs in the foreground; SIGTERM ends it)
    pktlabd --identity token --hub-api URL       (learners known by their JupyterHub token)

One process listens on a Unix socket and does no kernel work itself. For each connection it
reads who connected from the kernel (SO_PEERCRED: the uid; SO_PEERPIDFD, else pidfd_open: the
client process, as a pidfd, never a bare pid), and forks a session process
(pktlab.workshop.session) that serves that connection alone. So learners never wait on each
other (no lock shared between them), and a request that crashes ends one session, not the
daemon.

The main loop watches three things per session: the session's own pidfd (it ended: whatever
labs it still owns are removed by a cleaner child), the client's pidfd (the client died, e.g.
a notebook kernel killed mid-replay: the session gets SIGTERM, unwinds and closes its labs; a
SIGKILL follows after TERM_GRACE_S) and the listening socket. It refuses a connection beyond
the per-learner or total session limits (with an answer saying so); with --group a learner's
most is also their share of the total (--max-connections // the group's members), so a few
learners holding idle connections cannot fill it for the rest. On SIGTERM or SIGINT it
ends every session the same way, removes whatever labs they owned, removes its socket, and
exits: nothing is left.

Who a learner is: SO_PEERCRED's uid; or, with --identity token (every learner's pod runs as
the same uid, docs/kubernetes.md), the hub user whose API token the connection sent first
(pktlab.workshop.identity: the session asks the hub, then tells this loop the name over a
socketpair, and the loop counts that name's connections). Either way the labs stay tied to the
connection and the client's pidfd.
In token mode, connections that have not said who they are are few, and a silent one gives
its place to a new one (pktlab.workshop.identity.put_out).

The socket is 0660 with --group (learners in that group may connect) or 0666 without (any
local user: the daemon knows who asks either way). Its state (which sessions exist, the
learners' lock files, requests' files) lives in PATH.d, which only root may enter.
"""

import argparse
import contextlib
import errno
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time

from . import identity, protocol as P
from .labs import daemon_labs
from .session import Config, Limits, Peer, run_session

DEFAULT_SOCKET = "/run/pktlab/pktlabd.sock"
#: the environment variable a client reads for another socket (tests, a second daemon)
SOCKET_ENV = "PKTLAB_SOCKET"
SO_PEERPIDFD = getattr(socket, "SO_PEERPIDFD", 77)
#: how long a session has to close its labs after SIGTERM before SIGKILL
TERM_GRACE_S = 15.0


def log(msg):
    print(f"pktlabd[{os.getpid()}] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr,
          flush=True)


class _Session:
    def __init__(self, pid, pidfd, peer, client_pidfd, door=None):
        self.pid, self.pidfd, self.peer, self.client_pidfd = pid, pidfd, peer, client_pidfd
        self.door = door                    # --identity token: the session says who, here
        self.kill_at = None
        self.started = time.time()
        self.t0 = time.monotonic()
        self.spoke = False                  # token mode: its hello came (the hub is asked)
        self.origin = None                  # token mode: the client's cgroup (a pod)
        self.evicted = False                # put out to make room: SIGKILLed, not yet reaped


class Daemon:
    def __init__(self, path=DEFAULT_SOCKET, group=None, limits=None, owner=None,
                 identity="uid", hub_api=None, token_cache_s=10.0):
        self.path = os.path.abspath(path)
        self.group = group
        self.identity, self.hub_api, self.token_cache_s = identity, hub_api, token_cache_s
        self.owner = owner                  # (uid, gid): the one user who may connect
        self.limits = limits or Limits()
        self.state_dir = self.path + ".d"
        self.sessions = {}                  # session pid -> _Session
        self.cleaners = set()               # pids of cleaner children
        self.stopping = False
        self.listener = None
        self.sel = None
        self.cfg = None

    # setup ------------------------------------------------------------------------------------
    def _gid(self):
        if self.group is None:
            return None
        import grp
        try:
            return grp.getgrnam(self.group).gr_gid
        except KeyError:
            raise ValueError(f"--group {self.group}: no such group; create it (groupadd) or "
                             "leave the option out (then any local user may connect)") from None

    def _claim_path(self):
        """The socket's path: free, or a socket nobody listens on any more (removed)."""
        import stat
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ValueError(f"{self.path} exists and is not a socket; pktlabd leaves it alone: "
                             "choose another --socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(self.path)
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(self.path)                        # a dead daemon's socket
            return
        finally:
            probe.close()
        raise ValueError(f"a pktlabd already listens on {self.path}; stop it first, or choose "
                         "another --socket")

    def _own_dir(self, path, sticky_ok):
        """`path` is a directory (not a symlink) only root may change: root's own, not group-
        or world-writable (sticky_ok: unless sticky, like /tmp, where no one else may rename or
        remove root's entries). Else a learner could swap the state directory, or plant a
        symlink where root writes sessions.json, lock files and capture bytes."""
        import stat
        st = os.lstat(path)
        loose = st.st_mode & 0o022 and not (sticky_ok and st.st_mode & stat.S_ISVTX)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or loose:
            raise ValueError(f"{path} is not root's own directory (a symlink, another user's, "
                             "or writable by others); pktlabd leaves it alone: remove it, or "
                             "choose another --socket")

    def setup(self):
        gid = self._gid()
        os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
        self._own_dir(os.path.dirname(self.path), sticky_ok=True)
        if os.path.lexists(self.state_dir):
            self._own_dir(self.state_dir, sticky_ok=False)
        self._claim_path()
        import shutil            # a killed daemon's request files (the path is ours now)
        shutil.rmtree(os.path.join(self.state_dir, "tmp"), ignore_errors=True)
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        old = os.umask(0o177)
        try:
            ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            ls.bind(self.path)
        finally:
            os.umask(old)
        if self.owner is not None:                      # `make lab`: its one learner
            os.chown(self.path, *self.owner)
            os.chmod(self.path, 0o600)
        else:
            if gid is not None:
                os.chown(self.path, 0, gid)
            os.chmod(self.path, 0o660 if gid is not None else 0o666)
        ls.listen(128)
        ls.setblocking(False)
        self.listener = ls
        self.cfg = Config(self.path, self.state_dir, os.getpid(), self.limits, self._probe(),
                          identity=self.identity, hub_api=self.hub_api,
                          token_cache_s=self.token_cache_s)
        self._write_sessions()

    def _probe(self):
        """Which kprobe mechanism works here, found once in a child (this process never loads
        a program: its sessions are forked from it and must not share one)."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                from ..kernel.hooks import choose_kprobe_mechanism
                mech, why = choose_kprobe_mechanism()
                os.write(w, json.dumps([mech, why]).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        data = b""
        with os.fdopen(r, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        try:
            mech, why = json.loads(data)
            return mech, why
        except ValueError:
            return None

    def _preload(self):
        """Import what sessions use, once, before any fork: a session starts in milliseconds."""
        import numpy  # noqa: F401
        from ..kernel import bpf, hooks, loader, verifier  # noqa: F401
        from ..replay import learner, run  # noqa: F401
        from ..packet import survey, capture  # noqa: F401
        from . import ops  # noqa: F401
        import pyroute2  # noqa: F401
        with contextlib.suppress(Exception):
            bpf.bcc()

    # the loop ---------------------------------------------------------------------------------
    def serve(self):
        self._preload()
        self.setup()
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake = r
        signal.set_wakeup_fd(w)
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, self._on_stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ, ("accept", None))
        self.sel.register(r, selectors.EVENT_READ, ("wake", None))
        who = "uid" if self.identity == "uid" else f"the hub's token ({self.hub_api}/user)"
        log(f"listening on {self.path} (labs per learner {self.limits.labs}, connections per "
            f"learner {self.limits.sessions}; learners known by {who}); kprobe via "
            f"{(self.cfg.kprobe or [None])[0]}")
        try:
            while not self.stopping:
                self._turn()
        finally:
            self.shutdown()

    def _on_stop(self, signum, frame):
        self.stopping = True

    def _turn(self):
        timeout = 1.0
        kills = [s.kill_at for s in self.sessions.values() if s.kill_at]
        if kills:
            timeout = max(0.0, min(timeout, min(kills) - time.monotonic()))
        for key, _ in self.sel.select(timeout):
            what, s = key.data
            if what == "accept":
                self._accept_all()
            elif what == "wake":
                with contextlib.suppress(OSError):
                    os.read(self.wake, 4096)
            elif what == "client":
                self._client_gone(s)
            elif what == "session":
                self._session_ended(s)
            elif what == "door":
                self._door(s)
        self._reap_cleaners()
        now = time.monotonic()
        for s in list(self.sessions.values()):
            if s.kill_at and now >= s.kill_at:
                log(f"session {s.pid} (uid {s.peer.uid}) did not end on SIGTERM: SIGKILL")
                with contextlib.suppress(ProcessLookupError, OSError):
                    signal.pidfd_send_signal(s.pidfd, signal.SIGKILL)
                s.kill_at = None

    def _accept_all(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    log(f"accept: {e}: refusing connections until some end")
                    return
                raise
            try:
                self._start(conn)
            except Exception as e:          # one connection's trouble: the daemon goes on
                log(f"a connection refused: {e}")
            finally:
                conn.close()

    def _refuse(self, conn, message):
        with contextlib.suppress(OSError):
            conn.settimeout(0.5)
            P.send_msg(conn, {"ok": False, "error": {"kind": "refused", "message": message,
                                                     "errno": None, "log": ""}})

    def _start(self, conn):
        conn.setblocking(True)
        pid, uid, gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET,
                                                            socket.SO_PEERCRED, 12))
        peer = Peer.of(uid, gid, pid)
        if self.owner is not None and uid not in (0, self.owner[0]):
            self._refuse(conn, f"this pktlabd serves uid {self.owner[0]} only (a `make lab` "
                               f"of theirs); you are uid {uid}")
            return
        by_token = self.identity == "token" and uid != 0     # counted once the hub says who
        if by_token and not self._room_for_one_more():
            self._refuse(conn, f"pktlabd has {identity.WAITING_MAX} connections waiting to say who "
                               "they are, its most; try again in a moment")
            return
        live = [s for s in self.sessions.values() if not s.evicted]
        mine = sum(1 for s in live if s.peer.uid == uid)
        if len(live) >= self.limits.max_sessions:
            self._refuse(conn, f"pktlabd is serving {len(live)} connections, its "
                               "most; try again in a moment")
            return
        most = self._per_learner()
        if uid != 0 and mine >= most and not by_token:
            self._refuse(conn, f"too many connections: you (uid {uid}) have {mine} open to "
                               f"pktlabd, the most a learner may ({most}: the "
                               f"{self.limits.max_sessions} shared by the group's learners); "
                               "close one (a notebook's labs: pl.close_all()) and try again")
            return
        client_pidfd = self._client_pidfd(conn, pid)
        door = theirs = None
        try:
            if by_token:
                door, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            child = os.fork()
        except BaseException:
            if client_pidfd is not None:
                os.close(client_pidfd)
            for end in (door, theirs):
                if end is not None:
                    end.close()
            raise
        if child == 0:
            run_session(conn, peer, self.cfg, door=theirs)          # never returns
        s = _Session(child, os.pidfd_open(child), peer, client_pidfd, door)
        if by_token:
            s.origin = identity.cgroup_of(pid)
        self.sessions[child] = s
        self.sel.register(s.pidfd, selectors.EVENT_READ, ("session", s))
        if door is not None:
            theirs.close()
            door.setblocking(False)
            self.sel.register(door, selectors.EVENT_READ, ("door", s))
        if client_pidfd is not None:
            self.sel.register(client_pidfd, selectors.EVENT_READ, ("client", s))
        self._write_sessions()

    def _room_for_one_more(self):
        """Token mode: False when identity.WAITING_MAX connections wait for their hello or the
        hub and none can be put out; else room, made when full by SIGKILLing the session
        identity.put_out names (it never got past the hello: it has made nothing)."""
        live = [s for s in self.sessions.values() if not s.evicted]
        waiting = [s for s in live if s.door is not None]
        if len(waiting) < identity.WAITING_MAX and len(live) < self.limits.max_sessions:
            return True
        victim, why = identity.put_out(waiting, time.monotonic())
        if victim is None:
            return len(waiting) < identity.WAITING_MAX
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(victim.pidfd, signal.SIGKILL)
        victim.evicted = True
        self._forget_door(victim)
        log(f"session {victim.pid}: {why}")
        return True

    def _per_learner(self):
        """Connections one learner may hold: --connections, and with --group no more than
        the group's members' share of the total, so learners holding idle connections (a
        notebook's connection waits for ever) cannot fill the total for the others."""
        most = self.limits.sessions
        if self.group is not None:
            import grp
            with contextlib.suppress(KeyError):
                members = len(grp.getgrnam(self.group).gr_mem)
                most = min(most, max(1, self.limits.max_sessions // max(1, members)))
        return most

    @staticmethod
    def _client_pidfd(conn, pid):
        """The connecting process as a pidfd: the kernel's (SO_PEERPIDFD, the process that
        connected, whatever its pid became), else pidfd_open of the pid SO_PEERCRED gave."""
        try:
            return conn.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
        except OSError:
            pass
        if pid <= 0:
            return None                   # another PID namespace: the connection's end only
        try:
            return os.pidfd_open(pid)
        except OSError:
            return None

    def _client_gone(self, s):
        """The client process ended: its session is told to close its labs and end."""
        self._forget_client(s)
        if s.pid in self.sessions and s.kill_at is None:
            log(f"client pid {s.peer.pid} (uid {s.peer.uid}) ended: ending session {s.pid}")
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(s.pidfd, signal.SIGTERM)
            s.kill_at = time.monotonic() + TERM_GRACE_S

    def _door(self, s):
        """A token session says whose the token is (the hub told it): this learner's
        connections are counted like a uid's; the answer lets the session go on, or not."""
        try:
            data = s.door.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        try:
            doc = json.loads(data) if data else None
        except ValueError:
            doc = None
        if isinstance(doc, dict) and doc.get("hello") is True and "user" not in doc:
            s.spoke = True                  # its hello came: the hub is being asked
            return
        name = doc.get("user") if isinstance(doc, dict) else None
        if isinstance(name, str):
            key = s.peer.as_hub_user(name).uid
            mine = sum(1 for x in self.sessions.values() if x.peer.uid == key)
            most = self._per_learner()
            if mine >= most:
                answer = {"ok": False, "message": (
                    f"too many connections: you ({name}) have {mine} open to pktlabd, the "
                    f"most a learner may ({most}); close one (a notebook's labs: "
                    "pl.close_all()) and try again")}
            else:
                s.peer, answer = s.peer.as_hub_user(name), {"ok": True}
                self._write_sessions()
            with contextlib.suppress(OSError):
                s.door.send(json.dumps(answer).encode())
        self._forget_door(s)

    def _forget_door(self, s):
        if s.door is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(s.door)
            s.door.close()
            s.door = None

    def _forget_client(self, s):
        if s.client_pidfd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(s.client_pidfd)
            os.close(s.client_pidfd)
            s.client_pidfd = None

    def _session_ended(self, s):
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(s.pidfd)
        self._forget_client(s)
        self._forget_door(s)
        try:
            _, status = os.waitpid(s.pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            code = None
        os.close(s.pidfd)
        self.sessions.pop(s.pid, None)
        self._write_sessions()
        if code not in (0, None):
            log(f"session {s.pid} (uid {s.peer.uid}) ended with {code}")
        self._clean_after([s.pid])

    def _left_by(self, pids):
        return [st for st in daemon_labs(daemon_pid=self.cfg.daemon_pid, alive_only=False)
                if st.owner_pid in pids]

    def _clean_after(self, pids, wait=False):
        """Remove the labs sessions `pids` still own (their owner is gone), in a child: the
        loop never waits on netlink. wait: here and now (at shutdown)."""
        left = self._left_by(set(pids))
        if not left:
            return
        log(f"removing {len(left)} lab(s) left by session(s) {sorted(pids)}: "
            + ", ".join(st.name for st in left))
        if wait:
            _remove(left)
            return
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                _remove(left)
                code = 0
            finally:
                os._exit(code)
        self.cleaners.add(pid)

    def _reap_cleaners(self):
        for pid in list(self.cleaners):
            with contextlib.suppress(ChildProcessError):
                done, _ = os.waitpid(pid, os.WNOHANG)
                if not done:
                    continue
            self.cleaners.discard(pid)

    def _write_sessions(self):
        doc = {"pid": os.getpid(), "sessions": [
            {"pid": s.pid, "uid": s.peer.uid, "user": s.peer.user, "client_pid": s.peer.pid,
             "os_uid": s.peer.os_uid, "since": s.started} for s in self.sessions.values()]}
        tmp = os.path.join(self.state_dir, f"sessions.json.{os.getpid()}")
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, self.cfg.sessions_file)

    # the end ----------------------------------------------------------------------------------
    def shutdown(self):
        """Every session ended (SIGTERM, SIGKILL after TERM_GRACE_S), every lab they owned
        removed, the socket and the state directory gone."""
        if self.listener is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.listener.close()
            self.listener = None
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        pids = list(self.sessions)
        if pids:
            log(f"stopping: ending {len(pids)} session(s)")
        for s in self.sessions.values():
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(s.pidfd, signal.SIGTERM)
        deadline = time.monotonic() + TERM_GRACE_S
        while self.sessions and time.monotonic() < deadline:
            for s in list(self.sessions.values()):
                with contextlib.suppress(ChildProcessError):
                    done, _ = os.waitpid(s.pid, os.WNOHANG)
                    if not done:
                        continue
                self.sessions.pop(s.pid)
            time.sleep(0.05)
        for s in list(self.sessions.values()):
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(s.pidfd, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(s.pid, 0)
        for pid in list(self.cleaners):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        if self.cfg is not None:
            self._clean_after(pids, wait=True)
            # and anything of this daemon's whose session is gone, however it went
            _remove([st for st in daemon_labs(daemon_pid=self.cfg.daemon_pid, alive_only=False)
                     if not st.owner_alive()])
            import shutil
            shutil.rmtree(self.state_dir, ignore_errors=True)    # ours: setup() made it
        log("stopped")


def _remove(states):
    from ..lab import remove_lab
    for st in states:
        try:
            remove_lab(st)
        except Exception as e:
            log(f"remove lab {st.name}: {e}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="pktlabd", description=(
        "pktlab's root daemon: labs, replays and learners' programs for unprivileged callers, "
        "each acting only on their own labs. Runs in the foreground; SIGTERM ends it and every "
        "lab it opened."))
    p.add_argument("--socket", default=DEFAULT_SOCKET, help=f"default {DEFAULT_SOCKET}")
    p.add_argument("--group", default=None,
                   help="the group whose members may connect (socket 0660); default: any "
                        "local user (0666)")
    p.add_argument("--owner", default=None, metavar="USER",
                   help="the one user who may connect (socket 0600, theirs): `make lab`")
    p.add_argument("--labs", type=int, default=Limits.labs,
                   help=f"labs a learner may have open at once (default {Limits.labs})")
    p.add_argument("--connections", type=int, default=Limits.sessions,
                   help=f"connections a learner may have at once (default {Limits.sessions})")
    p.add_argument("--max-connections", type=int, default=Limits.max_sessions,
                   help=f"connections at once, all learners (default {Limits.max_sessions}); "
                        "with --group each learner's share of it is their most")
    p.add_argument("--identity", choices=("uid", "token"), default="uid",
                   help="how a learner is known: uid (SO_PEERCRED, the default: one account "
                        "per learner) or token (the JupyterHub API token the client sends "
                        "first, checked with the hub's GET /user: where learners share a uid, "
                        "e.g. Kubernetes pods)")
    p.add_argument("--hub-api", metavar="URL",
                   help="with --identity token: the hub's REST API, e.g. "
                        "http://hub:8081/hub/api")
    p.add_argument("--token-cache", type=float, default=10.0, metavar="S",
                   help="with --identity token: seconds a token's owner is remembered "
                        "(default 10; a revoked token works at most this long; 0: ask the hub "
                        "at every connection)")
    args = p.parse_args(argv)
    if args.identity == "token" and not (args.hub_api or "").startswith(("http://",
                                                                         "https://")):
        print("pktlabd: --identity token needs --hub-api URL (http:// or https://, the hub's "
              "REST API, e.g. http://127.0.0.1:8081/hub/api)", file=sys.stderr)
        return 2
    if not 0 <= args.token_cache <= 3600:
        print("pktlabd: --token-cache is 0..3600 seconds", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("pktlabd: needs root (it makes namespaces and loads programs for learners); "
              "start it with sudo, or through `pktlab workshop up`", file=sys.stderr)
        return 2
    if not 1 <= args.labs <= 64 or not 1 <= args.connections <= 64 or \
            not 1 <= args.max_connections <= 1024:
        print("pktlabd: --labs and --connections are 1..64, --max-connections 1..1024",
              file=sys.stderr)
        return 2
    owner = None
    if args.owner is not None:
        import pwd
        try:
            pw = pwd.getpwnam(args.owner)
        except KeyError:
            print(f"pktlabd: --owner {args.owner}: no such user", file=sys.stderr)
            return 2
        if pw.pw_uid == 0 or args.group is not None:
            print("pktlabd: --owner is one unprivileged user, without --group", file=sys.stderr)
            return 2
        owner = (pw.pw_uid, pw.pw_gid)
    limits = Limits(labs=args.labs, sessions=args.connections,
                    max_sessions=args.max_connections)
    d = Daemon(args.socket, args.group, owner=owner, limits=limits, identity=args.identity,
               hub_api=args.hub_api, token_cache_s=args.token_cache)
    try:
        d.serve()
    except (ValueError, OSError) as e:
        print(f"pktlabd: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

