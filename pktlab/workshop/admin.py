"""`pktlab workshop status` and `pktlab workshop down`, and a learner by name (for `reset`).

    status()          # {"learners": [{"user", "server", "labs", "memory"}], "daemon": {"pid",
                      #  "clients", "labs"}}: the hub's REST API (admin token), pktlabd's
                      #  status, each learner's processes' PSS (pktlab.workshop.memory)
    down(remove_learners=False)   # {"leftovers": [], "archives": [...], "removed": [...]}

`down` ends the `up` that runs (SIGTERM: it stops the hub, whose PID namespace takes the
proxy, the servers and the kernels, and pktlabd, which removes its labs), then makes sure:
anything of the run still alive is killed (recorded pids with their start times, so a recycled
pid is never hit; every process of a learner's uid), stale labs are removed, each learner's
home is archived (tar.gz, root-only) and, with remove_learners, the accounts go. What it then
finds still there is the leftovers list: processes, labs, the daemon's socket, listening ports,
accounts.
"""

import contextlib
import json
import os
import pwd
import signal
import socket
import time
import urllib.error
import urllib.request

from ..errors import EnvironmentProblem
from ..lab.state import list_labs, start_time
from . import accounts
from .accounts import Registry
from .hub import daemon_status, remove_dead_socket, running_workshop
from .hubconf import Paths

UP_STOP_S = 90.0


def _no_workshop(paths):
    return EnvironmentProblem(f"workshop: no workshop is running here ({paths.root}); "
                              "`sudo .venv/bin/pktlab workshop up` starts one")


def hub_api(rec, token, method, path, body=None, timeout=15):
    """(status, JSON) of a call to the hub's REST API (its own port on 127.0.0.1)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(rec["hub_api"] + path, data=data, method=method,
                                 headers={"Authorization": f"token {token}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, {"message": text.decode(errors="replace")[:300]}
    except OSError as e:
        raise EnvironmentProblem(f"workshop: the hub does not answer at {rec['hub_api']} "
                                 f"({getattr(e, 'reason', e)}); still starting, or ended: its "
                                 "log is jupyterhub.log in the state directory") from None


def read_token(paths):
    with open(paths.token) as f:
        return f.read().strip()


def _server_state(model):
    """running / starting / stopping / stopped, from a user model of the hub's API."""
    if model is None:
        return "unknown"
    srv = (model.get("servers") or {}).get("")
    if srv is None:
        return "starting" if model.get("pending") == "spawn" else "stopped"
    if srv.get("pending") == "spawn" or (srv.get("pending") is None and not srv.get("ready")):
        return "starting"
    if srv.get("pending") == "stop":
        return "stopping"
    return "running"


def labs_by_uid(daemon):
    """{uid: number of labs} from pktlabd's status (labs: a count, or a list of labs each
    naming its uid/user)."""
    labs = (daemon or {}).get("labs")
    out = {}
    if isinstance(labs, list):
        for lab in labs:
            if isinstance(lab, dict):
                key = lab.get("uid", lab.get("user"))
                out[key] = out.get(key, 0) + 1
    elif isinstance(labs, dict):
        for key, value in labs.items():
            out[key] = len(value) if isinstance(value, (list, dict)) else value
    return out


def status(paths=None):
    paths = paths or Paths()
    rec = running_workshop(paths)
    if not rec or "hub_api" not in rec:
        raise _no_workshop(paths)
    code, users = hub_api(rec, read_token(paths), "GET", "/users")
    if code != 200:
        raise EnvironmentProblem(f"workshop status: the hub answered {code} to GET /users: "
                                 f"{(users or {}).get('message', '')}")
    models = {u["name"]: u for u in users}
    daemon = daemon_status(rec["socket"])
    per = labs_by_uid(daemon)
    reg = Registry.load(paths.root)
    from . import memory
    found = {name: reg.learner(name) for name in rec["learners"]}
    used = memory.usage([(n, lr.uid) for n, lr in found.items() if lr is not None])
    watched = (memory.read_record(paths.memory) or {}).get("learners") or {}
    out = []
    for name in rec["learners"]:
        learner = found[name]
        uid = learner.uid if learner else None
        mem = dict(used.get(name) or {"bytes": None, "processes": 0},
                   cap=rec.get("memory_cap"), killed=(watched.get(name) or {}).get("killed", 0))
        out.append({"user": name, "server": _server_state(models.get(name)),
                    "labs": per.get(uid, per.get(name, per.get("hub:" + name, 0))),
                    "memory": mem,
                    "last_activity": (models.get(name) or {}).get("last_activity")})
    d = None
    if daemon is not None:
        labs = daemon.get("labs")
        d = {"pid": daemon.get("pid"), "clients": daemon.get("clients"),
             "labs": len(labs) if isinstance(labs, (list, dict)) else labs}
    return {"learners": out, "daemon": d, "url": rec["url"], "pid": rec["pid"]}


def learner(user, paths=None):
    """The learner `user` of this workshop; ValueError (exit 2) for anyone else."""
    paths = paths or Paths()
    reg = Registry.load(paths.root)
    found = reg.learner(user) if isinstance(user, str) else None
    if found is None:
        names = " ".join(reg.names()) or "none"
        raise ValueError(f"workshop: {user!r} is not a learner of this workshop "
                         f"(learners: {names})")
    return found


