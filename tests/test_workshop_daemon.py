"""pktlabd (pktlab/workshop/daemon.py), for real: a daemon started here on a socket of its own,
learners as real non-root uids (two throwaway system users made for these tests and removed
after), real labs, real replays, real learner programs.

Each attack sits next to its control, the same action where it is allowed: another learner's
lab is refused where one's own works; an interface is refused where one's own lab gets its
XDP program; a tracing helper is refused through `run` and loads as root; fd-holding maps, an
8 GiB map and /etc/shadow are refused where a plain program runs; the quota refuses the fourth
lab and not the third; a flood is cut off while the other learner is served; malformed
messages are answered and dropped while the next connection is served; a learner killed
mid-replay leaves nothing, while one that stays keeps its lab.
"""

import base64
import json
import os
import pwd
import secrets
import select
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import PCAPS, REPO, require_hook, require_root

AGENT = os.path.join(REPO, "tests", "workshop_agent.py")
LOADER_DATA = os.path.join(REPO, "tests", "data", "loader")
DNS = os.path.join(PCAPS, "dns.pcap")
MIXED = os.path.join(PCAPS, "mixed.pcap")
XDP = ["xdp"]


# fixtures: two learners, one daemon -------------------------------------------------------------
@pytest.fixture(scope="module")
def learners():
    """Two throwaway system users (pktlab-test-<hex>), removed after, whatever happened."""
    require_root()
    made = []
    try:
        for _ in range(2):
            name = f"pktlab-test-{secrets.token_hex(3)}"
            subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                            "--shell", "/usr/sbin/nologin", name], check=True,
                           capture_output=True, text=True)
            made.append(name)
        yield [pwd.getpwnam(n) for n in made]
    finally:
        for name in made:
            subprocess.run(["userdel", name], capture_output=True)
        for name in made:
            with pytest.raises(KeyError):
                pwd.getpwnam(name)


