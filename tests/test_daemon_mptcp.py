"""pktlabd's ops for lessons 00, 04, 06 and 10 (pktlab/workshop/opsmptcp.py), for real: a daemon
started here, learners as real non-root uids (tests/test_workshop_daemon.py's fixtures), real
MPTCP transfers, a real bench, the doctor run by the daemon.

Each test next to its control: a learner's MPTCP run or bench killed mid-run leaves nothing
(its lab is the learner's, tagged: the daemon reaps it even when the session is SIGKILLed),
while the other learner's lab stays; the doctor's probe labs count in the learner's quota
(refused at the quota, run one lab below it); bad input is refused in one line before any lab,
where the same op with good input runs.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import REPO, require_hook, require_root
from test_workshop_daemon import (Agent, Daemon, _public_dir, agents, daemon,  # noqa: F401
                                  learners, ns_exists)


def _labs_of(daemon, uid):
    from pktlab.workshop.labs import tag_of
    return [st.name for st in daemon.labs() if (tag_of(st) or {}).get("uid") == uid]


def _wait_for_lab(daemon, uid, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = _labs_of(daemon, uid)
        if got:
            return got[0]
        time.sleep(0.05)
    raise AssertionError(f"no lab of uid {uid} appeared in {timeout} s:\n{daemon.text()[-2000:]}")


def _session_labs(session, uid):
    """Every lab the session process owns (state files: its pid), each checked to be tagged
    with the learner's uid (an untagged one would outlive a SIGKILLed session)."""
    from pktlab.lab import list_labs
    from pktlab.workshop.labs import tag_of
    owned = [st for st in list_labs() if st.owner_pid == session]
    untagged = [st.name for st in owned if (tag_of(st) or {}).get("uid") != uid]
    assert not untagged, f"labs of the session not tagged as the learner's: {untagged}"
    return [st.name for st in owned]


def _all_gone(session, names, timeout=40):
    from pktlab.lab import leftovers, list_labs
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [st.name for st in list_labs() if st.owner_pid == session]
        left += [n for n in names if leftovers(n)]
        if not left:
            return []
        time.sleep(0.1)
    return left


def _gone(lab, timeout=40):
    from pktlab.lab import leftovers
    deadline = time.monotonic() + timeout
    while (leftovers(lab) or ns_exists(f"{lab}-dut")) and time.monotonic() < deadline:
        time.sleep(0.1)
    return leftovers(lab)


# MPTCP ------------------------------------------------------------------------------------------
def test_a_learners_mptcp_run_is_the_real_thing_rebuilt_client_side(agents, learners, daemon):
    require_hook("sock-ops")
    a = agents(0)
    got = a.ok("mptcp_run", paths=2, policy="none", seconds=1.5)
    from pktlab.mptcp import MptcpRun
    run = MptcpRun.from_dict(got)
    d = run.doc
    assert d["transfer"]["complete"] and d["leftovers"] == [], d
    assert d["subflows"]["established"] == 2 and d["paths"]["2"]["subflows"] == 1, d
    # the tokens the sock-ops hook read are the ones the server's socket reports
    conns = run.connections()
    assert d["tokens"]["dut"] in {f"{c.tokens.get('dut', 0):08x}" for c in conns}, d["tokens"]
    assert run.joins and all(j["option"] for j in run.joins)
    from pktlab.lessons.mptcpviews import MptcpView
    view = MptcpView(run)
    assert "subflow" in view._repr_html_() and view.join_option(0)[:1] == b"\x1e"
    assert _labs_of(daemon, learners[0].pw_uid) == []        # the run's lab went with it
    # the control: bad input, refused in one line, before any lab
    for bad, word in ((dict(paths=5), "paths"), (dict(policy="no-path=9"), "path"),
                      (dict(seconds=600), "seconds"), (dict(drop=[1, "x", 2]), "drop"),
                      (dict(lab="pw0000"), "no argument"), (dict(netns="x"), "no argument")):
        r = a.call("mptcp_run", **bad)
        assert not r["ok"] and word in r["message"] and "\n" not in r["message"], (bad, r)


