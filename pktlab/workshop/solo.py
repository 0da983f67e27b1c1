"""`make lab` (`pktlab workshop solo`): JupyterLab on the lessons for one learner, never as root.

    solo = Solo(port=8888)                    # every check, nothing made yet (exit 2 on a bad one)
    with solo.start(say=print) as running:    # pktlabd (theirs only), then JupyterLab as them
        running.wait()                        # until Ctrl-C, SIGTERM, or JupyterLab ends

Started as root (lab.sh re-runs itself with sudo), it runs the notebook server and every kernel
and terminal as the invoking user (SUDO_USER), or, started as root itself, as a dedicated
account pktlab makes (`pktlab-lab`: locked password, home 0700). The kernel work goes through a
pktlabd of this lab alone: its socket is that user's (0600), any other uid is refused. So
whoever holds the notebook's token gets a shell as that user, not root; the lessons open their
labs, replay, load learners' programs through the daemon as a workshop learner does.

The learner's copy of the lessons: --workdir, else $PKTLAB_WORKDIR, else the checkout's work/
when it is theirs (a checkout they cloned), else ~/pktlab-lessons (SUDO_USER) or ~/lessons (the
dedicated account); made and filled by the learner (their uid), never written by root.

What dies with it (Ctrl-C, SIGTERM, even SIGKILL): JupyterLab runs in a PID namespace of its
own (pktlab.lab.spawn), with no_new_privs (no setuid program, sudo included, gains anything
inside); pktlabd dies by PR_SET_PDEATHSIG and its labs die with their sessions, or are stale
for `pktlab lab clean` (owner gone). Only one solo per port: an flock in the state directory.
"""

import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time

from ..errors import EnvironmentProblem
from ..lab import spawn as spawning
from . import accounts
from .accounts import Registry

ACCOUNT = "pktlab-lab"
STATE_DIR = "/var/lib/pktlab/solo"
SOCKET_DIR = "/run/pktlab"
READY_S = 60.0
STOP_S = 15.0


