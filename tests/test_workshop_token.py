"""pktlabd knowing learners by the hub's API token, for real: `pktlab workshop up --identity
token` (a real JupyterHub, pktlabd asking its REST API who a token is), two learners' tokens
made through the hub's API as its admin, and two clients running as the SAME uid (as every
learner's pod does on Kubernetes) that differ only by the token they send.

Each refusal stands next to its control: the other learner's lab next to one's own, a bad or
absent token next to a good one, a revoked token next to the same token before.
"""

import base64
import json
import os
import pwd
import signal
import subprocess
import sys
import time

import pytest

from conftest import PCAPS, REPO, require_hook, require_root
from test_workshop_daemon import AGENT, Agent, ns_exists
from test_workshop_hub import Up

DNS = os.path.join(PCAPS, "dns.pcap")
CACHE_S = 10.0               # pktlabd's default --token-cache


class TokenAgent(Agent):
    """tests/workshop_agent.py as `user`, with JUPYTERHUB_API_TOKEN=token (None: unset)."""

    def __init__(self, user, socket_path, token):
        self.user = user
        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PKTLAB_SOCKET": socket_path,
               "PYTHONPATH": REPO, "LC_ALL": "C.UTF-8"}
        if token is not None:
            env["JUPYTERHUB_API_TOKEN"] = token
        self.proc = subprocess.Popen(
            ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
             sys.executable, AGENT], cwd=REPO, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


CONNECT = """
import json, sys
from pktlab.workshop.client import Client
try:
    with Client() as c:
        print(json.dumps({"ok": True, "you": c.status()["you"]}))
except Exception as e:
    print(json.dumps({"ok": False, "type": type(e).__name__, "message": str(e)}))
"""


def connect_as(user, up, token):
    """One connection as `user` with `token` (None: none sent): its status or its refusal."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PKTLAB_SOCKET": up.sock,
           "PYTHONPATH": REPO, "LC_ALL": "C.UTF-8"}
    if token is not None:
        env["JUPYTERHUB_API_TOKEN"] = token
    r = subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                        "--init-groups", sys.executable, "-c", CONNECT], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    require_root()
    u = Up(tmp_path_factory.mktemp("wstoken"), 2, extra=("--identity", "token"))
    u.tokens = []
    try:
        yield u
    finally:
        u.finish()


def new_token(up, name):
    r = up.api("POST", f"/users/{name}/tokens", json={"note": "pktlab test", "expires_in": 900})
    assert r.status_code in (200, 201), r.text
    doc = r.json()
    up.tokens.append(doc["token"])
    return doc["token"], doc["id"]


@pytest.fixture
def two(up):
    """Two clients as learner 1's uid: one with learner 1's token, one with learner 2's."""
    same = pwd.getpwnam(up.names[0])
    made = [TokenAgent(same, up.sock, new_token(up, name)[0]) for name in up.names]
    try:
        yield made
    finally:
        for a in made:
            a.close()


def test_same_uid_two_tokens_two_learners(up, two):
    require_hook("xdp")
    a, b = two
    me, them = a.ok("status")["you"], b.ok("status")["you"]
    assert a.do(cmd="pid")["uid"] == b.do(cmd="pid")["uid"] == pwd.getpwnam(up.names[0]).pw_uid
    assert me == {"uid": f"hub:{up.names[0]}", "user": up.names[0], "session": me["session"]}
    assert them["user"] == up.names[1] and them["uid"] == f"hub:{up.names[1]}"
    la = a.ok("open_lab", hooks=[])["lab"]
    lb = b.ok("open_lab", hooks=[])["lab"]
    # each sees only their own labs, though the kernel says they are the same uid
    assert [x["name"] for x in a.ok("status")["labs"]] == [la]
    assert [x["name"] for x in b.ok("status")["labs"]] == [lb]
    assert [x["user"] for x in a.ok("status")["labs"]] == [up.names[0]]
    # the other's lab: refused; one's own: works (the control)
    for op, kw in (("close_lab", {}), ("replay", {"blob_file": DNS}),
                   ("set_hooks", {"hooks": ["xdp"]})):
        r = b.call(op, lab=la, **kw)
        assert not r["ok"] and r["type"] == "Refused" and "no lab of yours" in r["message"], r
    assert b.ok("clean", all=True)["removed"] == [lb]          # theirs only, never mine
    assert ns_exists(f"{la}-dut") and not ns_exists(f"{lb}-dut")
    doc = a.ok("replay", lab=la, blob_file=DNS, label="dns.pcap", precise_ts=True,
               hooks=["xdp"])
    assert doc["ok"] and doc["hooks"]["xdp"]["agree"] == 5, doc
    # still tied to the connection's process: the client killed, its lab goes
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    deadline = time.monotonic() + 30
    while ns_exists(f"{la}-dut") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not ns_exists(f"{la}-dut")


