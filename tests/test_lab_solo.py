"""`make lab` (scripts/lab.sh -> `pktlab workshop solo`): JupyterLab on the lessons, run as an
unprivileged user, never root, with the kernel work behind a pktlabd of that user alone.

Before: JupyterLab ran as root with terminals on, so whoever had the token had a root shell
(`POST /api/terminals` started `/bin/bash -l` as uid 0). Each check here sits next to a
control that shows the same action succeeding where it is allowed: root reads /etc/shadow, the
lab's kernel cannot; the lab's user connects to its daemon, another uid cannot; a lab opened in
the kernel replays through the daemon, and whatever ends the lab (Ctrl-C, SIGKILL) leaves no
process, lab or socket.
"""

import os
import pwd
import re
import secrets
import select
import signal
import socket
import stat
import subprocess
import time

import pytest
import requests

from conftest import REPO, require_root
from kernelws import execute

PKTLAB = os.path.join(REPO, ".venv", "bin", "pktlab")
READY_S = 120


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _proc_status(pid):
    try:
        text = open(f"/proc/{pid}/status").read()
    except OSError:
        return None
    return dict((k, v.strip()) for k, v in (ln.split(":", 1) for ln in text.splitlines()
                                           if ":" in ln))


def _processes(uid):
    """{pid: cmdline} of the processes running as `uid`."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        st = _proc_status(pid)
        if st is None or int(st["Uid"].split()[0]) != uid:
            continue
        try:
            out[int(pid)] = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            pass
    return out


class Solo:
    """scripts/lab.sh (what `make lab` runs) as root with no SUDO_USER: JupyterLab then runs
    as pktlab's own account (here one of the test's own, removed after)."""

    def __init__(self, tmp, workdir=None):
        self.account = f"pklab{secrets.token_hex(3)}"
        self.state = str(tmp / "solo")
        self.port = _free_port()
        self.sock = f"/run/pktlab/lab-{self.port}.sock"
        env = {k: v for k, v in os.environ.items()
               if k not in ("SUDO_USER", "PKTLAB_WORKDIR", "PKTLAB_PRETEND_MISSING")}
        env.update(PKTLAB_SOLO_DIR=self.state, PKTLAB_SOLO_ACCOUNT=self.account,
                   **({"PKTLAB_WORKDIR": str(workdir)} if workdir else {}))
        self.err_path = tmp / "solo.err"
        self.err = open(self.err_path, "w+")
        self.proc = subprocess.Popen([os.path.join(REPO, "scripts", "lab.sh"), str(self.port)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            self.token = self._token()
            self.uid = pwd.getpwnam(self.account).pw_uid
        except BaseException:
            self.finish()
            raise
        self.base = f"http://127.0.0.1:{self.port}"

    def _token(self):
        buf, deadline = "", time.monotonic() + READY_S
        fd = self.proc.stderr.fileno()
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                chunk = os.read(fd, 65536).decode(errors="replace")
                if not chunk:
                    break
                self.err.write(chunk)
                buf += chunk
                m = re.search(r"/lab\?token=([0-9a-f]{16,})", buf)
                if m and "[lab] ready" in buf:
                    self._drain()
                    return m.group(1)
            elif self.proc.poll() is not None:
                break
        raise AssertionError(f"no JupyterLab token (exit {self.proc.poll()}): {buf[-2000:]}")

    def _drain(self):
        """Keep reading the server's log (a full pipe would stall it) into the file."""
        import threading

        def pump():
            for line in iter(self.proc.stderr.readline, b""):
                self.err.write(line.decode(errors="replace"))
                self.err.flush()
        threading.Thread(target=pump, daemon=True).start()

    def api(self, method, path, **kw):
        return requests.request(method, self.base + "/api" + path, timeout=60,
                                headers={"Authorization": f"token {self.token}"}, **kw)

    def kernel(self):
        try:
            r = self.api("POST", "/kernels", json={"name": "python3"})
        except requests.ConnectionError as e:
            raise AssertionError(f"{e}\n{self.log()[-3000:]}") from None
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def run(self, kernel_id, code, timeout=180):
        return execute(f"ws://127.0.0.1:{self.port}/api/kernels/{kernel_id}/channels",
                       self.token, code, timeout=timeout)

    def log(self):
        self.err.flush()
        return self.err_path.read_text()

    def finish(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            pw = pwd.getpwnam(self.account)
        except KeyError:
            return
        if pw.pw_gecos.startswith("pktlab workshop learner"):     # the test's own account
            subprocess.run(["pkill", "-KILL", "-u", str(pw.pw_uid)])
            subprocess.run(["userdel", "--remove", self.account], capture_output=True)
        # the learners' group, when this run made it (its registry says so) and it is empty
        from pktlab.workshop.accounts import Registry, remove_group
        reg = Registry.load(self.state)
        reg.data["learners"].pop(self.account, None)
        remove_group(reg)


def _root_in_tree(top):
    """The processes under `top` (the lab) running as root, but for the PID namespace's
    unshare and pktlabd with its sessions, the two that must."""
    kids = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        st = _proc_status(pid)
        if st is not None:
            kids.setdefault(int(st["PPid"]), []).append(int(pid))
    out, todo = [], list(kids.get(top, []))
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        st = _proc_status(pid)
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if st and st["Uid"].split()[1] == "0" and not re.search(r"(^|/)(unshare|pktlabd) ", cmd) \
                and "pktlab.workshop.daemon" not in cmd:
            out.append(cmd)
    return out


def _daemon_labs_of(uid):
    from pktlab.workshop.labs import daemon_labs
    return [st.name for st in daemon_labs(uid=uid, alive_only=False)]


def _gone(solo, timeout=45, dead_socket_ok=False):
    """Nothing of the lab left: no process of its user, no lab of theirs, no socket (after a
    SIGKILL the daemon cannot unlink it: a dead one, which the next start reclaims)."""
    from pktlab.workshop.client import daemon_present
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {"processes": _processes(solo.uid), "labs": _daemon_labs_of(solo.uid),
                "socket": daemon_present(solo.sock) if dead_socket_ok else os.path.exists(solo.sock)}
        if not any(left.values()):
            return {}
        time.sleep(0.5)
    return left


_LESSON = r"""
import os, pktlab.lessons as pl
print("uid", os.getuid(), "euid", os.geteuid())
try:
    open("/etc/shadow").read(1)
    print("shadow: read")
except PermissionError:
    print("shadow: refused")
lab = pl.open_lab(["xdp", "tc-ingress"])
print("lab", type(lab).__name__, lab.lab.name)
view = lab.replay("mixed.pcap")
print("replay ok", view.ok, view.sent)
"""


def test_make_lab_runs_jupyterlab_as_a_learner_with_the_kernel_work_behind_its_daemon(tmp_path):
    require_root()
    solo = Solo(tmp_path)
    try:
        # the server: the lab's user, not root, no privileges to gain
        server = [p for p, cmd in _processes(solo.uid).items() if "jupyter-lab" in cmd]
        assert server, f"no JupyterLab process of uid {solo.uid}: {_processes(solo.uid)}"
        st = _proc_status(server[0])
        assert st["Uid"].split() == [str(solo.uid)] * 4, st["Uid"]
        assert st["NoNewPrivs"] == "1" and int(st["CapEff"], 16) == 0, st
        assert _root_in_tree(solo.proc.pid) == []

        # a terminal, the hole of the old `make lab`: a shell of the lab's user, not root's
        r = solo.api("POST", "/terminals")
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 20
        shells = []
        while not shells and time.monotonic() < deadline:
            shells = [p for p, cmd in _processes(solo.uid).items()
                      if re.match(r"\S*bash\b", cmd)]
            time.sleep(0.2)
        assert shells, "the terminal started no shell as the lab's user"
        assert _root_in_tree(solo.proc.pid) == []

        # the daemon's socket: the lab's user's alone (0600); another uid is refused, they get in
        sst = os.stat(solo.sock)
        assert stat.S_IMODE(sst.st_mode) == 0o600 and sst.st_uid == solo.uid
        probe = [os.path.join(REPO, ".venv", "bin", "python"), "-c",
                 "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
                 "print('connected')", solo.sock]
        other = subprocess.run(probe, user="nobody", capture_output=True, text=True)
        assert other.returncode != 0 and "Permission denied" in other.stderr, other
        own = subprocess.run(probe, user=solo.uid, capture_output=True, text=True)
        assert own.returncode == 0 and "connected" in own.stdout, own

        # a kernel: the lab's user, /etc/shadow closed (root, the control, reads it), and a
        # lesson's lab opened and replayed through the daemon
        assert open("/etc/shadow").read(1) is not None
        kid = solo.kernel()
        out, error = solo.run(kid, _LESSON)
        assert error is None, f"{error}\n{out}\n{solo.log()[-3000:]}"
        assert f"uid {solo.uid} euid {solo.uid}" in out and "shadow: refused" in out, out
        assert "lab RemoteLab" in out and "replay ok True" in out, out
        name = re.search(r"lab RemoteLab (\S+)", out).group(1)
        assert _daemon_labs_of(solo.uid) == [name]

        # Ctrl-C: everything goes (server, kernels, shell, daemon, the kernel's lab, socket)
        solo.proc.send_signal(signal.SIGINT)
        assert solo.proc.wait(timeout=60) == 0, solo.log()[-2000:]
        assert _gone(solo) == {}
        assert "left behind" not in solo.log()
    finally:
        solo.finish()


def test_sigkill_of_make_lab_leaves_no_process_lab_or_socket(tmp_path):
    require_root()
    solo = Solo(tmp_path)
    try:
        kid = solo.kernel()
        out, error = solo.run(kid, "import pktlab.lessons as pl\nlab = pl.open_lab(['xdp'])\n"
                                   "print(lab.lab.name)")
        assert error is None, out
        assert _daemon_labs_of(solo.uid), "the kernel's lab is not there"
        solo.proc.kill()
        solo.proc.wait()
        assert _gone(solo, dead_socket_ok=True) == {}
        # the dead socket is what the next start reclaims; the test's own goes now
        from pktlab.workshop.hub import remove_dead_socket
        remove_dead_socket(solo.sock)
        assert not os.path.exists(solo.sock) and not os.path.exists(solo.sock + ".d")
    finally:
        solo.finish()


@pytest.mark.parametrize("args, env, says", [
    (["--user", "root"], {}, "never runs as root"),
    (["--user", "no-such-user-pktlab"], {}, "no such user"),
    (["--port", "0"], {}, "port"),
])
def test_bad_input_exit_2_one_line_nothing_started(args, env, says):
    require_root()
    before = set(os.listdir("/run/pktlab")) if os.path.isdir("/run/pktlab") else set()
    r = subprocess.run([PKTLAB, "workshop", "solo", *args], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, **env))
    assert r.returncode == 2, r
    assert len(r.stderr.strip().splitlines()) == 1 and says in r.stderr, r.stderr
    after = set(os.listdir("/run/pktlab")) if os.path.isdir("/run/pktlab") else set()
    assert after == before


