"""`pktlab workshop up`: JupyterHub for N learners on this host, and pktlabd behind it.

    ws = Workshop(learners=3, port=8000)      # every check, nothing made yet (exit 2 on a bad one)
    with ws.start(say=print) as running:      # accounts, lessons, pktlabd, the hub: ready
        print(running.doc())                  # {"url", "learners": [{"user", "password"}]}
        running.wait()                        # until Ctrl-C, SIGTERM (`workshop down`) or a death

`up` stays in the foreground, like `make lab`: the hub and pktlabd are its children, started by
pktlab.lab.spawn (PR_SET_PDEATHSIG and a PID namespace of their own), so when `up` ends, however
it ends (Ctrl-C, `workshop down`'s SIGTERM, even SIGKILL), they end too, and with the hub's PID
namespace everything it started: the proxy, the learners' servers, their kernels and whatever
those started. Only one `up` runs per state directory: it holds an flock on up.lock for its
whole life (released by the kernel when it dies), and running.json says where it is.

The hub: JupyterHub (as root: it starts each learner's server as that learner) behind
configurable-http-proxy, with pktlab's own authenticator and spawner (hubside), TLS whenever it
listens beyond loopback (a self-signed certificate, or --ssl-cert/--ssl-key), an admin token for
pktlab's own REST calls (status, down) kept root-only in the state directory.

Limits on the learners' servers (hubside.PktlabSpawner: rlimits set before the uid changes,
inherited by their kernels and terminals) and a memory watchdog in `up` itself
(pktlab.workshop.memory: every learner's PSS summed every few seconds, their largest kernel
killed past --memory-cap); with identity="token" pktlabd knows learners by the hub's API token
(pktlab.workshop.identity) instead of their uid.
"""

import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

from .. import resources
from ..errors import EnvironmentProblem
from ..lab import spawn as spawning
from ..lab.state import start_time
from . import accounts, hubconf
from .accounts import MAX_LEARNERS, PREFIX, PREFIX_RE, Registry, write_private

HUB_READY_S = 90.0
DAEMON_READY_S = 30.0
HUB_STOP_S = 45.0