@pytest.mark.parametrize("how", ["client killed", "session SIGKILLed"])
def test_a_learner_gone_mid_mptcp_run_leaves_nothing(agents, learners, daemon, how):
    require_hook("sock-ops")
    a, b = agents(0), agents(1)
    keep = b.ok("open_lab", hooks=[])["lab"]                 # the control: a learner who stays
    session = a.ok("status")["you"]["session"]
    a.send(cmd="call", op="mptcp_run", args={"paths": 3, "seconds": 8}, conn=0)
    lab = _wait_for_lab(daemon, learners[0].pw_uid)           # the run's lab: theirs, tagged
    time.sleep(2.5)                                           # in the middle of the transfer
    assert ns_exists(f"{lab}-dut")
    names = _session_labs(session, learners[0].pw_uid)        # and no other lab of the run's
    if how == "client killed":
        a.proc.kill()
        a.proc.wait()
    else:
        os.kill(session, signal.SIGKILL)                      # nothing unwinds: the reaper
    assert _gone(lab) == [] and _all_gone(session, names) == []
    assert _labs_of(daemon, learners[0].pw_uid) == []
    assert ns_exists(f"{keep}-dut") and b.ok("labs")["labs"][0]["lab"] == keep


# the bench --------------------------------------------------------------------------------------
def test_a_learners_bench_runs_in_their_lab_and_comes_back_as_data(agents, learners, daemon):
    require_hook("xdp")
    a = agents(0)
    # live only (the micro bench compiles eight programs; lesson 06 runs it through pktlabd)
    res = a.ok("bench", points=["xdp_drop"], sizes=[64], micro=False)
    assert res["leftovers"] == [] and "micro" not in res, res.keys()
    row = res["live"]["by_size"]["64"]
    assert row["xdp_drop"]["pps"] > 0 and res["live"]["errors"] == {}, row
    from pktlab.bench import format_text, plot
    assert "xdp_drop" in format_text(res) or "XDP drop" in format_text(res)
    plot(res)                                                  # the chart, built here
    # the controls: what the bench is never given, and how long it may take
    for bad, word in ((dict(points=["eth0"]), "points"), (dict(sizes=[9000]), "sizes"),
                      (dict(points=["xdp_drop"], sizes=[64], iface="lo"), "no argument"),
                      (dict(points=list(_all_points()), sizes=[64, 512, 1500], long=True),
                       "may take")):
        r = a.call("bench", **bad)
        assert not r["ok"] and word in r["message"], (bad, r)


def _all_points():
    from pktlab.bench.spec import POINTS
    return POINTS


def test_a_learner_killed_mid_bench_leaves_nothing(agents, learners, daemon):
    require_hook("tc-ingress")
    a, b = agents(0), agents(1)
    keep = b.ok("open_lab", hooks=[])["lab"]
    session = a.ok("status")["you"]["session"]
    a.send(cmd="call", op="bench", args={"points": ["tc_drop", "socket_drop"],
                                         "sizes": [64, 512], "micro": False}, conn=0)
    lab = _wait_for_lab(daemon, learners[0].pw_uid)
    time.sleep(3)                                             # generators running
    names = _session_labs(session, learners[0].pw_uid)
    a.proc.kill()
    a.proc.wait()
    assert _gone(lab) == [] and _all_gone(session, names) == []
    assert _labs_of(daemon, learners[0].pw_uid) == []
    assert ns_exists(f"{keep}-dut") and b.ok("labs")["labs"][0]["lab"] == keep
    # no generator or reader of that bench is left running
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert lab not in ps


# the doctor and the kprobe mechanisms ----------------------------------------------------------
def test_the_doctor_through_the_daemon_runs_in_the_learners_labs(agents, learners, daemon):
    require_hook("sock-ops")
    a = agents(0)
    held = [a.ok("open_lab", hooks=[])["lab"] for _ in range(3)]       # the quota: 3 labs
    r = a.call("doctor", refresh=True)
    assert not r["ok"] and "lab quota" in r["message"], r    # its probe labs are theirs
    a.ok("close_lab", lab=held.pop())
    got = a.ok("doctor", refresh=True)                       # the control: one lab below it
    rep = got["report"]
    assert not got["cached"] and rep["ok"]
    for h in ("xdp", "tc-ingress", "sock-ops", "cgroup-ingress"):
        assert rep["hooks"][h]["available"], (h, rep["hooks"][h])
    assert a.ok("doctor")["cached"]                          # once per daemon
    # a learner's refresh right after is the kept report (a loop of them held every other
    # learner's doctor behind the daemon's doctor lock); the control: root's refresh runs it
    again = a.ok("doctor", refresh=True)
    assert again["cached"] and again["report"] == rep, again["cached"]
    from pktlab.workshop.client import Client
    with Client(daemon.path) as root:
        assert root.call("doctor", {"refresh": True})[0]["cached"] is False
    assert _labs_of(daemon, learners[0].pw_uid) == sorted(held) or \
        sorted(_labs_of(daemon, learners[0].pw_uid)) == sorted(held)
    from pktlab.kernel.hooks import choose_kprobe_mechanism
    mech = a.ok("kprobe_mechanisms")
    assert mech["used"] == choose_kprobe_mechanism()[0] and mech["order"][0] == "kprobe"
    assert a.call("kprobe_mechanisms", hook="kprobe")["ok"] is False


