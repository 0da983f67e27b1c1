"""A workshop's files and the checks made before anything exists: the state directory, the
tools, the port, the learners' view of the checkout, TLS, and jupyterhub_config.py.

The state directory (root-only, 0700; $PKTLAB_WORKSHOP_DIR, else /var/lib/pktlab/workshop)
keeps everything a workshop has that a learner must not read: the credentials (credentials.json,
0600: the passwords as generated), the hashes the hub checks (passwords.json), the hub's admin
token (admin-token: `workshop status` and `down` call the hub's REST API with it), the proxy's
token, the cookie secret, the TLS key, the hub's database and log, the learners' registry
(learners.json) and, after `down`, the archives of their work (archives/<stamp>/USER.tar.gz).
"""

import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys

from .. import resources
from ..errors import EnvironmentProblem
from .accounts import write_private

STATE_ENV = "PKTLAB_WORKSHOP_DIR"
DEFAULT_STATE = "/var/lib/pktlab/workshop"
CHP_ENV = "PKTLAB_CHP"
SERVICE = "pktlab-workshop"
#: the rlimits each learner's server gets (hubside.PktlabSpawner; its kernels and terminals
#: inherit them): processes and threads of the learner's uid, open files and the largest file
#: a process may write (per process), and no core dumps. RLIMIT_AS is not set: measured here
#: (tests/test_workshop_limits.py), a learner's server maps 0.38-0.51 GB of address space
#: (VmPeak; 135 MB resident) and a fresh kernel 0.81-0.88 GB before it runs anything (51 MB
#: resident), so a bound they survive is near 1 GB per process, and it is per process: a
#: learner's several kernels would each have it. The memory watchdog (pktlab.workshop.memory)
#: holds a learner's total instead
SERVER_RLIMITS = {"nproc_limit": 768, "nofile_limit": 4096, "fsize_limit": 2 << 30}
DEFAULT_PORT = 8000


class Paths:
    """Where one workshop's files are."""

    def __init__(self, root=None):
        self.root = os.path.abspath(root or os.environ.get(STATE_ENV) or DEFAULT_STATE)
        j = lambda *p: os.path.join(self.root, *p)  # noqa: E731
        self.config = j("jupyterhub_config.py")
        self.db = j("jupyterhub.sqlite")
        self.cookie = j("jupyterhub_cookie_secret")
        self.hub_log = j("jupyterhub.log")
        self.daemon_log = j("pktlabd.log")
        self.cert, self.key = j("tls", "cert.pem"), j("tls", "key.pem")
        self.passwords = j("passwords.json")
        self.credentials = j("credentials.json")
        self.token = j("admin-token")
        self.running = j("running.json")
        self.lock = j("up.lock")
        self.archives = j("archives")
        self.memory = j("memory.json")         # the memory watchdog's last turn (status)

    def make(self):
        """The state directory, root-only (made or put back to 0700)."""
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        os.chmod(self.root, 0o700)
        os.makedirs(os.path.dirname(self.cert), mode=0o700, exist_ok=True)

    def read_running(self):
        try:
            with open(self.running) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None


# tools ------------------------------------------------------------------------------------------
def bin_dir():
    """The venv's bin (jupyterhub, jupyterhub-singleuser, pktlabd): next to this Python."""
    return os.path.dirname(sys.executable)


def find_tools():
    """{"jupyterhub", "singleuser", "chp"}: the programs a workshop runs, or why not."""
    fix = "run scripts/setup.sh (`make workshop` does), which installs both"
    hub = os.path.join(bin_dir(), "jupyterhub")
    single = os.path.join(bin_dir(), "jupyterhub-singleuser")
    if not (os.access(hub, os.X_OK) and os.access(single, os.X_OK)):
        raise EnvironmentProblem(f"workshop up: JupyterHub is not installed in {bin_dir()} "
                                 f"(the `jupyterhub` package); {fix}")
    chp = os.environ.get(CHP_ENV) or os.path.join(resources.PACKAGE_PARENT, ".node",
                                                  "node_modules", ".bin",
                                                  "configurable-http-proxy")
    if not os.access(chp, os.X_OK):
        chp = shutil.which("configurable-http-proxy")
    if not chp:
        raise EnvironmentProblem("workshop up: configurable-http-proxy (npm) is not installed "
                                 f"in {resources.PACKAGE_PARENT}/.node nor on PATH; {fix}")
    if not shutil.which("node"):
        raise EnvironmentProblem(f"workshop up: node is not installed (configurable-http-proxy "
                                 f"runs on it); {fix}")
    return {"jupyterhub": hub, "singleuser": single, "chp": chp}