def test_who_it_runs_as():
    """SUDO_USER (make lab by a user, through sudo) is who the lab runs as; root, or no
    SUDO_USER, means pktlab's own account; never root."""
    require_root()
    from pktlab.workshop.solo import ACCOUNT, Solo as S
    keep = os.environ.get("SUDO_USER")
    try:
        os.environ["SUDO_USER"] = "nobody"
        assert (S(port=1).user, S(port=1).dedicated) == ("nobody", False)
        os.environ["SUDO_USER"] = "root"
        assert (S(port=1).user, S(port=1).dedicated) == (ACCOUNT, True)
        del os.environ["SUDO_USER"]
        assert S(port=1).user == ACCOUNT
    finally:
        if keep is None:
            os.environ.pop("SUDO_USER", None)
        else:
            os.environ["SUDO_USER"] = keep


def test_a_checkout_the_lab_user_cannot_read_is_refused_in_one_line(tmp_path):
    """JupyterLab runs the venv's Python on the checkout as the lab's user: a clone they
    cannot read (root's 0700 /root) is refused in one line, exit 2, before the daemon or the
    server start; the control: the same command for the same user gets past that check."""
    require_root()
    env = dict(os.environ, PKTLAB_SOLO_DIR=str(tmp_path / "solo"))
    env.pop("SUDO_USER", None)
    notebooks = os.path.join(REPO, "notebooks")
    mode = stat.S_IMODE(os.stat(notebooks).st_mode)
    port = _free_port()
    os.chmod(notebooks, 0o700)
    try:
        r = subprocess.run([PKTLAB, "workshop", "solo", "--user", "nobody", "--port", str(port)],
                           capture_output=True, text=True, timeout=120, env=env)
    finally:
        os.chmod(notebooks, mode)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r
    assert "nobody cannot run" in r.stderr and "/opt/pktlab" in r.stderr, r.stderr
    assert not os.path.exists(f"/run/pktlab/lab-{port}.sock")
    # the control: readable, nobody gets past the check (and is stopped later: no home)
    r = subprocess.run([PKTLAB, "workshop", "solo", "--user", "nobody", "--port", str(port)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert "cannot run" not in r.stderr and "home /nonexistent is not there" in r.stderr, r
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and not os.path.exists(f"/run/pktlab/lab-{port}.sock"), r
