"""`pktlab workshop up|status|reset|down`, for real: JupyterHub on 127.0.0.1 and a free port,
real learner accounts, real single-user servers started through the hub's REST API, a lesson's
cells run in a learner's kernel over the kernel websocket, pktlabd behind it all.

Each refusal stands next to its control: the wrong password next to the right one, another
learner's home next to one's own, the solutions next to a lesson, a reset planted with a
symbolic link next to one that works. The accounts are named pkt<random>-N, the state directory
and the daemon's socket are the test's own, so a real workshop on this machine is not touched.
"""

import grp
import json
import os
import pwd
import secrets
import select
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import time

import pytest
import requests

from conftest import REPO, require_root
from kernelws import execute

PKTLAB = os.path.join(REPO, ".venv", "bin", "pktlab")
NOTEBOOKS = os.path.join(REPO, "notebooks")
LESSON = "01-casting-headers.ipynb"
UP_READY_S = 150


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(state, sock):
    env = dict(os.environ, PKTLAB_WORKSHOP_DIR=state, PKTLAB_SOCKET=sock)
    env.pop("PKTLAB_WORKDIR", None)
    return env


def _pktlab(env, *args, timeout=180, **kw):
    return subprocess.run([PKTLAB, "workshop", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, **kw)


class Up:
    """A `pktlab workshop up` subprocess: its document once it answers."""

    def __init__(self, tmp, learners, prefix=None, extra=()):
        self.prefix = prefix or f"pkt{secrets.token_hex(2)}-"
        self.state = str(tmp / "state")
        self.sock = f"/run/pktlab/wstest-{secrets.token_hex(4)}.sock"
        self.env = _env(self.state, self.sock)
        self.port = _free_port()
        self.names = [f"{self.prefix}{i}" for i in range(1, learners + 1)]
        self.err = open(tmp / "up.err", "w+")
        self.down_done = False
        self.learner_lab = None
        self.proc = subprocess.Popen(
            [PKTLAB, "workshop", "up", "--learners", str(learners), "--port", str(self.port),
             "--prefix", self.prefix, "--json", *extra], env=self.env, stdout=subprocess.PIPE,
            stderr=self.err)
        try:
            self.doc = self._read_doc()
        except BaseException:
            self.finish()        # whatever `up` made before it failed
            raise
        self.token = open(os.path.join(self.state, "admin-token")).read().strip()
        self.url = self.doc["url"]
        self.verify = self.doc["certificate"] or True    # TLS: our own certificate, checked

    def _read_doc(self):
        buf, deadline = b"", time.monotonic() + UP_READY_S
        fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            chunk = os.read(fd, 65536) if ready else None
            if chunk:
                buf += chunk
                try:
                    return json.loads(buf)
                except ValueError:
                    pass
            elif chunk == b"" or self.proc.poll() is not None:
                break
        self.err.seek(0)
        raise AssertionError(f"workshop up gave no document (exit {self.proc.poll()}): "
                             f"{buf!r} {self.err.read()[-2000:]}")

    def api(self, method, path, **kw):
        return requests.request(method, self.url + "hub/api" + path,
                                headers={"Authorization": f"token {self.token}"}, timeout=30,
                                verify=self.verify, **kw)

    def down(self, *extra):
        r = _pktlab(self.env, "down", "--json", *extra)
        self.down_done = True
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return r

    def finish(self):
        if not self.down_done:
            self.down("--remove-learners")
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for name in self.names:       # whatever a failed test left: never another's account
            try:
                pw = pwd.getpwnam(name)
            except KeyError:
                continue
            if pw.pw_gecos.startswith("pktlab workshop learner"):
                subprocess.run(["pkill", "-KILL", "-u", str(pw.pw_uid)])
                subprocess.run(["userdel", "--remove", name], capture_output=True)


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    require_root()
    # as a fresh clone has them (an earlier `up` closed them): `up` must close them itself
    for d in ("solutions", "instructor"):
        if os.path.isdir(os.path.join(NOTEBOOKS, d)):
            os.chmod(os.path.join(NOTEBOOKS, d), 0o755)
    u = Up(tmp_path_factory.mktemp("workshop"), 3)
    try:
        yield u
    finally:
        u.finish()


def _wait_ready(up, names, timeout=150):
    deadline, ready = time.monotonic() + timeout, set()
    while time.monotonic() < deadline and ready != set(names):
        for name in set(names) - ready:
            srv = (up.api("GET", f"/users/{name}").json().get("servers") or {}).get("")
            if srv and srv.get("ready"):
                ready.add(name)
        time.sleep(0.5)
    assert ready == set(names), f"servers not ready in {timeout} s: {set(names) - ready}"


def _proc_status(mark):
    """(pid, command line, /proc/PID/status fields) of each process whose command line holds
    `mark`."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
            status = open(f"/proc/{pid}/status").read()
        except OSError:
            continue
        if mark in cmd:
            out.append((int(pid), cmd, dict(line.split(":", 1) for line in status.splitlines()
                                            if ":" in line)))
    return out


def _server_processes(uid):
    out = []
    for pid, cmd, fields in _proc_status("jupyterhub-singleuser"):
        if "python" not in cmd:
            continue
        uids = [int(x) for x in fields["Uid"].split()]
        groups = [int(x) for x in fields["Groups"].split()]
        if uid in uids or 0 in uids:
            out.append({"pid": pid, "uids": uids, "groups": groups,
                        "gids": [int(x) for x in fields["Gid"].split()]})
    return out


# the kernel, over the server's websocket ------------------------------------------------------
def _execute(up, user, kernel_id, code, timeout=120):
    """Run `code` in a learner's kernel: (stdout text, error or None)."""
    return execute(f"ws://127.0.0.1:{up.port}/user/{user}/api/kernels/{kernel_id}/channels",
                   up.token, code, timeout=timeout)


def _start_kernel(up, user):
    r = requests.post(f"{up.url}user/{user}/api/kernels", json={"name": "python3"},
                      headers={"Authorization": f"token {up.token}"}, timeout=60)
    assert r.status_code == 201, r.text
    return r.json()["id"]


# bad input: one line, exit 2, nothing made -------------------------------------------------------
@pytest.mark.parametrize("args, says", [
    (["--learners", "0"], "1..200"),
    (["--learners", "201"], "1..200"),
    (["--learners", "2", "--prefix", "Bad Name"], "--prefix"),
    (["--learners", "2", "--ip", "not-an-ip"], "not an IP address"),
])
def test_bad_input_exit_2_nothing_made(tmp_path, args, says):
    require_root()
    env = _env(str(tmp_path / "state"), "/run/pktlab/wstest-none.sock")
    r = _pktlab(env, "up", *args, timeout=60)
    assert r.returncode == 2 and says in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert r.stdout == "" and not os.path.exists(tmp_path / "state")


def test_port_in_use_and_not_root_refused(tmp_path):
    require_root()
    env = _env(str(tmp_path / "state"), "/run/pktlab/wstest-none.sock")
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = held.getsockname()[1]
        r = _pktlab(env, "up", "--learners", "1", "--port", str(busy), "--prefix", "pktzz-")
    assert r.returncode == 2 and "in use" in r.stderr and len(r.stderr.splitlines()) == 1
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", PKTLAB,
                        "workshop", "up", "--learners", "1", "--prefix", "pktzz-"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "needs root" in r.stderr and len(r.stderr.splitlines()) == 1
    assert not os.path.exists(tmp_path / "state")
    with pytest.raises(KeyError):
        pwd.getpwnam("pktzz-1")


# the running workshop ---------------------------------------------------------------------------
def test_up_document_accounts_and_secrets(up):
    doc = up.doc
    assert doc["url"] == f"http://127.0.0.1:{up.port}/" and doc["tls"] is False
    assert [lr["user"] for lr in doc["learners"]] == up.names
    assert len({lr["password"] for lr in doc["learners"]}) == 3
    st = os.stat(doc["credentials"])
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    assert json.load(open(doc["credentials"]))["learners"] == doc["learners"]
    assert stat.S_IMODE(os.stat(up.state).st_mode) == 0o700
    for name in ("admin-token", "passwords.json", "jupyterhub_config.py"):
        assert stat.S_IMODE(os.stat(os.path.join(up.state, name)).st_mode) == 0o600
    shadow = {line.split(":")[0]: line.split(":")[1] for line in open("/etc/shadow")}
    for name in up.names:
        pw = pwd.getpwnam(name)
        assert pw.pw_uid != 0 and stat.S_IMODE(os.stat(pw.pw_dir).st_mode) == 0o700
        assert shadow[name].startswith("!"), "a learner account has a system password"
        groups = {g.gr_name for g in grp.getgrall() if name in g.gr_mem}
        assert groups == {"pktlab-learners"}, groups      # no sudo, adm, wheel, docker...
        lessons = sorted(os.listdir(os.path.join(pw.pw_dir, "lessons")))
        assert lessons == sorted(n for n in os.listdir(NOTEBOOKS) if n.endswith(".ipynb"))
        assert os.stat(os.path.join(pw.pw_dir, "lessons", LESSON)).st_uid == pw.pw_uid
    # the learners' group reaches the daemon's socket, others do not
    st = os.stat(up.sock)
    assert stat.S_IMODE(st.st_mode) == 0o660 and grp.getgrgid(st.st_gid).gr_name == \
        "pktlab-learners"
    # a second `up` while this one runs
    r = _pktlab(up.env, "up", "--learners", "1", "--port", str(_free_port()), "--prefix",
                up.prefix)
    assert r.returncode == 2 and "already running" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_login_form_password_checked(up):
    first, second = up.doc["learners"][:2]

    def login(user, password):
        s = requests.Session()
        s.get(up.url + "hub/login", timeout=30)
        return s.post(up.url + "hub/login", allow_redirects=False, timeout=30,
                      data={"username": user, "password": password,
                            "_xsrf": s.cookies.get("_xsrf")})
    assert login(first["user"], first["password"]).status_code == 302          # control
    assert login(first["user"], first["password"] + "x").status_code == 403
    assert login(second["user"], first["password"]).status_code == 403
    assert login("root", first["password"]).status_code == 403


def _start_servers(up, names):
    """Each learner's server through the hub's REST API (one already running is kept)."""
    for name in names:
        r = up.api("POST", f"/users/{name}/server")
        assert r.status_code in (201, 202, 400), r.text     # 400: it runs already
    _wait_ready(up, names)


def test_servers_run_as_their_learners(up):
    _start_servers(up, up.names)
    for name in up.names:
        pw = pwd.getpwnam(name)
        procs = _server_processes(pw.pw_uid)
        assert len(procs) == 1, procs
        p = procs[0]
        assert p["uids"] == [pw.pw_uid] * 4 and p["gids"] == [pw.pw_gid] * 4, p
        learners_gid = grp.getgrnam("pktlab-learners").gr_gid
        assert sorted(p["groups"]) == sorted({pw.pw_gid, learners_gid}), p
    # no server of the hub runs as root
    assert not [p for p in _server_processes(0) if 0 in p["uids"]]


def test_lesson_cells_in_a_learners_kernel_and_what_they_cannot_read(up):
    me, other = up.names[0], up.names[1]
    pw, pw_other = pwd.getpwnam(me), pwd.getpwnam(other)
    _start_servers(up, [me])
    kid = _start_kernel(up, me)
    nb = json.load(open(os.path.join(pw.pw_dir, "lessons", LESSON)))
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"][:3]
    for code in cells:                # the lesson's first cells, as the learner runs them
        out, error = _execute(up, me, kid, code)
        assert error is None, (code, error)
    out, error = _execute(up, me, kid, "len(frame)")
    assert error is None and int(out.strip()) > 54
    other_lesson = os.path.join(pw_other.pw_dir, "lessons", LESSON)
    probe = f"""
import json, os, subprocess, shutil
def tryit(fn):
    try:
        fn(); return "ok"
    except PermissionError: return "denied"
    except FileNotFoundError: return "missing"
r = {{"uid": os.getuid(), "euid": os.geteuid(),
     "own_lesson": tryit(lambda: open({os.path.join(pw.pw_dir, 'lessons', LESSON)!r}).read()),
     "other_home": tryit(lambda: os.listdir({pw_other.pw_dir!r})),
     "other_lesson": tryit(lambda: open({other_lesson!r}).read()),
     "solutions": tryit(lambda: os.listdir({os.path.join(NOTEBOOKS, 'solutions')!r})),
     "instructor": tryit(lambda: os.listdir({os.path.join(NOTEBOOKS, 'instructor')!r})),
     "lesson_shipped": tryit(lambda: open({os.path.join(NOTEBOOKS, LESSON)!r}).read()),
     "credentials": tryit(lambda: open({up.doc['credentials']!r}).read()),
     "state": tryit(lambda: os.listdir({up.state!r})),
     "shadow": tryit(lambda: open("/etc/shadow").read())}}
from ipykernel.connect import get_connection_file
r["transport"] = json.load(open(get_connection_file()))["transport"]
if shutil.which("sudo"):
    r["sudo"] = subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode
print(json.dumps(r))
"""
    out, error = _execute(up, me, kid, probe)
    assert error is None, error
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["uid"] == seen["euid"] == pw.pw_uid
    assert seen["own_lesson"] == "ok" and seen["lesson_shipped"] == "ok"        # controls
    for what in ("other_home", "other_lesson", "solutions", "credentials", "state", "shadow"):
        assert seen[what] == "denied", (what, seen)
    if os.path.isdir(os.path.join(NOTEBOOKS, "instructor")):
        assert seen["instructor"] == "denied", seen
    assert seen.get("sudo", 1) != 0
    assert seen["transport"] == "ipc"      # no kernel port on 127.0.0.1 for others to reach
    # the kernel work through pktlabd, from the learner's kernel (the socket the hub passed
    # on): a lab of the learner's own, a capture replayed into it
    out, error = _execute(up, me, kid, """
import json, os
from pktlab.workshop.client import Client
_c = Client()
_lab = _c.open_lab(["xdp", "tc-ingress"])
with open(os.path.join(os.environ["PKTLAB_PCAPS"], "tcp-http.pcap"), "rb") as f:
    _doc = _c.replay(f.read(), label="tcp-http.pcap", lab=_lab["lab"])
print(json.dumps({"lab": _lab["lab"], "hooks": _doc["hooks"], "packets": _doc["packets"]}))
""", timeout=300)
    assert error is None, error
    done = json.loads(out.strip().splitlines()[-1])
    assert done["packets"] > 0 and set(done["hooks"]) == {"xdp", "tc-ingress"}, done
    for hook, counts in done["hooks"].items():
        assert counts["disagree"] == 0 and counts["lost"] == 0 and counts["seen"] > 0, done
    up.learner_lab = done["lab"]
    # root reads them all (the refusals above are the learner's, not missing files)
    for path in (os.path.join(NOTEBOOKS, "solutions"), pw_other.pw_dir):
        assert os.listdir(path)


def test_status_document(up):
    _start_servers(up, up.names)
    r = _pktlab(up.env, "status", "--json", timeout=60)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [lr["user"] for lr in doc["learners"]] == up.names
    for lr in doc["learners"]:
        assert set(lr) >= {"user", "server", "labs"} and lr["server"] == "running", lr
    labs = {lr["user"]: lr["labs"] for lr in doc["learners"]}
    mine = 1 if up.learner_lab else 0          # the kernel test's lab, when it ran
    assert labs == {up.names[0]: mine, up.names[1]: 0, up.names[2]: 0}, labs
    assert set(doc["daemon"]) >= {"pid", "clients", "labs"}
    assert doc["daemon"]["pid"] == up.doc["daemon"]["pid"] or doc["daemon"]["pid"] > 0


def test_reset_as_the_learner(up, tmp_path):
    name = up.names[1]
    pw = pwd.getpwnam(name)
    mine = os.path.join(pw.pw_dir, "lessons", LESSON)
    subprocess.run(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                    "--clear-groups", "sh", "-c", f"echo changed > {mine}"], check=True)
    r = _pktlab(up.env, "reset", name, "01", "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["reset"] == [LESSON] and doc["user"] == name
    assert open(mine, "rb").read() == open(os.path.join(NOTEBOOKS, LESSON), "rb").read()
    kept = os.path.join(doc["backup"], LESSON)
    assert open(kept).read() == "changed\n" and os.stat(kept).st_uid == pw.pw_uid
    assert os.stat(mine).st_uid == pw.pw_uid
    # refused: someone who is not a learner here, a lesson that does not exist
    for args, says in ((["root", "01"], "not a learner"), ((name, "77"), "no lesson 77")):
        r = _pktlab(up.env, "reset", *args, timeout=60)
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.splitlines()) == 1