def test_connections_are_counted_per_hub_user_not_per_uid(up, two):
    a, b = two
    opened, refusal = 1, None
    while opened <= 8:                    # pktlabd's most per learner: 8 (--connections)
        r = a.do(cmd="connect")
        if not r["ok"]:
            refusal = r
            break
        opened += 1
    assert refusal and "too many connections" in refusal["message"], (opened, refusal)
    assert up.names[0] in refusal["message"], refusal
    # the other learner, the same uid: still served (counted by the hub's name, not the uid)
    assert b.do(cmd="connect")["ok"] and b.ok("status")["you"]["user"] == up.names[1]


def test_a_bad_or_absent_token_is_refused_a_good_one_served(up):
    same = pwd.getpwnam(up.names[0])
    good, _ = new_token(up, up.names[1])
    ok = connect_as(same, up, good)
    assert ok["ok"] and ok["you"]["user"] == up.names[1], ok                    # control
    bad = connect_as(same, up, good[:-4] + ("0000" if not good.endswith("0000") else "1111"))
    assert not bad["ok"] and bad["type"] == "Refused", bad
    assert "does not accept this token" in bad["message"], bad
    none = connect_as(same, up, None)
    assert not none["ok"] and "JUPYTERHUB_API_TOKEN" in none["message"], none
    # root (the instructor's status) needs none, and sees both learners' names on labs
    from pktlab.workshop.client import Client
    with Client(up.sock, token="") as root:
        assert root.status()["you"]["uid"] == 0