_AS_LEARNER = textwrap.dedent("""
    import json, pktlab.lessons as pl
    out = {"doctor": pl.doctor_table()._repr_html_(), "hooks": pl.hooks_table()._repr_html_(),
           "mech": pl.mechanism_table()._repr_html_(),
           "sockops": [pl.hook_available("sock-ops"), pl.why_not("sock-ops")]}
    print(json.dumps(out))
""")


def test_the_lessons_tables_say_what_the_daemon_can_do(learners, daemon):
    """Lessons 00 and 04's tables as a learner sees them: the daemon's doctor, marked as such;
    the control: the same learner without a daemon is told it needs one (or root)."""
    require_hook("sock-ops")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PKTLAB_SOCKET": daemon.path,
           "PYTHONPATH": REPO, "LC_ALL": "C.UTF-8", "MPLBACKEND": "Agg"}
    u = learners[1]
    cmd = ["setpriv", f"--reuid={u.pw_uid}", f"--regid={u.pw_gid}", "--clear-groups",
           sys.executable, "-c", _AS_LEARNER]
    import json
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.splitlines()[-1])
    text = json.dumps(out)
    assert "through pktlabd" in out["doctor"] and "through pktlabd" in out["hooks"]
    assert "needs root" not in text and "need root" not in text
    assert out["sockops"] == [True, ""] and "runs as <b>" in out["mech"]
    env["PKTLAB_SOCKET"] = os.path.join(daemon.dir, "nobody.sock")
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    out = json.loads(r.stdout.splitlines()[-1])
    assert out["sockops"][0] is False and "root" in out["sockops"][1]
    assert "through pktlabd" not in out["doctor"]


# the command line, as a learner ------------------------------------------------------------------
def test_the_cli_mptcp_and_bench_go_through_the_daemon(learners, daemon):
    """`pktlab mptcp` and `pktlab bench` as a learner: the daemon runs them in a lab of the
    learner's, the document and the chart are made here. The controls: the daemon's own limit
    (a transfer of 30 s, which root may run) is one line, exit 2, before any lab; without a
    daemon the learner is told what is missing."""
    require_hook("sock-ops")
    require_hook("xdp")
    import json
    from test_workshop_daemon import _cli
    u = learners[1]
    r = _cli(u, daemon.path, "mptcp", "--seconds", "1", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    assert doc["transfer"]["complete"] and doc["leftovers"] == [] and not doc["events_lost"]
    r = _cli(u, daemon.path, "mptcp", "--seconds", "30")
    assert r.returncode == 2 and r.stdout == "" and len(r.stderr.splitlines()) == 1, r
    assert "seconds" in r.stderr and "Traceback" not in r.stderr
    assert _labs_of(daemon, u.pw_uid) == []
    out = _public_dir()
    try:
        os.chmod(out, 0o777)
        chart = os.path.join(out, "bench.png")
        r = _cli(u, daemon.path, "bench", "--only", "xdp_drop", "--plot", chart, "--json")
        assert r.returncode == 0, r.stderr[-2000:]
        res = json.loads(r.stdout)
        assert res["leftovers"] == [] and "micro" not in res and res["plot"] == chart
        assert sorted(res["live"]["by_size"]) == ["1500", "512", "64"]
        assert all(row["xdp_drop"]["pps"] > 0 for row in res["live"]["by_size"].values())
        st = os.stat(chart)                               # drawn here, as the learner
        assert st.st_size > 10_000 and st.st_uid == u.pw_uid
    finally:
        import shutil
        shutil.rmtree(out, ignore_errors=True)
    assert _labs_of(daemon, u.pw_uid) == []
    for args in (["mptcp", "--seconds", "1"], ["bench", "--only", "micro"]):
        r = _cli(u, os.path.join(daemon.dir, "nobody.sock"), *args)
        assert r.returncode == 2 and "no daemon listens on" in r.stderr, r
        assert len(r.stderr.splitlines()) == 1