def running_workshop(paths):
    """running.json of the `up` that holds this state directory's lock, else None."""
    try:
        fd = os.open(paths.lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return paths.read_running() or {"pid": None, "url": "?"}
    finally:
        os.close(fd)
    return None


def _daemon_names():
    try:
        from .daemon import DEFAULT_SOCKET, SOCKET_ENV
    except ImportError:             # a pktlab without the daemon
        return "/run/pktlab/pktlabd.sock", "PKTLAB_SOCKET"
    return DEFAULT_SOCKET, SOCKET_ENV


def daemon_socket():
    """Where the learners' kernels find pktlabd: $PKTLAB_SOCKET (the client's variable: the
    hub passes it on to every learner's server), else the daemon's default."""
    default, env = _daemon_names()
    return os.environ.get(env) or default


def daemon_argv():
    """The command that runs pktlabd here, or None when this pktlab has no daemon."""
    exe = os.path.join(hubconf.bin_dir(), "pktlabd")
    if os.access(exe, os.X_OK):
        return [exe]
    import importlib.util
    try:
        if importlib.util.find_spec("pktlab.workshop.daemon") is not None:
            return [sys.executable, "-m", "pktlab.workshop.daemon"]
    except (ImportError, ValueError):
        pass
    return None


def daemon_status(path):
    """pktlabd's {"pid", "clients", "labs"} at `path`, or None when none answers."""
    if not os.path.exists(path):
        return None
    try:
        from .client import Client
        return Client(path).status()
    except Exception:           # not there, not answering, not this version: no daemon
        return None


class Workshop:
    """A workshop to start: the checks are made here, before anything exists."""

    def __init__(self, learners=3, port=hubconf.DEFAULT_PORT, ip="127.0.0.1", tls=False,
                 prefix=PREFIX, ssl_cert=None, ssl_key=None, paths=None, identity="uid",
                 memory_cap_mb=None):
        if os.geteuid() != 0:
            raise EnvironmentProblem("workshop up: needs root (it makes the learners' accounts "
                                     "and starts each learner's server as that learner); run "
                                     "it with sudo, e.g. `sudo .venv/bin/pktlab workshop up`")
        if not 1 <= learners <= MAX_LEARNERS:
            raise ValueError(f"workshop up: --learners {learners}: 1..{MAX_LEARNERS}")
        if not PREFIX_RE.match(prefix):
            raise ValueError(f"workshop up: --prefix {prefix!r}: a lower-case letter, then up "
                             "to 11 letters or digits, and an optional '-' (e.g. pkl-)")
        from .memory import DEFAULT_CAP_MB
        self.memory_cap_mb = DEFAULT_CAP_MB if memory_cap_mb is None else memory_cap_mb
        if not 64 <= self.memory_cap_mb <= 1 << 20:
            raise ValueError(f"workshop up: --memory-cap {self.memory_cap_mb}: 64..1048576 MB")
        if identity not in ("uid", "token"):
            raise ValueError(f"workshop up: --identity {identity!r}: uid or token")
        self.identity = identity
        if bool(ssl_cert) != bool(ssl_key):
            raise ValueError("workshop up: --ssl-cert and --ssl-key go together")
        for f in (ssl_cert, ssl_key):
            if f and not os.path.isfile(f):
                raise ValueError(f"workshop up: {f}: no such file")
        self.paths = paths or hubconf.Paths()
        self.n, self.ip, self.port, self.prefix = learners, hubconf.check_ip(ip), port, prefix
        self.tls = bool(tls or ssl_cert or not hubconf.is_loopback(ip))
        self.ssl = (os.path.abspath(ssl_cert), os.path.abspath(ssl_key)) if ssl_cert else None
        other = running_workshop(self.paths)
        if other:
            raise EnvironmentProblem(
                f"workshop up: a workshop is already running here (pid {other.get('pid')}, "
                f"{other.get('url')}): `pktlab workshop status` shows it, `pktlab workshop "
                "down` ends it")
        hubconf.check_port_free(self.ip, port)
        self.tools = hubconf.find_tools()
        self.names = accounts.names_for(prefix, learners)
        accounts.check_names(self.names, Registry.load(self.paths.root))
        self.socket = daemon_socket()
        live = daemon_status(self.socket)
        if live:
            raise EnvironmentProblem(
                f"workshop up: a pktlabd (pid {live.get('pid')}) already serves {self.socket}; "
                "stop it first (the workshop starts its own, for the learners' group)")
        hubconf.check_learners_view()

    def start(self, say=None):
        """Make everything; returns the Running workshop (a context manager: leaving it ends
        the hub and the daemon)."""
        run = Running(self, say or (lambda text: None))
        try:
            run.begin()
        except BaseException:
            run.close()
            raise
        return run


class Running:
    def __init__(self, ws, say):
        self.ws, self.say, self.paths = ws, say, ws.paths
        self.lock_fd = self.hub = self.daemon = None
        self.learners, self.passwords = [], {}
        self.hub_port = self.proxy_api_port = None
        self.token = None
        self.daemon_restarts = 0
        self.daemon_pids = []
        self.watchdog = None

    # starting --------------------------------------------------------------------------------
    def begin(self):
        p = self.paths
        p.make()
        self.lock_fd = os.open(p.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.lock_fd)
            self.lock_fd = None
            raise EnvironmentProblem("workshop up: another `workshop up` started just now") \
                from None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p.db)                 # the hub's database is this run's alone
        for d in hubconf.hide_private_dirs():
            self.say(f"{d}: closed to everyone but its owner (solutions and instructor notes "
                     "are out of the learners' reach)")
        self._accounts()
        self._settings()
        self._start_daemon()
        self._record()          # what `down` needs after a SIGKILL, from here on
        self._start_hub()
        self._record()
        from .memory import Watchdog
        self.watchdog = Watchdog([(lr.user, lr.uid) for lr in self.learners],
                                 self.ws.memory_cap_mb << 20, p.hub_log, p.memory, self.say)

    def _accounts(self):
        reg = Registry.load(self.paths.root)
        accounts.ensure_group(reg)
        lessons = resources.lessons_dir()
        hashes, creds = {}, []
        for name in self.ws.names:
            learner = accounts.create(name, reg)
            accounts.copy_lessons(learner, lessons)
            password = accounts.new_password()
            hashes[name] = accounts.hash_password(password)
            creds.append({"user": name, "password": password})
            self.learners.append(learner)
        write_private(self.paths.passwords, json.dumps(hashes, indent=2))
        write_private(self.paths.credentials, json.dumps(
            {"url": self.url, "learners": creds}, indent=2))
        self.passwords = {c["user"]: c["password"] for c in creds}

    @property
    def hub_api(self):
        return f"http://127.0.0.1:{self.hub_port}/hub/api"

    @property
    def scheme(self):
        return "https" if self.ws.tls else "http"

    @property
    def url(self):
        return f"{self.scheme}://{hubconf.public_host(self.ws.ip)}:{self.ws.port}/"

    @property
    def local_url(self):
        host = self.ws.ip if self.ws.ip not in ("0.0.0.0", "::") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{host}:{self.ws.port}/"

    def _settings(self):
        p, ws = self.paths, self.ws
        self.hub_port, self.proxy_api_port = hubconf.free_port(), hubconf.free_port()
        self.token = hubconf.new_token()
        write_private(p.token, self.token)
        if not os.path.exists(p.cookie):
            write_private(p.cookie, os.urandom(32).hex())
        cert = key = None
        if ws.tls:
            cert, key = ws.ssl or hubconf.tls_cert(p, ws.ip)
        env = {"PATH": f"{hubconf.bin_dir()}:/usr/local/bin:/usr/bin:/bin",
               "PKTLAB_PCAPS": resources.pcaps_dir(), _daemon_names()[1]: ws.socket}
        s = {"paths": p, "ip": ws.ip, "port": ws.port, "hub_port": self.hub_port,
             "proxy_api_port": self.proxy_api_port, "learners": ws.names,
             "singleuser": ws.tools["singleuser"], "chp": ws.tools["chp"], "environment": env,
             "proxy_token": hubconf.new_token(), "token": self.token, "ssl_cert": cert,
             "ssl_key": key, "rlimits": hubconf.SERVER_RLIMITS}
        write_private(p.config, hubconf.config_text(s))

    def _log(self, path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        os.write(fd, f"--- pktlab workshop up, {time.strftime('%F %T')}\n".encode())
        return fd

    def _start_daemon(self):
        argv = daemon_argv()
        if argv is None:
            self.say("pktlabd is not part of this pktlab yet: learners' kernels cannot open "
                     "labs (the hub runs without it)")
            return
        argv = argv + ["--socket", self.ws.socket, "--group", accounts.GROUP]
        if self.ws.identity == "token":          # the hub's API, on its own port (127.0.0.1)
            argv += ["--identity", "token", "--hub-api", self.hub_api]
        log = self._log(self.paths.daemon_log)
        try:
            # no PID namespace of its own: the labs it makes record its pid, which must be
            # the one the host sees (a lab whose owner is gone is stale); it dies with `up`
            # by PR_SET_PDEATHSIG, and ends its own workers
            self.daemon = spawning.spawn(argv, pid_namespace=False, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, cwd=self.paths.root)
        finally:
            os.close(log)
        deadline = time.monotonic() + DAEMON_READY_S
        while daemon_status(self.ws.socket) is None:
            if self.daemon.poll() is not None:
                raise EnvironmentProblem(f"workshop up: pktlabd ended at start (exit "
                                         f"{self.daemon.returncode}): "
                                         f"{_tail(self.paths.daemon_log)}")
            if time.monotonic() > deadline:
                raise EnvironmentProblem(f"workshop up: pktlabd did not answer on "
                                         f"{self.ws.socket} in {DAEMON_READY_S:g} s: "
                                         f"{_tail(self.paths.daemon_log)}")
            time.sleep(0.1)

    def _start_hub(self):
        log = self._log(self.paths.hub_log)
        try:
            self.hub = spawning.spawn([self.ws.tools["jupyterhub"], "-f", self.paths.config],
                                      stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      cwd=self.paths.root)
        finally:
            os.close(log)
        deadline = time.monotonic() + HUB_READY_S
        while True:
            if self.hub.poll() is not None:
                raise EnvironmentProblem(f"workshop up: JupyterHub ended at start (exit "
                                         f"{self.hub.returncode}): {_tail(self.paths.hub_log)}")
            if _get(self.local_url + "hub/api/", timeout=2) == 200:
                return
            if time.monotonic() > deadline:
                raise EnvironmentProblem(f"workshop up: JupyterHub did not answer at "
                                         f"{self.local_url} in {HUB_READY_S:g} s: "
                                         f"{_tail(self.paths.hub_log)}")
            time.sleep(0.2)

    def _record(self):
        rec = {"pid": os.getpid(), "start": start_time(os.getpid()), "url": self.url,
               "local_url": self.local_url,
               "hub_api": self.hub_api, "identity": self.ws.identity,
               "memory_cap": self.ws.memory_cap_mb << 20,
               "hub_port": self.hub_port, "proxy_api_port": self.proxy_api_port,
               "ip": self.ws.ip, "port": self.ws.port, "tls": self.ws.tls,
               "learners": self.ws.names, "socket": self.ws.socket, "group": accounts.GROUP,
               "started": time.time()}
        for name, proc in (("hub", self.hub), ("daemon", self.daemon)):
            if proc is not None:
                rec[f"{name}_pid"] = proc.pid
                rec[f"{name}_start"] = start_time(proc.pid)
        mine = [self.daemon.pid, start_time(self.daemon.pid)] if self.daemon else None
        if mine and mine not in self.daemon_pids:
            self.daemon_pids.append(mine)
        rec["daemon_pids"] = self.daemon_pids     # every pktlabd of this run: their labs
        write_private(self.paths.running, json.dumps(rec, indent=2))

    def doc(self):
        """{"url", "learners": [{"user", "password"}], ...} (add-only keys: credentials, tls,
        daemon, state_dir)."""
        return {"url": self.url,
                "learners": [{"user": u, "password": self.passwords[u]} for u in self.ws.names],
                "credentials": self.paths.credentials, "tls": self.ws.tls,
                "certificate": (self.ws.ssl or (self.paths.cert,))[0] if self.ws.tls else None,
                "daemon": {"socket": self.ws.socket,
                           "pid": self.daemon.pid if self.daemon else None},
                "state_dir": self.paths.root}

    # running ---------------------------------------------------------------------------------
    def wait(self):
        """Until the hub ends (returns its exit status) or a signal ends `up` (the
        KeyboardInterrupt of pktlab.cli.console goes through). pktlabd is started again when it
        dies (a few times, said on stderr)."""
        while True:
            fds = {os.pidfd_open(self.hub.pid): "hub"}
            if self.daemon is not None:
                fds[os.pidfd_open(self.daemon.pid)] = "daemon"
            try:
                ready, _, _ = select.select(list(fds), [], [], self._watch())
            finally:
                for fd in fds:
                    os.close(fd)
            which = {fds[fd] for fd in ready}
            if not which:
                continue
            if "hub" in which:
                self.hub.wait()
                self.say(f"JupyterHub ended (exit {self.hub.returncode}); its log: "
                         f"{self.paths.hub_log}")
                return 1
            self.daemon.wait()
            self.daemon_restarts += 1
            if self.daemon_restarts > 5:
                self.say(f"pktlabd ended {self.daemon_restarts} times; the workshop goes on "
                         f"without it (its log: {self.paths.daemon_log})")
                self.daemon = None
                continue
            self.say(f"pktlabd ended (exit {self.daemon.returncode}); starting it again")
            self._start_daemon()
            self._record()

    def _watch(self):
        """The memory watchdog's turn when due; how long until the next one."""
        if self.watchdog is None:
            return None
        if self.watchdog.due():
            self.watchdog.turn()
        return max(0.05, self.watchdog.next_at - time.monotonic())

    # ending ----------------------------------------------------------------------------------
    def close(self):
        """End the hub (it stops the learners' servers and the proxy; its PID namespace takes
        whatever is left) and pktlabd (it removes its labs). Safe twice."""
        if self.hub is not None:
            spawning.stop(self.hub, sig=signal.SIGTERM, timeout=HUB_STOP_S)
            self.hub = None
        if self.daemon is not None:
            spawning.stop(self.daemon, sig=signal.SIGTERM, timeout=30)
            self.daemon = None
            # stopped before it could tidy up (a Ctrl-C while it starts): this run's daemon
            # made them, on a path no other daemon served (checked before it started)
            remove_dead_socket(self.ws.socket)
        if self.lock_fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.paths.running)
            os.close(self.lock_fd)
            self.lock_fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def remove_dead_socket(path):
    """pktlabd's socket and its state directory (SOCKET.d), when no daemon answers there."""
    if daemon_status(path) is not None:
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    shutil.rmtree(path + ".d", ignore_errors=True)


def _tail(path, n=600):
    try:
        with open(path, errors="replace") as f:
            text = f.read()[-n:]
    except OSError:
        return "(no log)"
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())[-n:]


def _get(url, timeout=5.0, headers=None):
    """The HTTP status of GET url (no certificate check: a health check of our own hub on
    this host), or None when nothing answers."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, ValueError):
        return None