def test_a_revoked_token_stops_working(up):
    same = pwd.getpwnam(up.names[0])
    token, tid = new_token(up, up.names[0])
    assert connect_as(same, up, token)["ok"]                                      # control
    r = up.api("DELETE", f"/users/{up.names[0]}/tokens/{tid}")
    assert r.status_code == 204, r.text
    deadline = time.monotonic() + CACHE_S + 10
    while True:
        got = connect_as(same, up, token)
        if not got["ok"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not got["ok"] and "does not accept this token" in got["message"], got


FLOOD = """
import json, socket, sys, time
path, n = sys.argv[1], int(sys.argv[2])
held = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    held.append(s)
time.sleep(float(sys.argv[3]))
print("holding", flush=True)
sys.stdin.readline()
still = 0
for s in held:
    s.setblocking(False)
    try:
        s.recv(4096)                # a refusal, or closed: no place held
    except BlockingIOError:
        still += 1                  # nothing said to it, not closed: its place is held
    except OSError:
        pass
print(json.dumps({"held": still}), flush=True)
"""


def test_silent_connections_give_their_places_to_a_learner_who_says_hello(up):
    """One pod's flood of connections that never send their hello (token mode counts nothing
    per learner before it): more than pktlabd's whole total, opened and held, as the shared
    uid. A learner connecting after them is served (without the waiting cap the flood held
    all 128 places for the hello's 10 s: refused), and the flood holds no more than
    WAITING_MAX places at the end; the log says who was put out."""
    from pktlab.workshop.identity import SILENT_S, WAITING_MAX
    from pktlab.workshop.session import Limits
    same = pwd.getpwnam(up.names[0])
    good, _ = new_token(up, up.names[1])
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LC_ALL": "C.UTF-8"}
    flood = subprocess.Popen(
        ["setpriv", f"--reuid={same.pw_uid}", f"--regid={same.pw_gid}", "--init-groups",
         sys.executable, "-c", FLOOD, up.sock, str(Limits.max_sessions + 8),
         str(SILENT_S + 0.5)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        assert flood.stdout.readline().strip() == "holding", flood.stderr.read()
        got = connect_as(same, up, good)
        took = time.monotonic() - t0
        assert took < 9, f"too slow to tell (the hello's window is 10 s): {took:.1f} s"
        assert got["ok"] and got["you"]["user"] == up.names[1], got
        flood.stdin.write("\n")
        flood.stdin.flush()
        held = json.loads(flood.stdout.readline())["held"]
        assert held <= WAITING_MAX, held
    finally:
        flood.kill()
        flood.wait()
    log = open(os.path.join(up.state, "pktlabd.log")).read()
    assert "before its hello, put out to make room" in log


def test_no_token_in_the_daemons_log_or_files(up):
    assert up.tokens, "the tests above made tokens"
    places = [os.path.join(up.state, "pktlabd.log")]
    for root, _, files in os.walk(up.sock + ".d"):
        places += [os.path.join(root, f) for f in files]
    seen = 0
    for path in places:
        try:
            data = open(path, "rb").read()
        except OSError:
            continue
        seen += 1
        for token in up.tokens:
            assert token.encode() not in data, f"a token in {path}"
    assert seen >= 2            # the log and at least one cached lookup were read
    log = open(os.path.join(up.state, "pktlabd.log")).read()
    assert "learners known by the hub's token" in log


@pytest.mark.parametrize("argv, says", [
    (["--identity", "token"], "needs --hub-api"),
    (["--identity", "token", "--hub-api", "file:///etc/passwd"], "needs --hub-api"),
    (["--identity", "token", "--hub-api", "http://127.0.0.1:1/hub/api", "--token-cache", "-1"],
     "--token-cache"),
])
def test_token_mode_bad_options_exit_2(tmp_path, argv, says):
    require_root()
    sock = str(tmp_path / "d.sock")
    r = subprocess.run([sys.executable, "-m", "pktlab.workshop.daemon", "--socket", sock, *argv],
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r
    assert not os.path.exists(sock)


def test_a_hub_answer_that_is_not_an_object_is_refused_in_words():
    """hub_user asks the hub who a token is; an answer that is JSON but not an object (null, a
    list, a string) is a refusal the learner reads, not an AttributeError that ends their
    session process with a traceback and no answer; the control: a user object's name."""
    import http.server
    import threading
    from pktlab.workshop import identity, protocol as P
    answers = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = answers[-1].encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass
    srv = http.server.HTTPServer(("127.0.0.1", 0), Hub)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/hub/api"
        answers.append(json.dumps({"kind": "user", "name": "ana"}))
        assert identity.hub_user(url, "tok") == "ana"                    # the control
        for bad in ("null", "[]", '"ana"', "3"):
            answers.append(bad)
            with pytest.raises(P.Refused):
                identity.hub_user(url, "tok")
    finally:
        srv.shutdown()
        srv.server_close()


ASK = """
import json, sys
from pktlab.workshop.client import Client
try:
    with Client(sys.argv[1], token="not-a-token") as c:
        print(json.dumps({"ok": True}))
except Exception as e:
    print(json.dumps({"ok": False, "type": type(e).__name__, "message": str(e)}))
"""


def test_pktlabd_started_as_a_module_serves_token_mode(tmp_path):
    """`python -m pktlab.workshop.daemon --identity token` (what `workshop up` runs where no
    pktlabd script is installed): a learner's connection reaches its session, which asks the
    hub and says why not (no hub listens here): the answer is the hub's, not a closed
    connection (a name defined below the module's main() was missing when run this way)."""
    require_root()
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="pktlabd-mod-")
    os.chmod(d, 0o755)
    sock = os.path.join(d, "d.sock")
    daemon = subprocess.Popen([sys.executable, "-m", "pktlab.workshop.daemon", "--socket", sock,
                               "--identity", "token", "--hub-api", "http://127.0.0.1:1/hub/api"],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(sock) and time.monotonic() < deadline:
            assert daemon.poll() is None, daemon.stderr.read()
            time.sleep(0.1)
        nobody = pwd.getpwnam("nobody")
        r = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                            "--clear-groups", sys.executable, "-c", ASK, sock], cwd=REPO,
                           env={"PATH": "/usr/bin:/bin", "PYTHONPATH": REPO, "HOME": "/tmp"},
                           capture_output=True, text=True, timeout=60)
        got = json.loads(r.stdout.strip().splitlines()[-1])
        assert not got["ok"] and "cannot ask the hub" in got["message"], (got, r.stderr)
    finally:
        daemon.terminate()
        out, err = daemon.communicate(timeout=60)
        shutil.rmtree(d, ignore_errors=True)
    assert "a connection refused" not in err, err[-2000:]


def test_the_place_given_up_is_a_silent_ones_of_the_busiest_cgroup():
    """identity.put_out, the waiting cap's choice (one host has a single cgroup, so the
    flood test above cannot show this part): of the sessions waiting for their hello, the
    oldest silent one of the cgroup holding the most silent places; never one that said
    hello, nor one younger than SILENT_S; none when no one qualifies."""
    from types import SimpleNamespace as S
    from pktlab.workshop.identity import SILENT_S, put_out
    now = 100.0
    old = now - SILENT_S - 5
    pod_a = [S(spoke=False, t0=old + i, origin="/pod-a") for i in range(3)]
    pod_b = [S(spoke=False, t0=old - 10, origin="/pod-b")]           # older, but alone
    spoke = S(spoke=True, t0=old - 20, origin="/pod-a")              # oldest, said hello
    young = [S(spoke=False, t0=now - SILENT_S / 2, origin="/pod-c") for _ in range(5)]
    victim, why = put_out(pod_b + pod_a + [spoke] + young, now)
    assert victim is pod_a[0] and "3 silent from cgroup /pod-a" in why, why
    assert put_out([spoke] + young, now) == (None, None)
    assert put_out(pod_b, now)[0] is pod_b[0]