# the address ------------------------------------------------------------------------------------
def is_loopback(ip):
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def check_ip(ip):
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise ValueError(f"workshop up: --ip {ip!r} is not an IP address (127.0.0.1 for this "
                         "machine only, 0.0.0.0 for every interface)") from None
    return ip


def check_port_free(ip, port):
    """Refuse a port something listens on already (SO_REUSEADDR: TIME_WAIT is no owner)."""
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
        except OSError as e:
            raise ValueError(f"workshop up: port {port} on {ip} is in use ({e.strerror}); "
                             "pick another with --port") from None


def free_port():
    """A port nothing listens on, for the hub's and the proxy's own APIs (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def public_host(ip):
    """What learners type: the address itself, or for a wildcard the host's first global
    address (else its name)."""
    if ip not in ("0.0.0.0", "::"):
        return f"[{ip}]" if ":" in ip else ip
    try:
        out = subprocess.run(["ip", "-j", "-4", "addr", "show", "scope", "global"],
                             capture_output=True, text=True, timeout=5).stdout
        for link in json.loads(out or "[]"):
            for a in link.get("addr_info", []):
                return a["local"]
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    return socket.getfqdn()


# what learners can see of the checkout ------------------------------------------------------------
PRIVATE_DIRS = ("solutions", "instructor")

_PROBE = r"""
import json, os, sys
out = {"uid": os.getuid()}
try:
    import jupyterhub, pktlab.resources as r
    open(os.path.join(r.lessons_dir(), sys.argv[1])).close()
    out["ok"] = True
except Exception as e:
    out["ok"] = False
    out["why"] = f"{type(e).__name__}: {e}"