class Daemon:
    def __init__(self, tmp, *options):
        os.chmod(tmp, 0o755)
        self.dir = tmp
        self.path = os.path.join(tmp, "pktlabd.sock")
        self.log = open(os.path.join(tmp, "pktlabd.log"), "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "pktlab.workshop.daemon",
                                      "--socket", self.path, *options], cwd=REPO,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self.answers():
            assert self.proc.poll() is None, self.text()
            assert time.monotonic() < deadline, "pktlabd did not start listening in 60 s"
            time.sleep(0.1)

    def answers(self):
        try:
            from pktlab.workshop.client import Client
            with Client(self.path) as c:
                return c.status()["pid"] == self.proc.pid
        except Exception:
            return False

    def text(self):
        with open(self.log.name) as f:
            return f.read()

    def labs(self):
        from pktlab.workshop.labs import daemon_labs
        return daemon_labs(daemon_pid=self.proc.pid, alive_only=False)

    def stop(self):
        """SIGTERM, as the hub stops it: every lab it opened is gone after."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        left = [st.name for st in self.labs()]
        from pktlab.lab import remove_lab
        from pktlab.workshop.labs import daemon_labs
        for st in daemon_labs(daemon_pid=self.proc.pid, alive_only=False):
            remove_lab(st)                      # (a failed test must not leave them either)
        self.log.close()
        return left


def _public_dir():
    """A directory learners can reach (pytest's own tmp is root's only)."""
    import tempfile
    return tempfile.mkdtemp(prefix="pktlabd-test-")


@pytest.fixture(scope="module")
def daemon(learners):
    import shutil
    d = Daemon(_public_dir())
    try:
        yield d
    finally:
        left = d.stop()
        shutil.rmtree(d.dir, ignore_errors=True)
        assert left == [], f"pktlabd left labs behind after SIGTERM: {left}"
        assert not os.path.exists(d.path + ".d")


class Agent:
    """A learner's process talking to the daemon (tests/workshop_agent.py), as `user`."""

    def __init__(self, user, socket_path, groups=False):
        self.user = user
        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PKTLAB_SOCKET": socket_path,
               "PYTHONPATH": REPO, "LC_ALL": "C.UTF-8"}
        self.proc = subprocess.Popen(
            ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
             "--init-groups" if groups else "--clear-groups",
             sys.executable, AGENT], cwd=REPO, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def send(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def answer(self, timeout=240):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, f"the learner's agent said nothing in {timeout} s"
        line = self.proc.stdout.readline()
        assert line, f"the learner's agent ended: {self.proc.stderr.read()[-2000:]}"
        return json.loads(line)

    def do(self, timeout=240, **cmd):
        self.send(**cmd)
        return self.answer(timeout)

    def call(self, op, conn=0, blob_file=None, blob=b"", **args):
        return self.do(cmd="call", op=op, args=args, conn=conn, blob_file=blob_file,
                       blob_b64=base64.b64encode(blob).decode())

    def ok(self, op, **kw):
        r = self.call(op, **kw)
        assert r["ok"], r
        return r["result"]

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def agents(learners, daemon):
    made = []

    def start(i):
        a = Agent(learners[i], daemon.path)
        made.append(a)
        return a
    try:
        yield start
    finally:
        for a in made:
            a.close()
        deadline = time.monotonic() + 30          # their sessions close their labs
        while daemon.labs() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [st.name for st in daemon.labs()] == [], "labs outlived their learners"


def ns_exists(name):
    return os.path.exists(f"/run/netns/{name}")


def xdp_on(ns, ifname):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + ["ip", "-d", "link", "show", ifname]
    return "prog/xdp" in subprocess.run(cmd, capture_output=True, text=True).stdout


def program(name):
    with open(os.path.join(LOADER_DATA, name), "rb") as f:
        return f.read()


def run_args(name, source, hook="xdp"):
    return dict(name=name, hook=hook, pcap="dns.pcap", source_len=len(source))


# who asks ---------------------------------------------------------------------------------------
def test_the_daemon_knows_each_learner_by_uid(agents, learners, daemon):
    a, b = agents(0), agents(1)
    sa, sb = a.ok("status"), b.ok("status")
    assert sa["you"]["uid"] == learners[0].pw_uid and sa["you"]["user"] == learners[0].pw_name
    assert sb["you"]["uid"] == learners[1].pw_uid and sa["pid"] == daemon.proc.pid
    lab = a.ok("open_lab", hooks=XDP)["lab"]
    assert [x["name"] for x in a.ok("status")["labs"]] == [lab]
    assert b.ok("status")["labs"] == []                    # a learner sees their own only
    from pktlab.workshop.client import Client
    with Client(daemon.path) as root:                       # root sees every learner's, by uid
        st = root.status()
        seen = {x["name"]: x for x in st["labs"]}
    assert seen[lab]["uid"] == learners[0].pw_uid and seen[lab]["user"] == learners[0].pw_name
    # `clients` counts the others: a's one connection is the one asking; root sees a and b
    assert sa["clients"] == 0 and st["clients"] == 2, (sa["clients"], st["clients"])


# another learner's lab -------------------------------------------------------------------------
def test_another_learners_lab_is_refused_and_ones_own_works(agents):
    require_hook("xdp")
    a, b = agents(0), agents(1)
    lab = a.ok("open_lab", hooks=XDP)["lab"]
    for op, kw in (("close_lab", {}), ("replay", {"blob_file": DNS}),
                   ("frames", {"lengths": [0], "blob": b""}), ("set_hooks", {"hooks": XDP}),
                   ("run", {"blob": program("drop53.c"), **run_args("d.c", program("drop53.c"))})):
        r = b.call(op, lab=lab, **kw)
        assert not r["ok"] and r["type"] == "Refused" and "no lab of yours" in r["message"], r
    assert b.ok("clean", all=True)["removed"] == []          # clean touches only one's own
    assert ns_exists(f"{lab}-dut")
    doc = a.ok("replay", lab=lab, blob_file=DNS, label="dns.pcap", precise_ts=True)
    assert doc["hooks"]["xdp"]["agree"] == 5 and doc["ok"], doc
    assert a.ok("close_lab", lab=lab) == {"closed": lab, "leftovers": []}
    assert not ns_exists(f"{lab}-dut")


def test_lab_clean_all_removes_ones_own_labs_only(agents):
    a, b = agents(0), agents(1)
    theirs = b.ok("open_lab", hooks=[])["lab"]
    mine = a.ok("open_lab", hooks=[])["lab"]
    other = a.do(cmd="connect")["conn"]
    assert a.ok("clean", conn=other)["removed"] == []          # nothing of mine is stale
    assert a.ok("clean", conn=other, all=True)["removed"] == [mine]     # mine, on any connection
    assert not ns_exists(f"{mine}-dut") and ns_exists(f"{theirs}-dut")  # never theirs
    assert b.ok("close_lab", lab=theirs)["leftovers"] == []


def test_an_interface_is_refused_and_ones_own_lab_gets_the_program(agents):
    require_hook("xdp")
    a = agents(0)
    for ifname in ("lo", "eth0"):
        r = a.call("open_lab", hooks=XDP, ifname=ifname)
        assert not r["ok"] and "no argument 'ifname'" in r["message"], r
        for op in ("set_hooks", "replay"):
            r = a.call(op, lab=ifname, hooks=XDP, blob_file=DNS)
            assert not r["ok"] and "no lab of yours" in r["message"], r
        assert not xdp_on(None, ifname) if os.path.exists(f"/sys/class/net/{ifname}") else True
    got = a.ok("open_lab", hooks=XDP)
    assert xdp_on(got["ns_dut"], got["if_dut"])             # the control: attached, in the lab


# the learner loader through the daemon ---------------------------------------------------------
def test_a_tracing_helper_is_refused_through_run_and_loads_as_root(agents):
    a = agents(0)
    src = program("probe_kernel.c")
    doc = a.ok("run", blob=src + open(DNS, "rb").read(), **run_args("probe_kernel.c", src))
    rep = doc["report"]
    assert doc["exit"] == 1 and rep["stage"] == "load" and not rep["ok"]
    assert rep["errors"][0]["kind"] == "needs CAP_PERFMON" and rep["file"] == "probe_kernel.c"
    assert doc["lab"] if "lab" in doc else True
    r = a.call("run", blob=src + open(DNS, "rb").read(),
               **dict(run_args("p.c", src), hook="kprobe"))
    assert not r["ok"] and "choose from xdp, tc-ingress, tc-egress" in r["message"]
    from pktlab.kernel import progload, verifier        # the control: root, in-process
    assert verifier.verify(os.path.join(LOADER_DATA, "probe_kernel.c"), "xdp",
                           loader=progload.attempt).ok
    good = program("drop53.c")                          # and a learner's plain program runs
    doc = a.ok("run", blob=good + open(DNS, "rb").read(), **run_args("drop53.c", good))
    assert doc["exit"] == 0 and doc["verdicts"] == {"XDP_PASS": 3, "XDP_DROP": 2}, doc
    assert doc["maps"]["seen"] == {"1": 5} and doc["leftovers"] == []


MAP_PROGRAM = """\
#include <uapi/linux/bpf.h>
{decl}
int prog(struct xdp_md *ctx)
{{
    return XDP_PASS;
}}
"""


@pytest.mark.parametrize("decl,refusal", [
    ("BPF_DEVMAP(m, 4);", "map type not allowed"),
    ("BPF_PROG_ARRAY(m, 4);", "map type not allowed"),
    ("BPF_ARRAY(big, u64, 1 << 30);", "map too large"),
    ("BPF_ARRAY(small, u64, 1024);", None),                     # the control
    ("BPF_HASH(m, u32, u64, 4);", None),                        # the control
])
def test_fd_holding_and_huge_maps_are_refused_plain_ones_load(agents, decl, refusal):
    a = agents(1)
    src = MAP_PROGRAM.format(decl=decl).encode()
    doc = a.ok("verify", blob=src, name="maps.c", hook="xdp", source_len=len(src))
    if refusal is None:
        assert doc["ok"] and doc["exit"] == 0, doc["errors"]
    else:
        assert not doc["ok"] and doc["exit"] == 1 and doc["errors"][0]["kind"] == refusal
        assert doc["errors"][0]["line"] == 2


def test_etc_shadow_shows_nothing_and_a_header_in_view_compiles(agents):
    a = agents(0)
    try:
        with open("/etc/shadow") as f:
            secret = f.readline().strip()
    except OSError as e:
        pytest.skip(f"no /etc/shadow to protect here ({e})")
    src = program("shadow.c")
    r = a.call("verify", blob=src, name="shadow.c", hook="xdp", source_len=len(src))
    said = json.dumps(r)
    assert secret not in said and secret.split(":")[0] + ":" not in said
    assert r["result"]["exit"] == 2 and "'/etc/shadow' file not found" in said
    ok = program("in_view.c")
    assert a.ok("verify", blob=ok, name="in_view.c", hook="xdp", source_len=len(ok))["ok"]


# limits ------------------------------------------------------------------------------------------
def test_the_lab_quota_refuses_the_fourth_lab_and_not_the_third(agents):
    a, b = agents(0), agents(1)
    second = a.do(cmd="connect")["conn"]
    names = [a.ok("open_lab", hooks=[])["lab"], a.ok("open_lab", hooks=[])["lab"],
             a.ok("open_lab", hooks=[], conn=second)["lab"]]          # 3 over 2 connections
    r = a.call("open_lab", hooks=[], conn=second)
    assert not r["ok"] and r["type"] == "Refused" and "lab quota" in r["message"]
    assert "at once is 3" in r["message"] and all(n in r["message"] for n in names)
    r = a.call("replay", blob_file=DNS)                      # a throwaway lab counts too
    assert not r["ok"] and "lab quota" in r["message"]
    assert b.ok("open_lab", hooks=[])["lab"]                 # the quota is per learner
    a.ok("close_lab", lab=names[0])
    assert a.ok("open_lab", hooks=[])["lab"]                 # and room again after a close


def test_a_flood_is_cut_off_and_the_other_learner_is_served(agents, daemon):
    a, b = agents(0), agents(1)
    conns = [a.do(cmd="connect")["conn"] for _ in range(7)]    # 8 with the first: the most
    assert all(a.call("status", conn=c)["ok"] for c in conns)  # every one let in is served
    ninth = base64.b64encode(_msg({"op": "status"})).decode()
    r = a.do(cmd="raw", data_b64=ninth)
    assert r["reply"]["error"]["kind"] == "refused" and "too many connections" in \
        r["reply"]["error"]["message"] and r["closed"], r
    for c in conns:
        a.do(cmd="close", conn=c)
    deadline = time.monotonic() + 30                            # their sessions end
    while not a.do(cmd="raw", data_b64=ninth)["reply"]["ok"]:
        assert time.monotonic() < deadline, "closed connections still counted after 30 s"
        time.sleep(0.2)
    r = a.do(cmd="pipeline", n=5000)                            # requests piled up: cut off
    assert r["error"]["kind"] == "refused" and "too many requests" in r["error"]["message"], r
    assert 50 <= r["answered"] < 5000
    r = a.do(cmd="flood", n=100)            # the control: one waiting for each answer is slowed
    assert r["done"] == 100 and r["type"] is None, r                 # to the rate, not cut off
    doc = b.ok("replay", blob_file=DNS, hooks=XDP)              # the other learner: served
    assert doc["hooks"]["xdp"]["agree"] == 5 and doc["leftovers"] == []
    assert a.ok("status")["pid"] == daemon.proc.pid              # and the flooder's first one
    assert daemon.proc.poll() is None


def test_idle_connections_of_one_learner_leave_the_others_their_share(learners):
    """With --group, a learner's most is their share of the total (here 8 // 2 learners = 4):
    one learner holding idle connections (a notebook's waits for ever) is refused the fifth
    while the other still gets their four. (Before, 16 learners x 8 idle connections filled
    the 128 for everyone else.)"""
    import shutil
    group = f"pktlab-tg-{secrets.token_hex(3)}"
    subprocess.run(["groupadd", "--system", group], check=True, capture_output=True)
    d = agents_ = None
    try:
        for u in learners:
            subprocess.run(["usermod", "--append", "--groups", group, u.pw_name], check=True,
                           capture_output=True)
        d = Daemon(_public_dir(), "--group", group, "--max-connections", "8")
        agents_ = [Agent(u, d.path, groups=True) for u in learners]
        a, b = agents_
        conns = [0] + [a.do(cmd="connect")["conn"] for _ in range(3)]
        assert all(a.call("status", conn=c)["ok"] for c in conns)
        r = a.do(cmd="raw", data_b64=base64.b64encode(_msg({"op": "status"})).decode())
        said = r["reply"].get("error") or {}                     # the fifth: refused
        assert said.get("kind") == "refused" and "too many connections" in said["message"] \
            and "(4:" in said["message"], r
        mine = [0] + [b.do(cmd="connect")["conn"] for _ in range(3)]   # the control: b's four
        assert all(b.call("status", conn=c)["ok"] for c in mine)
    finally:
        for x in agents_ or []:
            x.close()
        if d is not None:
            assert d.stop() == []
            shutil.rmtree(d.dir, ignore_errors=True)
        subprocess.run(["groupdel", group], capture_output=True)


def _msg(doc, blob=b""):
    data = json.dumps(doc).encode()
    return struct.pack(">4sII", b"PKL1", len(data), len(blob)) + data + blob


@pytest.mark.parametrize("data,said", [
    (b"GET / HTTP/1.0\r\n\r\n", "not a pktlabd message"),
    (struct.pack(">4sII", b"PKL1", 1 << 30, 0), "at most"),
    (struct.pack(">4sII", b"PKL1", 10, 1 << 31), "at most"),
    (struct.pack(">4sII", b"PKL1", 9, 0) + b"{not json", "does not parse"),
    (struct.pack(">4sII", b"PKL1", 2, 0) + b"[]", "not an object"),
    (_msg({"op": "load_program", "args": {"fd": 3}}), "unknown op"),
    (_msg({"op": "status", "args": "x"}), "not an object"),
    (struct.pack(">4sII", b"PKL1", 200_000, 0) + b"[" * 100_000 + b"]" * 100_000,
     "does not parse"),                                    # nested past Python's recursion
])
def test_malformed_messages_are_answered_and_dropped_the_daemon_serves_on(agents, daemon,
                                                                          data, said):
    a = agents(1)
    r = a.do(cmd="raw", data_b64=base64.b64encode(data).decode())
    assert r["reply"] and not r["reply"]["ok"] and said in r["reply"]["error"]["message"], r
    assert r["closed"], "the connection stays open after a malformed message"
    assert a.ok("status")["pid"] == daemon.proc.pid            # the control: served
    assert daemon.proc.poll() is None


def test_a_capture_too_big_is_refused_before_anything(agents):
    a = agents(0)
    from pktlab.workshop import protocol as P
    r = a.call("replay", blob=b"\0" * (P.MAX_CAPTURE_BYTES + 1))
    assert not r["ok"] and "at most" in r["message"] and "bytes" in r["message"], r
    assert a.ok("replay", blob_file=DNS, hooks=XDP)["ok"]       # the control


# a learner killed mid-replay ---------------------------------------------------------------------
def test_a_learner_killed_mid_replay_leaves_nothing(agents, daemon):
    require_hook("xdp")
    a, b = agents(0), agents(1)
    keep = b.ok("open_lab", hooks=XDP)["lab"]                 # the control: a learner who stays
    lab = a.ok("open_lab", hooks=XDP)["lab"]
    a.send(cmd="call", op="replay", args={"lab": lab, "loop": 100, "pps": 1000},
           blob_file=MIXED)
    time.sleep(3)                                             # in the middle of its replay
    assert a.proc.poll() is None and ns_exists(f"{lab}-dut")
    a.proc.kill()
    a.proc.wait()
    deadline = time.monotonic() + 30
    while (ns_exists(f"{lab}-dut") or ns_exists(f"{lab}-src")
           or lab in [st.name for st in daemon.labs()]) and time.monotonic() < deadline:
        time.sleep(0.1)
    from pktlab.lab import leftovers
    assert leftovers(lab) == [], leftovers(lab)
    assert ns_exists(f"{keep}-dut") and b.ok("labs")["labs"][0]["lab"] == keep
    assert b.ok("replay", lab=keep, blob_file=DNS, precise_ts=True)["ok"]


def _gone(lab, timeout=30):
    from pktlab.lab import leftovers
    deadline = time.monotonic() + timeout
    while leftovers(lab) and time.monotonic() < deadline:
        time.sleep(0.1)
    return leftovers(lab)


def test_a_session_killed_its_labs_are_reaped_by_the_daemon(agents, daemon):
    a, b = agents(0), agents(1)
    keep = b.ok("open_lab", hooks=[])["lab"]                  # the control: b's stays
    lab = a.ok("open_lab", hooks=[])["lab"]
    session = a.ok("status")["you"]["session"]
    os.kill(session, signal.SIGKILL)                          # no chance to close anything
    assert _gone(lab) == []
    # removed by the daemon (not by the next Lab() anywhere, which removes stale labs too)
    assert f"left by session(s) [{session}]: {lab}" in daemon.text()
    r = a.call("status")
    assert not r["ok"] and r["type"] == "DaemonGone", r
    assert ns_exists(f"{keep}-dut") and b.ok("status")["labs"][0]["name"] == keep
    assert daemon.proc.poll() is None


def test_a_daemon_killed_its_sessions_close_their_labs(learners):
    import shutil
    d = Daemon(_public_dir())
    a = Agent(learners[0], d.path)
    try:
        lab = a.ok("open_lab", hooks=[])["lab"]
        d.proc.kill()                                         # SIGKILL: no shutdown() at all
        d.proc.wait()
        assert _gone(lab) == []                               # the session saw it die
    finally:
        d.stop()
        a.close()
        shutil.rmtree(d.dir, ignore_errors=True)
        shutil.rmtree(d.path + ".d", ignore_errors=True)      # (left by a SIGKILLed daemon)


# the command line, as a learner ------------------------------------------------------------------
def _cli(user, socket_path, *args):
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PKTLAB_SOCKET": socket_path,
           "PYTHONPATH": REPO, "LC_ALL": "C.UTF-8"}
    return subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                           "--clear-groups", sys.executable, "-m", "pktlab.cli", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_the_cli_goes_through_the_daemon_with_the_same_document(learners, daemon):
    require_hook("xdp")
    u = learners[0]
    r = _cli(u, daemon.path, "replay", "pcaps/dns.pcap", "--hooks", "xdp,tc-ingress", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    from pktlab.replay.run import replay                       # the root document, here
    root = replay(DNS, hooks="xdp,tc-ingress").summary()
    assert set(doc) == set(root) | {"capture"} and doc["leftovers"] == []
    assert doc["hooks"]["xdp"]["agree"] == root["hooks"]["xdp"]["agree"] == 5
    assert doc["source"] == "pcaps/dns.pcap"
    src = os.path.relpath(os.path.join(LOADER_DATA, "drop53.c"), REPO)
    r = _cli(u, daemon.path, "run", src, "--hook", "xdp", "--pcap", "pcaps/dns.pcap", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["verdicts"] == {"XDP_PASS": 3, "XDP_DROP": 2} and doc["file"] == src
    r = _cli(u, daemon.path, "lab", "clean", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"removed": []}, r.stderr


def test_not_root_and_no_daemon_the_cli_says_so(learners, tmp_path):
    require_root()
    nowhere = str(tmp_path / "no.sock")
    for args in (["replay", "pcaps/dns.pcap"], ["run", "tests/data/loader/drop53.c", "--hook",
                                                "xdp", "--pcap", "pcaps/dns.pcap"],
                 ["lab", "clean"]):
        r = _cli(learners[1], nowhere, *args)
        assert r.returncode == 2 and r.stdout == "" and len(r.stderr.splitlines()) == 1, r
        assert "no daemon listens on " + nowhere in r.stderr and "Traceback" not in r.stderr


# a notebook, as a learner -------------------------------------------------------------------------
NOTEBOOK = """
import json, os
import pktlab.lessons as pl
out = {"xdp_available": pl.hook_available("xdp")}
lab = pl.open_lab(["xdp", "tc-ingress", "tc-egress"])
out["class"], out["name"] = type(lab).__name__, lab.name
out["replay"] = {h: [x["agree"], x["disagree"], x["lost"]]
                 for h, x in lab.replay("tcp-http.pcap").summary()["hooks"].items()}
out["step"] = lab.step(pl.frames("vlan.pcap")[0]).verdicts()
out["follow"] = type(lab.follow(pl.frames("tcp-http.pcap")[3])).__name__
out["compare"] = type(lab.compare("mixed.pcap", limit=16)).__name__
out["html"] = lab.name in lab._repr_html_()
out["closed"] = pl.close_all().text
print(json.dumps(out))
"""


def test_a_notebooks_lab_goes_through_the_daemon(learners, daemon, tmp_path):
    require_hook("tc-ingress")
    u = learners[1]
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PKTLAB_SOCKET": daemon.path,
           "PYTHONPATH": REPO, "LC_ALL": "C.UTF-8", "MPLBACKEND": "Agg",
           "MPLCONFIGDIR": "/tmp"}
    r = subprocess.run(["setpriv", f"--reuid={u.pw_uid}", f"--regid={u.pw_gid}",
                        "--clear-groups", sys.executable, "-c", NOTEBOOK], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.splitlines()[-1])
    assert out["xdp_available"] and out["class"] == "RemoteLab" and out["html"]
    assert out["replay"] == {h: [10, 0, 0] for h in ("xdp", "tc-ingress", "tc-egress")}, out
    assert out["step"] == {"xdp": "agree", "tc-ingress": "explained", "tc-egress": "agree"}
    assert out["follow"] == "Belt" and out["compare"] == "BatchView"
    assert f"closed lab {out['name']}" in out["closed"] and "nothing left behind" in out["closed"]
    assert out["name"] not in [st.name for st in daemon.labs()]


# load: a small version of tools/bench_workshop.py -------------------------------------------------
def test_three_learners_replay_at_once_without_cross_talk(tmp_path, daemon):
    require_hook("xdp")
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "bench_workshop.py"),
                        "--learners", "3", "--socket", daemon.path, "--hooks", "xdp,tc-ingress",
                        "--json"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    assert doc["learners"] == 3 and doc["disagree"] == 0 and doc["lost"] == 0
    assert doc["foreign"] == 0 and doc["distinct_labs"] == 3 and doc["failed"] == [], doc


