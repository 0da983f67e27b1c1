"""pktlab conntrack (lesson 09): the socket table as a connection tracker, with real labs and
real flows.

What is asserted is what must hold, not exact counts (the LRU's free lists are per CPU):
- none and sk_lookup carry every flow (connected and echoed);
- hash connects at most max_entries flows: a flow's SYN passes only once its 5-tuple is in the
  map, entries are never removed, and the map holds max_entries; the rest are refused, and
  their SYNs' inserts fail (E2BIG);
- lru_hash echoes fewer flows than it connects: live flows were evicted;
- the TIME_WAIT trap: under sk_lookup the client's close never completes (its FIN is dropped
  at the server, where only a timewait socket would take it); under skc_lookup it does;
- bad input exits 2 before any lab; nothing is left behind, also after Ctrl-C.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, require_hook

pytestmark = pytest.mark.kernel

PY = sys.executable


def _labs_of(pid):
    """Labs process `pid` owns now (its state files): other engineers' labs come and go."""
    from pktlab.lab import STATE_DIR
    found = []
    for f in sorted(os.listdir(STATE_DIR)) if os.path.isdir(STATE_DIR) else []:
        try:
            with open(os.path.join(STATE_DIR, f)) as fh:
                st = json.load(fh)
        except (OSError, ValueError):
            continue
        if st.get("owner_pid") == pid:
            found.append(st["name"])
    return found


def _our_processes(labs):
    """Echo servers and clients of pktlab.sockets.flows still running for these labs."""
    ps = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True,
                        text=True).stdout.splitlines()
    return [ln for ln in ps if ("_server_main" in ln or "_client_main" in ln)
            and any(f"{lab}-" in ln for lab in labs)]


def _assert_nothing_left(labs):
    from pktlab.lab import leftovers
    assert labs, "the run made no lab?"
    for lab in labs:
        assert leftovers(lab) == [], lab
    assert _our_processes(labs) == []


def _conntrack(*args, timeout=120):
    """`pktlab conntrack ARGS`, watching which labs it makes."""
    p = subprocess.Popen([PY, "-m", "pktlab.cli", "conntrack", *args], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    labs = set()
    deadline = time.monotonic() + timeout
    try:
        while p.poll() is None and time.monotonic() < deadline:
            labs.update(_labs_of(p.pid))
            time.sleep(0.05)
        out, err = p.communicate(timeout=max(1, deadline - time.monotonic()))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return subprocess.CompletedProcess(p.args, p.returncode, out, err), labs


@pytest.fixture(scope="module")
def issue_run():
    """The issue's run, once: 1,000 flows, maps of 256 entries (about 6 s)."""
    require_hook("tc-ingress")
    r, labs = _conntrack("--flows", "1000", "--max-entries", "256", "--json")
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout), r, labs


def test_json_contract(issue_run):
    doc, r, _ = issue_run
    assert doc["flows"] == 1000 and doc["max_entries"] == 256
    assert set(doc["variants"]) == {"none", "hash", "lru_hash", "sk_lookup"}
    for v in doc["variants"].values():
        for key in ("connected", "echoed", "insert_failed", "evicted"):
            assert isinstance(v[key], int) and v[key] >= 0, key
    assert doc["leftovers"] == []
    assert r.returncode == (0 if doc["ok"] else 1)


def test_socket_lookup_and_no_firewall_carry_every_flow(issue_run):
    doc, r, _ = issue_run
    for policy in ("none", "sk_lookup"):
        v = doc["variants"][policy]
        assert v["connected"] == v["echoed"] == doc["flows"], (policy, v["failed"])
        assert v["insert_failed"] == v["evicted"] == 0
    assert r.returncode == 0, r.stderr


def test_hash_fills_and_refuses_new_flows(issue_run):
    doc, _, _ = issue_run
    h = doc["variants"]["hash"]
    assert h["connected"] <= doc["max_entries"]
    assert h["connected"] < doc["flows"]
    assert h["echoed"] <= h["connected"]
    # every refused flow sent at least one SYN, and each of its SYNs failed to insert
    assert h["insert_failed"] >= doc["flows"] - h["connected"]
    assert set(h["insert_errors"]) == {"E2BIG"}
    assert h["map_entries"] <= doc["max_entries"]
    assert h["evicted"] == 0


def test_lru_connects_more_than_it_echoes(issue_run):
    doc, _, _ = issue_run
    lr = doc["variants"]["lru_hash"]
    assert lr["insert_failed"] == 0           # an LRU insert always finds room
    assert lr["echoed"] < lr["connected"]
    assert lr["evicted"] > 0
    # a flow that connected but never echoed lost its entry: it was counted as evicted
    assert lr["evicted"] >= lr["connected"] - lr["echoed"]


def test_the_run_leaves_nothing_behind(issue_run):
    _, _, labs = issue_run
    assert len(labs) == 4                      # a fresh lab per policy
    _assert_nothing_left(labs)


def test_text_output_is_a_table_of_the_policies():
    require_hook("tc-ingress")
    r, labs = _conntrack("--flows", "40", "--max-entries", "8")
    assert r.returncode == 0, r.stderr
    for policy in ("none", "hash", "lru_hash", "sk_lookup"):
        assert f"\n  {policy} " in r.stdout
    assert "E2BIG" in r.stdout and "leftovers: none" in r.stdout
    _assert_nothing_left(labs)