out["readable"] = [d for d in sys.argv[2:] if os.access(d, os.R_OK | os.X_OK)]
print(json.dumps(out))
"""


def learners_view(uid=65534, gid=65534, groups=()):
    """What an account with no privileges sees, asked as one (nobody's uid, before any learner
    exists; `make lab`: its user, with their groups): {"ok", "why", "readable": [the private
    dirs it could open]}."""
    lessons = resources.lessons_dir()
    first = sorted(n for n in os.listdir(lessons) if n.endswith(".ipynb"))[0]
    private = [os.path.join(lessons, d) for d in PRIVATE_DIRS
               if os.path.isdir(os.path.join(lessons, d))]
    r = subprocess.run([sys.executable, "-I", "-c", _PROBE, first, *private], user=uid,
                       group=gid, extra_groups=list(groups), cwd="/", capture_output=True, text=True,
                       timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"ok": False, "why": (r.stderr or "no answer").strip()[-300:], "readable": []}


def check_learners_view():
    """Learners' servers run the venv's Python on the checkout: refuse a checkout they cannot
    read (a clone in a 0700 home), before anything is made."""
    view = learners_view()
    if not view.get("ok"):
        raise EnvironmentProblem(
            f"workshop up: an unprivileged account cannot run {sys.executable} on "
            f"{resources.PACKAGE_PARENT} ({view.get('why')}); learners' servers would not "
            "start: put the checkout where every user can read it (e.g. /opt/pktlab; a home "
            "directory is often 0700) and run scripts/setup.sh there")
    return view


def hide_private_dirs():
    """notebooks/solutions and notebooks/instructor of the checkout, closed to everyone but
    their owner (group and others lose every bit: git keeps no directory modes, so the
    checkout is unchanged for git). Returns the dirs changed; checked again as nobody."""
    lessons = resources.lessons_dir()
    changed = []
    for d in PRIVATE_DIRS:
        path = os.path.join(lessons, d)
        if not os.path.isdir(path) or os.path.islink(path):
            continue
        mode = os.stat(path).st_mode & 0o7777
        if mode & 0o077:
            os.chmod(path, mode & ~0o077)
            changed.append(path)
    left = learners_view().get("readable", [])
    if left:
        raise EnvironmentProblem(f"workshop up: {', '.join(left)} can still be read by an "
                                 "unprivileged account (an ACL?); make it root-only first")
    return changed


# secrets and TLS ----------------------------------------------------------------------------------
def new_token():
    return secrets.token_hex(32)


def tls_cert(paths, ip):
    """A self-signed certificate for the hub (openssl), kept while it is valid for a day more
    and names the same host. Returns (cert, key)."""
    names = sorted({"localhost", socket.gethostname(), socket.getfqdn()})
    ips = sorted({"127.0.0.1", "::1"} | ({ip} if ip not in ("0.0.0.0", "::") else set()) |
                 ({public_host(ip)} if ip in ("0.0.0.0", "::") else set()))
    ips = [a for a in ips if _is_ip(a)]
    san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{a}" for a in ips])
    marker = paths.cert + ".san"
    if os.path.exists(paths.cert) and os.path.exists(paths.key) and \
            _read(marker) == san and subprocess.run(
                ["openssl", "x509", "-checkend", "86400", "-noout", "-in", paths.cert],
                capture_output=True).returncode == 0:
        return paths.cert, paths.key
    if not shutil.which("openssl"):
        raise EnvironmentProblem("workshop up: TLS needs openssl (apt-get install openssl) or "
                                 "a certificate of your own (--ssl-cert, --ssl-key)")
    old = os.umask(0o077)
    try:
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-days", "30", "-subj", "/CN=pktlab workshop",
                            "-addext", f"subjectAltName={san}",
                            "-keyout", paths.key, "-out", paths.cert],
                           capture_output=True, text=True, timeout=60)
    finally:
        os.umask(old)
    if r.returncode != 0:
        raise EnvironmentProblem(f"workshop up: openssl could not make a certificate: "
                                 f"{r.stderr.strip()[-300:]}")
    os.chmod(paths.key, 0o600)
    write_private(marker, san)
    return paths.cert, paths.key


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


# jupyterhub_config.py ---------------------------------------------------------------------------
def config_text(s):
    """The hub's configuration from the settings dict `s` (see hub.Workshop.settings)."""
    p = s["paths"]
    lines = [
        "# Written by `pktlab workshop up` at every start (edits here are lost).",
        "c = get_config()  # noqa: F821",
        f"c.JupyterHub.ip = {s['ip']!r}",
        f"c.JupyterHub.port = {s['port']!r}",
        "c.JupyterHub.hub_ip = '127.0.0.1'",
        f"c.JupyterHub.hub_port = {s['hub_port']!r}",
        f"c.JupyterHub.db_url = {'sqlite:///' + p.db!r}",
        f"c.JupyterHub.cookie_secret_file = {p.cookie!r}",
        f"c.JupyterHub.pid_file = {os.path.join(p.root, 'jupyterhub.pid')!r}",
        "c.JupyterHub.cleanup_servers = True",
        "c.JupyterHub.cleanup_proxy = True",
        "c.JupyterHub.authenticator_class = 'pktlab.workshop.hubside.PktlabAuthenticator'",
        f"c.PktlabAuthenticator.password_file = {p.passwords!r}",
        f"c.Authenticator.allowed_users = {set(s['learners'])!r}",
        "c.Authenticator.admin_users = set()",
        "c.JupyterHub.spawner_class = 'pktlab.workshop.hubside.PktlabSpawner'",
        f"c.Spawner.cmd = [{s['singleuser']!r}]",
        "c.Spawner.notebook_dir = '~/lessons'",
        "c.Spawner.default_url = '/lab'",
        # kernels on Unix sockets in the learner's own 0700 runtime dir, not on TCP ports of
        # 127.0.0.1 that every other learner can reach (their messages are signed, but why
        # let them knock)
        "c.Spawner.args = ['--KernelManager.transport=ipc']",
        "c.Spawner.start_timeout = 180",
        "c.Spawner.http_timeout = 180",
        f"c.Spawner.environment = {s['environment']!r}",
        f"c.ConfigurableHTTPProxy.command = [{s['chp']!r}]",
        f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{s['proxy_api_port']}'",
        f"c.ConfigurableHTTPProxy.auth_token = {s['proxy_token']!r}",
        f"c.ConfigurableHTTPProxy.pid_file = {os.path.join(p.root, 'proxy.pid')!r}",
        f"c.JupyterHub.services = [{{'name': {SERVICE!r}, 'api_token': {s['token']!r}}}]",
        "c.JupyterHub.load_roles = [{'name': 'pktlab-workshop', 'services': "
        f"[{SERVICE!r}], 'scopes': ['list:users', 'read:users', 'admin:users', "
        "'admin:servers', 'access:servers', 'tokens']}]",
    ]
    for trait, value in sorted((s.get("rlimits") or {}).items()):
        lines.append(f"c.PktlabSpawner.{trait} = {int(value)!r}")
    if s.get("ssl_cert"):
        lines += [f"c.JupyterHub.ssl_cert = {s['ssl_cert']!r}",
                  f"c.JupyterHub.ssl_key = {s['ssl_key']!r}"]
    return "\n".join(lines) + "\n"