# where the daemon keeps its state -----------------------------------------------------------------
def _as(user, *argv):
    return subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                           "--clear-groups", *argv], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("trap", ["state dir made first", "socket dir theirs"])
def test_a_state_dir_a_learner_could_write_is_refused_a_roots_own_is_used(learners, trap):
    """A socket in a directory learners share (a sticky /tmp, or one a learner owns): a learner
    who made PATH.d first (its owner: they could plant a symlink where root writes
    sessions.json, locks and capture bytes), or who owns the directory (they could swap PATH.d
    after any check), gets a daemon that refuses to start; the control, a root-owned PATH.d in
    a sticky directory, is used."""
    import shutil
    u = learners[0]
    top = _public_dir()
    os.chmod(top, 0o755)
    shared = os.path.join(top, "shared")
    try:
        os.mkdir(shared)
        os.chmod(shared, 0o1777)                               # like /tmp
        if trap == "socket dir theirs":
            shared = os.path.join(shared, "theirs")
            assert _as(u, "mkdir", "-m", "0755", shared).returncode == 0
        path = os.path.join(shared, "pktlabd.sock")
        if trap == "state dir made first":
            assert _as(u, "mkdir", "-m", "0777", path + ".d").returncode == 0
        proc = subprocess.Popen([sys.executable, "-m", "pktlab.workshop.daemon", "--socket",
                                 path], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while proc.poll() is None and not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.1)
        listening = proc.poll() is None
        if listening:
            proc.terminate()                   # (it started in the trap: the test fails below)
        out, err = proc.communicate(timeout=60)
        assert not listening and proc.returncode == 2, (trap, err[-2000:])
        assert "pktlabd leaves it alone" in err and len(err.splitlines()) == 1, err
        assert not os.path.exists(path)
        shutil.rmtree(os.path.join(top, "shared"))
        os.mkdir(os.path.join(top, "shared"))                  # the control: nothing made first
        os.chmod(os.path.join(top, "shared"), 0o1777)
        d = Daemon(os.path.join(top, "shared"))
        try:
            st = os.lstat(d.path + ".d")
            assert st.st_uid == 0 and (st.st_mode & 0o7777) == 0o700
            assert _as(u, "touch", d.path + ".d/x").returncode != 0
        finally:
            assert d.stop() == []
    finally:
        shutil.rmtree(top, ignore_errors=True)


# the daemon's end ---------------------------------------------------------------------------------
def test_sigterm_closes_every_lab_the_daemon_opened(learners):
    require_hook("xdp")
    import shutil
    d = Daemon(_public_dir())
    a = Agent(learners[0], d.path)
    try:
        names = [a.ok("open_lab", hooks=XDP)["lab"], a.ok("open_lab", hooks=[])["lab"]]
        assert all(ns_exists(f"{n}-dut") for n in names)
    finally:
        left = d.stop()
        a.close()
        text = d.text()
        shutil.rmtree(d.dir, ignore_errors=True)
    assert left == [] and not any(ns_exists(f"{n}-dut") or ns_exists(f"{n}-src")
                                  for n in names)
    assert "stopped" in text