# down -------------------------------------------------------------------------------------------
def _alive(pid, start):
    """Is the process `pid` that started at `start` still running (a zombie is not: it has
    ended, and waits only for its parent to read its status)?"""
    if not pid or start is None or start_time(pid) != start:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _end_up(rec, paths):
    """SIGTERM to the running `up` (proven by its start time), then wait for its lock: it
    ends the hub and pktlabd on its way out. SIGKILL if it takes too long (its children die
    with it: PR_SET_PDEATHSIG)."""
    if _alive(rec.get("pid"), rec.get("start")):
        os.kill(rec["pid"], signal.SIGTERM)
    deadline = time.monotonic() + UP_STOP_S
    while running_workshop(paths):
        if time.monotonic() > deadline:
            if _alive(rec.get("pid"), rec.get("start")):
                os.kill(rec["pid"], signal.SIGKILL)
            deadline = time.monotonic() + 10
        time.sleep(0.1)
    # the lock goes at the end of its cleanup: the process itself a moment later
    deadline = time.monotonic() + 10
    while _alive(rec.get("pid"), rec.get("start")) and time.monotonic() < deadline:
        time.sleep(0.05)


def _kill_recorded(rec):
    """The hub and every pktlabd of the run, when still alive (an `up` killed mid-start)."""
    pids = [(rec.get("hub_pid"), rec.get("hub_start"))]
    pids += [tuple(p) for p in rec.get("daemon_pids", [])]
    for pid, start in pids:
        if _alive(pid, start):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _listening(port, host="127.0.0.1"):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _leftovers(rec, reg, learners, removed):
    left = []
    pids = [(rec.get("pid"), rec.get("start")), (rec.get("hub_pid"), rec.get("hub_start"))]
    pids += [tuple(p) for p in rec.get("daemon_pids", [])]
    left += [f"process {pid}" for pid, start in pids if _alive(pid, start)]
    for lr in learners:
        left += [f"process {pid} of {lr.user}: {cmd[:80]}"
                 for pid, cmd in accounts.processes_of(lr.uid)]
    ours = {p for p, _ in rec.get("daemon_pids", [])}
    for st in list_labs():
        if st.owner_pid in ours or (st.owner_pid > 0 and not st.owner_alive()):
            left.append(f"lab {st.name} (owner {st.owner_pid})")
    sock = rec.get("socket")
    if sock and os.path.exists(sock):
        left.append(f"socket {sock}")
    if sock and os.path.exists(sock + ".d"):
        left.append(f"pktlabd's state {sock}.d")
    for port in (rec.get("port"), rec.get("proxy_api_port"), rec.get("hub_port")):
        if port and _listening(port):
            left.append(f"port {port} still listening")
    for name in removed:
        try:
            pwd.getpwnam(name)
            left.append(f"account {name}")
        except KeyError:
            pass
    return left


def down(paths=None, remove_learners=False, say=None):
    say = say or (lambda text: None)
    paths = paths or Paths()
    if not os.path.isdir(paths.root):
        raise _no_workshop(paths)
    reg = Registry.load(paths.root)
    rec = running_workshop(paths)
    if rec:
        say(f"ending the workshop of `up` pid {rec.get('pid')}")
        _end_up(rec, paths)
    rec = rec or paths.read_running() or {}
    _kill_recorded(rec)
    learners = [lr for lr in (reg.learner(n) for n in reg.names()) if lr is not None]
    for lr in learners:
        accounts.kill_processes(lr.uid)
    from ..lab import clean_stale
    cleaned = clean_stale()
    if cleaned:
        say(f"removed labs left behind: {' '.join(cleaned)}")
    sock = rec.get("socket")
    if sock and rec.get("daemon_pids"):
        # the run's daemon is dead (a SIGKILLed `up` takes it along before it can tidy up):
        # its socket and its state directory (pktlabd's SOCKET.d) are the run's to remove
        remove_dead_socket(sock)
    archives = _archive_all(paths, learners, say)
    removed = []
    if remove_learners:
        for lr in learners:
            accounts.remove(lr, reg)
            removed.append(lr.user)
        if accounts.remove_group(reg):
            say(f"removed the group {accounts.GROUP}")
    left = _leftovers(rec, reg, [] if remove_learners else learners, removed)
    if not left:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(paths.running)
    return {"leftovers": left, "archives": archives, "removed": removed,
            "learners": [lr.user for lr in learners]}


def _archive_all(paths, learners, say):
    if not learners:
        return []
    stamp = time.strftime("%Y-%m-%dT%H%M%S")
    folder = os.path.join(paths.archives, stamp)
    n = 2
    while os.path.exists(folder):
        folder = os.path.join(paths.archives, f"{stamp}-{n}")
        n += 1
    os.makedirs(folder, mode=0o700)
    os.chmod(paths.archives, 0o700)
    out = []
    for lr in learners:
        if not os.path.isdir(lr.home):
            continue
        out.append(accounts.archive(lr, os.path.join(folder, f"{lr.user}.tar.gz")))
    say(f"each learner's work: {folder}/USER.tar.gz (root only)")
    return out