def test_reset_follows_no_link_a_learner_planted(up, tmp_path):
    """The learner plants reset's temporary name as a link to a root-only file: the reset runs
    as the learner, so the file stays as it was (as root it would be overwritten: the control,
    on a file of the test's own)."""
    name = up.names[2]
    pw = pwd.getpwnam(name)
    target = tmp_path / "root-only.txt"
    target.write_text("root's\n")
    os.chmod(target, 0o644)
    lessons = os.path.join(pw.pw_dir, "lessons")
    mine = os.path.join(lessons, LESSON)
    link = os.path.join(lessons, f".{LESSON}.pktlab-reset")
    as_learner = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
    subprocess.run(as_learner + ["sh", "-c", f"echo mine > {mine}; ln -s {target} {link}"],
                   check=True)
    r = _pktlab(up.env, "reset", name, "01", timeout=120)
    assert r.returncode == 2 and "Permission denied" in r.stderr, r.stderr
    assert target.read_text() == "root's\n"
    # `pktlab lessons reset` run by root on that directory works as its owner too: the link
    # (planted again if the refused reset took it away) is not written through either
    replant = as_learner + ["sh", "-c", f"[ -L {link} ] || ln -s {target} {link}"]
    subprocess.run(replant, check=True)
    r = subprocess.run([PKTLAB, "lessons", "reset", "01", "--workdir", lessons],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and target.read_text() == "root's\n", r.stderr
    # control: the same reset done in root's own name (no change of owner) writes through it
    subprocess.run(replant, check=True)
    code = ("import sys; from pktlab.lessons import reset as R; "
            "R._reset(['01'], R.shipped_lessons(), R.resources.lessons_dir(), sys.argv[1], None)")
    subprocess.run([sys.executable, "-c", code, lessons], capture_output=True, text=True,
                   timeout=120)
    assert target.read_text() != "root's\n"


def test_down_leaves_nothing(up):
    uids = {name: pwd.getpwnam(name).pw_uid for name in up.names}
    r = up.down("--remove-learners")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["leftovers"] == [] and sorted(doc["removed"]) == sorted(up.names)
    assert up.proc.poll() is not None
    for name, uid in uids.items():
        with pytest.raises(KeyError):
            pwd.getpwnam(name)
        assert not os.path.exists(f"/home/{name}")
        assert not [p for p in _server_processes(uid)]
    assert len(doc["archives"]) == 3
    for path in doc["archives"]:
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
        with tarfile.open(path) as t:
            assert f"./lessons/{LESSON}" in t.getnames()
    assert not os.path.exists(up.sock) and not os.path.exists(up.sock + ".d")
    if up.learner_lab:                         # the learner's lab went with the daemon
        from pktlab.lab import list_labs
        assert up.learner_lab not in {st.name for st in list_labs()}
        assert not os.path.exists(f"/run/netns/{up.learner_lab}-dut")
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", up.port)) != 0


def test_nothing_running_and_tls_beyond_loopback(tmp_path):
    require_root()
    env = _env(str(tmp_path / "state"), "/run/pktlab/wstest-none.sock")
    for args in (["status"], ["down"], ["reset", "pkl-1", "01"]):
        r = _pktlab(env, *args, timeout=60)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        assert "no workshop is running" in r.stderr or "not a learner" in r.stderr, r.stderr
    from pktlab.workshop.hub import Workshop
    from pktlab.workshop.hubconf import Paths
    for ip, tls in (("0.0.0.0", True), ("127.0.0.1", False)):      # checks only, nothing made
        ws = Workshop(learners=1, ip=ip, port=_free_port(), prefix="pktzz-",
                      paths=Paths(str(tmp_path / "state")))
        assert ws.tls is tls
    assert not os.path.exists(tmp_path / "state")


def test_tls_then_sigkill_of_up_leaves_no_orphan(tmp_path):
    """--tls on loopback (what 0.0.0.0 gets): https with pktlab's self-signed certificate,
    checked against it; plain http refused. Then `up` SIGKILLed: nothing of it lives on."""
    require_root()
    u = Up(tmp_path, 1, extra=["--tls"])
    try:
        assert u.url.startswith("https://127.0.0.1:") and u.doc["tls"] is True
        cert = u.doc["certificate"]
        assert stat.S_IMODE(os.stat(os.path.join(u.state, "tls", "key.pem")).st_mode) == 0o600
        r = requests.get(u.url + "hub/login", verify=cert, timeout=30)
        assert r.status_code == 200 and "password" in r.text
        with pytest.raises(requests.exceptions.SSLError):      # not our certificate: refused
            requests.get(u.url + "hub/login", verify=True, timeout=30)
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(u.url.replace("https://", "http://") + "hub/login", timeout=30)
        name = u.names[0]
        uid = pwd.getpwnam(name).pw_uid
        _start_servers(u, [name])
        rec = json.load(open(os.path.join(u.state, "running.json")))
        u.proc.send_signal(signal.SIGKILL)
        u.proc.wait()
        deadline = time.monotonic() + 20
        alive = None
        while time.monotonic() < deadline:
            alive = [p for p in (rec["hub_pid"], rec["daemon_pid"])
                     if os.path.exists(f"/proc/{p}")] + [p["pid"] for p in _server_processes(uid)]
            if not alive:
                break
            time.sleep(0.2)
        assert not alive, f"still running after `up` was SIGKILLed: {alive}"
        r = u.down("--remove-learners")
        assert r.returncode == 0 and json.loads(r.stdout)["leftovers"] == [], r.stdout + r.stderr
        assert not os.path.exists(u.sock) and not os.path.exists(u.sock + ".d")
    finally:
        u.finish()


def _processes_naming(text):
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmd:
            out.append((int(pid), cmd[:120]))
    return out


@pytest.mark.parametrize("after_s", [2.0, 6.0])
def test_ctrl_c_while_up_starts(tmp_path, after_s):
    """Ctrl-C lands wherever `up` is in its start (accounts, the daemon, the hub): it ends
    with 130, and no hub, proxy or daemon of its own is left."""
    require_root()
    prefix = f"pkt{secrets.token_hex(2)}-"
    state = str(tmp_path / "state")
    sock = f"/run/pktlab/wstest-{secrets.token_hex(4)}.sock"
    env = _env(state, sock)
    proc = subprocess.Popen([PKTLAB, "workshop", "up", "--learners", "2", "--port",
                             str(_free_port()), "--prefix", prefix, "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(after_s)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode in (130, 0) or "interrupted" in err, (proc.returncode, err)
        left = _processes_naming(state) + _processes_naming(sock)
        assert not left, left
        assert not os.path.exists(sock)
    finally:
        if proc.poll() is None:
            proc.kill()
        if os.path.isdir(state):
            r = _pktlab(env, "down", "--remove-learners", "--json")
            assert r.returncode == 0 and json.loads(r.stdout)["leftovers"] == [], r.stderr
        for name in (f"{prefix}1", f"{prefix}2"):
            with pytest.raises(KeyError):
                pwd.getpwnam(name)