@pytest.mark.parametrize("args,what", [
    (["--flows", "0"], "--flows"),
    (["--flows", "many"], "--flows"),
    (["--flows", "10001"], "--flows"),
    (["--max-entries", "0"], "--max-entries"),
    (["--max-entries", "-3"], "--max-entries"),
    (["--max-entries", "99999999"], "--max-entries"),
])
def test_bad_input_exits_2_before_any_lab(args, what, monkeypatch, capsys):
    from pktlab import cli
    from pktlab.sockets import experiment

    def no_lab(*a, **k):
        raise AssertionError("a lab was made for bad input")
    monkeypatch.setattr(experiment, "Lab", no_lab)
    assert cli.main(["conntrack", *args]) == 2
    err = capsys.readouterr().err
    assert what in err and len(err.strip().splitlines()) == 1


def test_more_flows_than_files_is_bad_input(monkeypatch, capsys):
    from pktlab import cli
    from pktlab.sockets import experiment, flows
    monkeypatch.setattr(flows, "fd_limit", lambda: 100)
    monkeypatch.setattr(experiment, "Lab", lambda *a, **k: pytest.fail("a lab was made"))
    assert cli.main(["conntrack", "--flows", "50"]) == 2
    assert "ulimit -Hn" in capsys.readouterr().err


def test_a_client_that_cannot_connect_is_said_and_exits_2(monkeypatch, capsys):
    """The echo server listens elsewhere: even the no-firewall run connects nothing."""
    require_hook("tc-ingress")
    from pktlab import cli
    from pktlab.sockets import experiment, flows
    monkeypatch.setattr(experiment, "EchoServer",
                        lambda lab, port: flows.EchoServer(lab, port + 1))
    made = []
    real_lab = experiment.Lab

    def lab(*a, **k):
        made.append(real_lab(*a, **k))
        return made[-1]
    monkeypatch.setattr(experiment, "Lab", lab)
    assert cli.main(["conntrack", "--flows", "5"]) == 2
    err = capsys.readouterr().err
    assert "could not connect" in err and "ECONNREFUSED" in err
    assert len(err.strip().splitlines()) == 1
    _assert_nothing_left([m.name for m in made])


def test_a_busy_server_port_is_said(lab):
    from pktlab.errors import LabError
    from pktlab.lab import lab_processes
    from pktlab.sockets.flows import EchoServer
    with EchoServer(lab, 7100) as first:
        with pytest.raises(LabError, match="port 7100 is busy"):
            EchoServer(lab, 7100)
        assert first.running()
    assert not first.running()
    assert lab_processes(lab.state) == []


def test_the_timewait_trap_and_its_fix():
    require_hook("tc-ingress")
    from pktlab.sockets import format_timewait, timewait_trap
    got = timewait_trap(wait=1.0)
    broken, fixed = got["sk_lookup"], got["skc_lookup"]
    # the server closed first: its socket is a timewait socket (FIN_WAIT2 substate)
    assert broken["server_socket_before"] == fixed["server_socket_before"] == "FIN_WAIT2"
    # sk_lookup: the client's FIN is dropped at the server, its close never completes
    assert not broken["closed"] and broken["client_state"] == "LAST_ACK"
    assert broken["fin_retransmits"] >= 1
    assert broken["no_socket_at_server"] >= 2          # the FIN and its retransmits
    assert broken["server_socket_after"] == "FIN_WAIT2"
    assert broken["timewait_found"] == 0
    # skc_lookup finds the timewait socket (not a full socket): the close completes
    assert fixed["closed"] and fixed["client_state"] == "CLOSE"
    assert fixed["timewait_found"] >= 1 and fixed["no_socket_at_server"] == 0
    assert fixed["server_socket_after"] == "TIME_WAIT"
    assert "TIME_WAIT" in fixed["server_states"]
    assert broken["leftovers"] == fixed["leftovers"] == []
    text = format_timewait(got)
    assert "LAST_ACK" in text and "TIME_WAIT" in text


def test_plot_returns_the_figure(issue_run, tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pktlab.sockets import plot_conntrack
    doc, _, _ = issue_run
    fig = plot_conntrack(doc)
    fig.savefig(tmp_path / "ct.png")
    assert (tmp_path / "ct.png").read_bytes()[:4] == b"\x89PNG"
    plt.close(fig)
    fig2, ax = plt.subplots()
    assert plot_conntrack(doc, ax=ax) is fig2
    plt.close(fig2)


def test_ctrl_c_leaves_nothing_behind():
    """SIGINT while the hash policy's refused flows wait out their SYN retries."""
    require_hook("tc-ingress")
    p = subprocess.Popen([PY, "-m", "pktlab.cli", "conntrack", "--flows", "300",
                          "--max-entries", "16"], cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    labs, deadline = [], time.monotonic() + 60
    try:
        while time.monotonic() < deadline and p.poll() is None:
            for lab in _labs_of(p.pid):
                if lab not in labs:
                    labs.append(lab)
            # the second lab is hash's: interrupt once its client is running
            if len(labs) >= 2 and any("_client_main" in ln for ln in _our_processes(labs[1:])):
                break
            time.sleep(0.02)
        assert p.poll() is None, f"the run ended before the moment: {p.stderr.read()}"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    assert "interrupted" in err
    _assert_nothing_left(labs)