def repo_root():
    """The checkout this pktlab runs from (lab.sh's and the notebooks' home)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _listening(port):
    import socket
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_ready(answers, proc, what, where):
    """Until `answers()`; refused when `proc` ends first or READY_S pass."""
    deadline = time.monotonic() + READY_S
    while not answers():
        if proc.poll() is not None:
            raise EnvironmentProblem(f"workshop solo: {what} ended at start (exit "
                                     f"{proc.returncode}); {where}")
        if time.monotonic() > deadline:
            raise EnvironmentProblem(f"workshop solo: {what} did not answer in {READY_S:g} s; "
                                     f"{where}")
        time.sleep(0.2)


class _Learner:
    """What accounts.run_as / copy_lessons need of a learner."""

    def __init__(self, pw, workdir):
        self.user, self.uid, self.gid, self.home = pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir
        self.workdir = workdir


class Solo:
    """A one-learner lab to start: the checks are made here, before anything exists."""

    def __init__(self, port=8888, user=None, workdir=None, pcaps=None, state_dir=None):
        if os.geteuid() != 0:
            raise EnvironmentProblem("workshop solo: needs root to start pktlabd (it then runs "
                                     "JupyterLab as you); `make lab` asks sudo for it")
        self.port = port
        self.state_dir = os.path.abspath(state_dir or os.environ.get("PKTLAB_SOLO_DIR")
                                         or STATE_DIR)
        self.repo = repo_root()
        self.pcaps = os.path.abspath(pcaps or os.environ.get("PKTLAB_PCAPS")
                                     or os.path.join(self.repo, "pcaps"))
        if not os.path.isdir(self.pcaps):
            raise ValueError(f"workshop solo: captures {self.pcaps}: not a directory")
        self.user, self.dedicated = self._who(user)
        self.workdir_given = workdir or os.environ.get("PKTLAB_WORKDIR")
        self.socket = os.path.join(SOCKET_DIR, f"lab-{port}.sock")
        self.jupyter = os.path.join(os.path.dirname(sys.executable), "jupyter")
        if not os.access(self.jupyter, os.X_OK):
            raise EnvironmentProblem(f"workshop solo: {self.jupyter} is missing; run "
                                     "scripts/setup.sh")
        if not shutil.which("setpriv"):
            raise EnvironmentProblem("workshop solo: setpriv (util-linux) is missing")

    @staticmethod
    def _who(user):
        """(the user JupyterLab runs as, whether it is pktlab's dedicated account)."""
        if user is None:
            sudo = os.environ.get("SUDO_USER")
            user = sudo if sudo and sudo != "root" else None
        account = os.environ.get("PKTLAB_SOLO_ACCOUNT") or ACCOUNT    # (tests: their own)
        if user is None:
            return account, True
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            raise ValueError(f"workshop solo: --user {user}: no such user") from None
        if pw.pw_uid == 0:
            raise ValueError(f"workshop solo: --user {user} is root; the lab never runs as "
                             "root (leave --user out: pktlab makes an account of its own)")
        if user == account:
            return account, True
        return user, False

    def start(self, say=None):
        return Running(self, say or (lambda m: print(m, file=sys.stderr))).begin()


class Running:
    """A started solo lab: close() ends it (also on the way out of `with`)."""

    def __init__(self, solo, say):
        self.solo, self.say = solo, say
        self.daemon = self.server = self.daemon_pid = None
        self.lock_fd = None
        self.learner = None

    # start ------------------------------------------------------------------------------------
    def begin(self):
        try:
            self._lock()
            self.learner = self._account()
            self._lessons()
            self._start_daemon()
            self._start_server()
        except BaseException:
            self.close()
            raise
        return self

    def _lock(self):
        os.makedirs(self.solo.state_dir, mode=0o700, exist_ok=True)
        os.chmod(self.solo.state_dir, 0o700)
        path = os.path.join(self.solo.state_dir, f"lab-{self.solo.port}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EnvironmentProblem(f"workshop solo: a lab already runs on port "
                                     f"{self.solo.port}; use another port (make lab PORT=...)")
        self.lock_fd = fd

    def _account(self):
        if self.solo.dedicated:
            reg = Registry.load(self.solo.state_dir)
            accounts.check_names([self.solo.user], reg)   # never an account pktlab did not make
            accounts.ensure_group(reg)
            made = accounts.create(self.solo.user, reg)
            pw = pwd.getpwnam(made.user)
        else:
            pw = pwd.getpwnam(self.solo.user)
        # JupyterLab runs the venv's Python on the checkout as this user: a clone in a 0700
        # home (root's /root) is refused in one line, before the daemon or server starts
        from .hubconf import learners_view
        view = learners_view(pw.pw_uid, pw.pw_gid, os.getgrouplist(pw.pw_name, pw.pw_gid))
        if not view.get("ok"):
            raise EnvironmentProblem(
                f"workshop solo: {pw.pw_name} cannot run {sys.executable} on {self.solo.repo} "
                f"({view.get('why')}); JupyterLab runs as them, never as root: put the clone "
                "where they can read it (e.g. /opt/pktlab, then scripts/setup.sh there), or "
                "run `make lab` as the user who owns the clone")
        if not os.path.isdir(pw.pw_dir):
            raise EnvironmentProblem(f"workshop solo: {pw.pw_name}'s home {pw.pw_dir} is not "
                                     "there; JupyterLab keeps its settings and runtime files "
                                     "in it: run the lab as a user with a home")
        return _Learner(pw, self._workdir(pw))

    def _workdir(self, pw):
        given = self.solo.workdir_given
        if given:
            return os.path.abspath(os.path.expanduser(given))
        work = os.path.join(self.solo.repo, "work")
        if not self.solo.dedicated:
            with contextlib.suppress(OSError):
                st = os.stat(work) if os.path.exists(work) else os.stat(self.solo.repo)
                if st.st_uid == pw.pw_uid:
                    return work
        name = "lessons" if self.solo.dedicated else "pktlab-lessons"
        return os.path.join(pw.pw_dir, name)

    def _lessons(self):
        lr = self.learner
        notebooks = os.path.join(self.solo.repo, "notebooks")
        copied = accounts.copy_lessons(lr, notebooks)       # as the learner: their uid
        r = accounts.run_as(lr, ["test", "-w", lr.workdir, "-a", "-x", lr.workdir])
        if r.returncode != 0:
            raise EnvironmentProblem(f"workshop solo: {lr.workdir} is not writable by "
                                     f"{lr.user}; choose another (--workdir, PKTLAB_WORKDIR)")
        self.say(f"lessons: {lr.workdir} ({len(copied)} copied now; your own copies kept)"
                 f"   captures: {self.solo.pcaps}")
        cap = os.environ.get("PKTLAB_CAPTURE")
        if cap and accounts.run_as(lr, ["test", "-r", cap]).returncode != 0:
            self.say(f"PKTLAB_CAPTURE={cap}: {lr.user} cannot read it, so lesson 07 cannot "
                     "either; make it readable (or copy it where they can read it)")
        old = os.path.join(self.solo.repo, "work")
        if old != lr.workdir and os.path.isdir(old):
            self.say(f"{old} holds copies an older `make lab` made as root; they are left "
                     f"there (copy what you want of them into {lr.workdir})")

    def _start_daemon(self):
        from .hub import daemon_argv, daemon_status, remove_dead_socket
        argv = daemon_argv()
        if argv is None:
            raise EnvironmentProblem("workshop solo: this pktlab has no pktlabd")
        os.makedirs(SOCKET_DIR, mode=0o755, exist_ok=True)
        remove_dead_socket(self.solo.socket)
        log = os.path.join(self.solo.state_dir, f"pktlabd-{self.solo.port}.log")
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        try:
            self.daemon = spawning.spawn(argv + ["--socket", self.solo.socket, "--owner",
                                                 self.learner.user],
                                         pid_namespace=False, stdin=subprocess.DEVNULL,
                                         stdout=fd, stderr=fd, cwd=self.solo.state_dir)
        finally:
            os.close(fd)
        self.daemon_pid = self.daemon.pid
        _wait_ready(lambda: daemon_status(self.solo.socket) is not None, self.daemon,
                    "pktlabd", f"see {log}")

    def env(self):
        lr = self.learner
        from .hub import _daemon_names
        return {"HOME": lr.home, "USER": lr.user, "LOGNAME": lr.user, "SHELL": "/bin/bash",
                "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
                "LANG": os.environ.get("LANG", "C.UTF-8"), "TERM": "xterm-256color",
                _daemon_names()[1]: self.solo.socket, "PKTLAB_PCAPS": self.solo.pcaps,
                "PKTLAB_WORKDIR": lr.workdir,
                # an instructor's capture for lesson 07, and the doctor's what-if (lesson 00)
                **{k: os.environ[k] for k in ("PKTLAB_CAPTURE", "PKTLAB_PRETEND_MISSING")
                   if os.environ.get(k)}}

    def argv(self):
        lr = self.learner
        return ["setpriv", f"--reuid={lr.uid}", f"--regid={lr.gid}", "--init-groups",
                "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all",
                # a change of uid clears the parent-death signal unshare --kill-child set: set
                # again, JupyterLab (the namespace's init) dies with unshare, and then all in it
                "--pdeathsig=KILL", "--",
                self.solo.jupyter, "lab", "--ip=127.0.0.1", f"--port={self.solo.port}",
                "--no-browser", f"--ServerApp.root_dir={lr.workdir}",
                # kernels on Unix sockets in the user's 0700 runtime dir, not TCP ports
                "--KernelManager.transport=ipc"]

    def _start_server(self):
        self.server = spawning.spawn(self.argv(), stdin=subprocess.DEVNULL, env=self.env(),
                                     cwd=self.learner.workdir)
        _wait_ready(lambda: _listening(self.solo.port), self.server, "JupyterLab",
                    "its log is above")
        self.say(f"JupyterLab runs as {self.learner.user} (uid {self.learner.uid}), not root; "
                 f"its kernel work goes through pktlabd on {self.solo.socket}")
        self.say(f"ready: open the http://127.0.0.1:{self.solo.port}/lab?token=... address "
                 "printed above; Ctrl-C ends the lab")

    # run, end ---------------------------------------------------------------------------------
    def wait(self):
        """Until Ctrl-C / SIGTERM (0), or JupyterLab or pktlabd ending (their status)."""
        stop = []
        old = {s: signal.signal(s, lambda n, f: stop.append(n))
               for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            while not stop:
                if self.server.poll() is not None:
                    self.say(f"JupyterLab ended (exit {self.server.returncode})")
                    return self.server.returncode or 1
                if self.daemon.poll() is not None:
                    self.say(f"pktlabd ended (exit {self.daemon.returncode}); the lab stops")
                    return 1
                time.sleep(0.2)
            return 0
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def close(self):
        """JupyterLab (and with its PID namespace every kernel and terminal), then pktlabd
        (SIGTERM: it closes every lab it opened); what is left is said."""
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if self.server is not None:
                spawning.stop(self.server, signal.SIGTERM, timeout=STOP_S)
                self.server = None
            if self.daemon is not None:
                spawning.stop(self.daemon, signal.SIGTERM, timeout=STOP_S)
                self.daemon = None
            left = self.leftovers()
            if left:
                self.say("left behind: " + "; ".join(left))
            if self.lock_fd is not None:
                os.close(self.lock_fd)
                self.lock_fd = None
        finally:
            signal.signal(signal.SIGINT, old)

    def leftovers(self):
        """The labs this lab's pktlabd made that are still there, and its socket."""
        from ..lab import leftovers
        from .labs import daemon_labs
        left = []
        if self.daemon_pid is not None:
            for st in daemon_labs(daemon_pid=self.daemon_pid, alive_only=False):
                left.append(f"lab {st.name}: {', '.join(leftovers(st.name)) or 'its state'}")
        if os.path.exists(self.solo.socket):
            left.append(self.solo.socket)
        return left

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
