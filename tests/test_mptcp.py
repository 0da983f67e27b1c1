"""Lesson 10 and `pktlab mptcp`: real MPTCP connections over two or three paths of a lab, the
sock-ops hook on the lab's cgroup, the path policy at dut ingress.

Every run here is real: a lab, extra veth pairs, MPTCP endpoints through netlink, a server and
a client in the lab's cgroup sending paced data with IPPROTO_MPTCP, the programs loaded and
attached. Numbers that depend on timing (when a retransmitted SYN comes, how long an RTO is)
are asserted as the inequalities that hold (a SYN retried after about a second, each RTO
longer than the one before), never to the millisecond.
"""

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO, require_hook, require_root

RUNS = {}


def require_sockops():
    """Skip where the doctor found the sock-ops hook missing on this machine; but a program
    that attached and missed callbacks is pktlab's bug, not the machine's: that fails."""
    require_root()
    from conftest import doctor_report
    info = doctor_report()["hooks"]["sock-ops"]
    if not info["available"] and info["why"].startswith("attached"):
        pytest.fail(f"the sock-ops hook attached but its program missed callbacks: "
                    f"{info['why']}", pytrace=False)
    require_hook("sock-ops")


def mptcp_run(paths, policy, **kw):
    """One run per (paths, policy, options), shared by the tests that read it."""
    key = (paths, policy, tuple(sorted(kw.items())))
    if key not in RUNS:
        from pktlab.mptcp import run_mptcp
        RUNS[key] = run_mptcp(paths=paths, policy=policy, seconds=kw.pop("seconds", 3.0), **kw)
    return RUNS[key]


def lab_namespaces(prefix="plmp"):
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return sorted(ln.split()[0] for ln in out.splitlines() if ln.startswith(prefix))


# --- layouts: the Python mirrors are the compiler's structs ---------------------------------------

def _compiler_leaf(struct_name, header):
    """The struct as clang lays it out: bcc's ctypes Leaf of a map holding it."""
    from pktlab.kernel import bpf
    text = (f'#include <uapi/linux/bpf.h>\n#include "{header}"\n'
            f"BPF_ARRAY(layout, struct {struct_name}, 1);\n"
            "int f(struct __sk_buff *skb) { return 0; }\n")
    prog = bpf.compile_program(None, "f", "SCHED_CLS", text=text)
    try:
        return prog.table("layout").Leaf
    finally:
        bpf.release(prog)


def _layout(t, prefix=""):
    out = []
    for name, ftype in t._fields_:
        off = getattr(t, name).offset
        if isinstance(ftype, type) and issubclass(ftype, ctypes.Structure):
            out += [(f"{prefix}{name}.{n}", off + o, s) for n, o, s in _layout(ftype)]
        else:
            out.append((prefix + name, off, ctypes.sizeof(ftype)))
    return out


@pytest.mark.parametrize("mirror,struct_name,header", [
    ("pktlab.mptcp.sockops:Event", "pl_sockops_ev", "sockops.h"),
    ("pktlab.mptcp.policy:Cfg", "pl_mp_cfg", "mptcp_policy.h"),
    ("pktlab.mptcp.policy:JoinEvent", "pl_mp_join_ev", "mptcp_policy.h"),
    ("pktlab.mptcp.policy:PathStat", "pl_mp_path_stat", "mptcp_policy.h"),
])
def test_python_mirrors_match_the_compilers_layout(mirror, struct_name, header):
    require_root()
    import importlib
    mod, name = mirror.split(":")
    ours = getattr(importlib.import_module(mod), name)
    theirs = _compiler_leaf(struct_name, header)
    assert ctypes.sizeof(ours) == ctypes.sizeof(theirs)
    assert [(n.split(".")[-1], o, s) for n, o, s in _layout(ours)] == \
        [(n.split(".")[-1], o, s) for n, o, s in _layout(theirs)]
    assert ctypes.sizeof(ours) % 8 == 0, "the header promises no implicit tail padding"


# --- bad input: exit 2, one line, before any lab --------------------------------------------------

@pytest.mark.parametrize("argv,says", [
    (["--paths", "4"], "invalid choice: 4"),
    (["--paths", "1"], "invalid choice: 1"),
    (["--policy", "no-path=1"], "path 1 carries the connection's first subflow"),
    (["--policy", "no-path=3"], "this lab has paths 1..2"),
    (["--paths", "3", "--policy", "no-path=4"], "this lab has paths 1..3"),
    (["--policy", "max-joins=-1"], "max-joins=-1: use 0..1024"),
    (["--policy", "max-joins=many"], "not a whole number"),
    (["--policy", "max-joins=1,max-joins=2"], "max-joins given twice"),
    (["--policy", "only-from=10.200.0.1/24"], "host bits set"),
    (["--policy", "sometimes"], "is not a rule"),
    (["--policy", "no-subflows=2"], "no rule 'no-subflows'"),
    (["--drop-path", "3"], "not one of this lab's paths 1..2"),
    (["--path-down", "0"], "not one of this lab's paths 1..2"),
    (["--drop-path", "1", "--path-down", "2"], "not allowed with"),
    (["--seconds", "0.1"], "a transfer lasts 0.5..60 s"),
    (["--seconds", "nan"], "a transfer lasts"),
])
def test_bad_input_exits_2_before_any_lab(argv, says, monkeypatch, capsys):
    from pktlab.cli import main
    from pktlab.lab import Lab

    def no_lab(self):
        raise AssertionError("a lab was built for bad input")
    monkeypatch.setattr(Lab, "up", no_lab)
    assert main(["mptcp", *argv]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1, err


def test_policy_entries_that_make_no_sense_are_refused():
    from pktlab.mptcp import check_entry, parse_policy
    from pktlab.mptcp.policy import Cfg, cfg_struct, defines
    nolimit = defines()["NO_LIMIT"]
    assert check_entry(cfg_struct(parse_policy("no-path=3,max-joins=1", 3)), 3) is None
    assert check_entry(cfg_struct(parse_policy("only-from=10.200.0.0/24", 2)), 2) is None
    assert "path 1 carries the first subflow" in check_entry(Cfg(1 << 1, nolimit, 0, 0), 2)
    assert "bit 0" in check_entry(Cfg(1, nolimit, 0, 0), 2)
    assert "beyond 2" in check_entry(Cfg(1 << 3, nolimit, 0, 0), 2)
    assert "above 1024" in check_entry(Cfg(0, 5000, 0, 0), 2)
    mask = int.from_bytes(socket.inet_aton("255.0.255.0"), "little")
    assert "not a netmask" in check_entry(Cfg(0, nolimit, 0, mask), 2)
    net = int.from_bytes(socket.inet_aton("10.200.0.1"), "little")
    mask = int.from_bytes(socket.inet_aton("255.255.255.0"), "little")
    assert "host bits" in check_entry(Cfg(0, nolimit, net, mask), 2)


# --- the lab's extra interfaces -------------------------------------------------------------------

def test_extra_veths_are_the_labs_own_and_go_with_it(lab):
    from pktlab.errors import LabError
    from pktlab.lab import ExtraVeth, LabState, check_interface
    from pktlab.lab.nl import IPRoute
    v = ExtraVeth(lab, 2, "10.201.0.1", "10.201.0.2")
    s_if, d_if = v.ifname("src"), v.ifname("dut")
    assert len(s_if) <= 15 and s_if == f"{lab.name}s2"
    check_interface(s_if, ns=lab.ns_src)
    check_interface(d_if, ns=lab.ns_dut)
    with pytest.raises(LabError, match="is not lab .*'s interface"):
        check_interface(f"{lab.name}s3", ns=lab.ns_src)
    with pytest.raises(LabError, match="exists already"):
        ExtraVeth(lab, 2)
    r = subprocess.run(["ip", "netns", "exec", lab.ns_src, "ping", "-c1", "-W2", "10.201.0.2"],
                       capture_output=True)
    assert r.returncode == 0, "the extra pair carries traffic"
    v.close()
    v.close()
    with IPRoute(netns=lab.ns_src) as ipr:
        assert not ipr.link_lookup(ifname=s_if)
    assert "veths" not in LabState.load(lab.name).extra
    with pytest.raises(LabError):
        check_interface(s_if, ns=lab.ns_src)
    # a crash leaves a recorded pair: removal (what stale cleaning runs) deletes it with the
    # lab's veth, before the namespaces, from the record alone
    from pktlab.lab.removal import _delete_veth
    from pktlab.lab.state import close_all, open_proven
    w = ExtraVeth(lab, 3)
    w._held = False              # as if its owner died: nothing of this process closes it
    st = LabState.load(lab.name)
    fds = open_proven(st)
    try:
        _delete_veth(st, fds)
    finally:
        close_all(fds)
    with IPRoute(netns=lab.ns_src) as ipr:
        assert not ipr.link_lookup(ifname=f"{lab.name}s3")
        assert not ipr.link_lookup(ifname=lab.if_src)


# --- real transfers under a policy ----------------------------------------------------------------

@pytest.mark.parametrize("paths,policy,established,refused", [
    (2, "none", 2, 0),
    (2, "no-path=2", 1, 1),
    (3, "none", 3, 0),
    (3, "no-path=3", 2, 1),
    (3, "max-joins=1", 2, 1),
    (3, "only-from=10.200.0.0/24", 1, 2),
])
def test_subflows_per_policy(paths, policy, established, refused):
    require_sockops()
    doc = mptcp_run(paths, policy).doc
    assert doc["policy"] == policy
    assert doc["subflows"] == {"established": established, "refused": refused}, doc["joins"]
    assert doc["transfer"]["complete"], doc["transfer"]
    assert doc["transfer"]["received"] == doc["transfer"]["sent"] > 0
    assert doc["leftovers"] == [] and doc["events_lost"] == 0
    # per path: the refused paths carry no subflow, every other path exactly one
    refused_paths = {j["path"] for j in doc["joins"] if j["verdict"] == "drop"}
    assert len(refused_paths) == refused
    for p, v in doc["paths"].items():
        assert v["subflows"] == (0 if int(p) in refused_paths else 1), (p, v)
    assert doc["paths"]["1"]["payload"] > doc["transfer"]["sent"] * 0.5
    assert sum(v["payload"] for v in doc["paths"].values()) >= doc["transfer"]["sent"]


@pytest.mark.parametrize("paths,policy", [(2, "no-path=2"), (3, "max-joins=1")])
def test_a_refused_join_is_retried_and_counted_once(paths, policy):
    """Its SYNs come back about a second apart (the SYN's initial RTO, then linear timeouts);
    each is the same join (token + 4-tuple): refused again, never counted as a new one."""
    require_sockops()
    res = mptcp_run(paths, policy)
    drops = [j for j in res.doc["joins"] if j["verdict"] == "drop"]
    assert len(drops) == 1
    times = drops[0]["syn_times_s"]
    assert len(times) >= 3, times
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(0.8 < g < 2.5 for g in gaps), gaps
    syns = [j for j in res.joins if j["verdict"] == "drop"]
    assert [j["again"] for j in syns] == [False] + [True] * (len(syns) - 1)
    assert {j["sport"] for j in syns} == {syns[0]["sport"]}
    # the join asks for the server's token (its MPTCP_INFO token), the same on every SYN
    assert {f"{j['token']:08x}" for j in syns} == {res.doc["tokens"]["dut"]}
    # sock_ops saw the client's side of it: a subflow that never got established
    conn = res.connections()[0]
    stuck = [s for s in conn.on("src") if not s.established]
    assert len(stuck) == 1 and stuck[0].local.split(":")[1] == str(syns[0]["sport"])


def test_sockops_timeline_has_the_callbacks_and_shows_the_byte_order_trap():
    require_sockops()
    res = mptcp_run(2, "none")
    counts = res.doc["sockops"]
    for cb in ("TCP_LISTEN_CB", "TCP_CONNECT_CB", "ACTIVE_ESTABLISHED_CB",
               "PASSIVE_ESTABLISHED_CB", "STATE_CB", "RTT_CB", "TIMEOUT_INIT", "RWND_INIT"):
        assert counts.get(cb, 0) > 0, (cb, counts)
    assert counts["ACTIVE_ESTABLISHED_CB"] == 2 and counts["PASSIVE_ESTABLISHED_CB"] == 2
    ev = res.events
    assert len([e for e in ev if e["op"] == "RTT_CB"]) == counts["RTT_CB"]
    # the program turned its callbacks on itself: none on entry at connect, set (0 = done),
    # and every later callback of that socket carries them
    connect = next(e for e in ev if e["op"] == "TCP_CONNECT_CB")
    assert connect["cb_flags"] == 0 and connect["set_ret"] == 0
    later = [e for e in ev if e["cookie"] == connect["cookie"] and e["op"] == "RTT_CB"]
    assert later and all(e["cb_flags"] & 0x8 for e in later)     # BPF_SOCK_OPS_RTT_CB_FLAG
    # state changes as (old, new) pairs: the client's subflows go SYN_SENT -> ESTABLISHED
    states = [(e["side"], e["args"][0], e["args"][1]) for e in ev if e["op"] == "STATE_CB"]
    assert states.count(("src", 2, 1)) == 2, states
    assert any(new == 7 for _side, _old, new in states), "a close is seen"
    # the byte-order trap, shown: the port is big-endian in the HIGH half of remote_port
    trap = res.doc["byte_order"]
    assert trap["ntohs(raw)"] == 0 and trap["bswap32(raw)"] == 7200
    assert int(trap["remote_port_raw"], 16) == socket.htons(7200) << 16
    client_side = [e for e in ev if e["side"] == "src" and e["op"] == "TCP_CONNECT_CB"]
    assert all(e["remote_port"] == 7200 for e in client_side)
    server_side = [e for e in ev if e["side"] == "dut" and e["op"] == "PASSIVE_ESTABLISHED_CB"]
    assert all(e["local_port"] == 7200 for e in server_side), "local_port is host order"
    from pktlab.mptcp import timeline_text
    text = timeline_text(ev)
    assert "MPTCP connection, tokens" in text and "RTT_CB" in text and "SYN_SENT" in text


def test_subflows_group_by_token_as_mptcp_info_says():
    require_sockops()
    res = mptcp_run(2, "none")
    conns = res.connections()
    assert len(conns) == 1
    c = conns[0]
    client, server = res.client, res.server
    assert c.tokens == {"src": client["info"]["token"], "dut": server["info"]["token"]}
    # each side's subflows carry the peer's token too (sha256 of the peer's key)
    assert {s.peer_token for s in c.on("src")} == {server["info"]["token"]}
    assert {s.peer_token for s in c.on("dut")} == {client["info"]["token"]}
    # as many subflows per side as the socket itself lists (MPTCP_INFO counts the extra ones)
    assert len(c.on("src")) == len(client["subflows"]) == client["info"]["subflows"] + 1 == 2
    assert len(c.on("dut")) == len(server["subflows"]) == 2
    assert sorted(s.subflow_id for s in c.on("src")) == [1, 2]
    ours = sorted((s.local, s.remote) for s in c.on("src"))
    theirs = sorted((":".join(map(str, sf["local"])), ":".join(map(str, sf["remote"])))
                    for sf in client["subflows"])
    assert ours == theirs
    # the listener is not part of the connection: it stands apart, with its TCP_LISTEN_CB
    from pktlab.mptcp import group
    _conns, others = group(res.events)
    assert any("TCP_LISTEN_CB" in s.ops() for s in others)
    assert not any("TCP_LISTEN_CB" in s.ops() for s in c.subflows)


def test_rto_backs_off_while_a_path_is_dark_and_mptcp_moves_the_data():
    require_sockops()
    res = mptcp_run(2, "none", seconds=6.0, drop=(1, 1.0, 3.0))
    doc = res.doc
    assert doc["transfer"]["complete"] and doc["leftovers"] == []
    rto = [r for r in doc["rto"] if r["side"] == "src" and r["path"] == 1]
    assert len(rto) >= 3, doc["rto"]
    assert [r["retransmits"] for r in rto] == list(range(len(rto)))
    jiffies = [r["rto_jiffies"] for r in rto]
    assert all(b >= 1.8 * a for a, b in zip(jiffies, jiffies[1:])), jiffies
    assert all(0 < r["t_s"] < 3.2 for r in rto), "while the path was dark"
    # the data went on over path 2 (a paced transfer keeps to path 1 when nothing is lost)
    quiet = mptcp_run(2, "none").doc
    assert quiet["paths"]["2"]["payload"] < 0.05 * quiet["transfer"]["sent"]
    assert doc["paths"]["2"]["payload"] > 0.2 * doc["transfer"]["sent"], doc["paths"]


def test_a_path_down_mid_transfer_is_handled():
    require_sockops()
    doc = mptcp_run(2, "none", down=(1, 1.0)).doc
    assert doc["transfer"]["complete"] and doc["leftovers"] == []
    assert [m["what"] for m in doc["marks"]] == ["path 1 down"]
    assert doc["paths"]["2"]["payload"] > 0.3 * doc["transfer"]["sent"], doc["paths"]


def test_no_path_left_is_a_finding_said_in_one_line(capsys):
    """Path 1 down for good and path 2 refused by the policy: the transfer cannot complete;
    the run says so (exit 1), and leaves nothing behind."""
    require_sockops()
    from pktlab.cli import main
    assert main(["mptcp", "--policy", "no-path=2", "--path-down", "1", "--seconds", "2",
                 "--json"]) == 1
    import json
    doc = json.loads(capsys.readouterr().out)
    assert not doc["transfer"]["complete"]
    assert "no progress within" in doc["transfer"]["error"]
    assert doc["leftovers"] == [] and lab_namespaces() == []


def test_mptcp_disabled_is_said_with_the_fix(lab, capsys, monkeypatch):
    require_sockops()
    from pktlab.errors import EnvironmentProblem
    from pktlab.lab import LabState, netns
    from pktlab.mptcp import run_mptcp
    netns.write_sysctl(lab.ns_dut, "net.mptcp.enabled", 0)
    with pytest.raises(EnvironmentProblem) as e:
        run_mptcp(paths=2, lab=lab)
    msg = str(e.value)
    assert "net.mptcp.enabled" in msg and "dut" in msg and "ENOPROTOOPT" in msg
    assert f"ip netns exec {lab.ns_dut} sysctl -w net.mptcp.enabled=1" in msg
    assert "veths" not in LabState.load(lab.name).extra, "nothing was added"
    # through the command: exit 2, one line, and its own lab removed
    from pktlab.cli import main
    from pktlab.mptcp import run as mrun

    class OffLab(mrun.Lab):
        def _build(self):
            super()._build()
            netns.write_sysctl(self.ns_src, "net.mptcp.enabled", 0)
    monkeypatch.setattr(mrun, "Lab", OffLab)
    assert main(["mptcp"]) == 2
    err = capsys.readouterr().err.strip()
    assert "MPTCP is disabled" in err and "src" in err and len(err.splitlines()) == 1
    assert lab_namespaces() == []


def test_the_server_says_enoprotoopt_in_one_line(lab):
    """The ends' own refusal, if MPTCP goes off after the check: the server says why."""
    require_sockops()
    from pktlab.errors import EnvironmentProblem
    from pktlab.lab import netns
    from pktlab.mptcp.peers import Server
    netns.write_sysctl(lab.ns_dut, "net.mptcp.enabled", 0)
    with pytest.raises(EnvironmentProblem, match="ENOPROTOOPT|Protocol not available"):
        Server(lab, None, 7200)


def test_policy_switched_live_and_nonsense_refused_before_the_map(lab):
    require_sockops()
    from pktlab.mptcp import Paths, PathPolicy
    from pktlab.mptcp.policy import Cfg, defines
    with Paths(lab, 3) as paths, PathPolicy(lab, paths, "no-path=3") as pol:
        table = pol.prog.table("cfg")
        assert table[ctypes.c_uint32(0)].no_path_mask == 1 << 3
        pol.set("max-joins=1")
        got = table[ctypes.c_uint32(0)]
        assert (got.no_path_mask, got.max_joins) == (0, 1)
        with pytest.raises(ValueError, match="path 1 carries the first subflow"):
            pol.write(Cfg(1 << 1, defines()["NO_LIMIT"], 0, 0))
        with pytest.raises(ValueError, match="this lab has paths 1..3"):
            pol.set("no-path=4")
        assert table[ctypes.c_uint32(0)].max_joins == 1, "the map kept the last good entry"
        cfg = paths.config()
        assert cfg["src"]["limits"] == {"subflows": 2, "add_addr_accepted": 2}
        assert sorted(e["addr"] for e in cfg["dut"]["endpoints"]) == ["10.201.0.2", "10.202.0.2"]
        assert all(e["flags"] == ["signal"] for e in cfg["dut"]["endpoints"])
        assert cfg["src"]["endpoints"] == []
    from pktlab.sockets.leftovers import _tc_left
    assert _tc_left(lab) == []


def test_ctrl_c_mid_run_removes_everything():
    require_sockops()
    before = lab_namespaces()
    p = subprocess.Popen([sys.executable, "-m", "pktlab.cli", "mptcp", "--seconds", "20"],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not set(lab_namespaces()) - set(before):
            time.sleep(0.1)
        time.sleep(2.5)                 # the transfer is under way
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert "interrupted" in err
    assert lab_namespaces() == before
    left = subprocess.run(["pgrep", "-f", "pktlab/mptcp/ends.py"], capture_output=True, text=True)
    assert left.stdout.strip() == "", "an MPTCP end outlived the run"
    from pktlab.lab.cgroup import cgroup2_mount
    assert not [d for d in os.listdir(cgroup2_mount()) if d.startswith("pktlab-plmp")]


def test_command_json_document():
    require_sockops()
    r = subprocess.run([sys.executable, "-m", "pktlab.cli", "mptcp", "--paths", "2", "--policy",
                        "no-path=2", "--seconds", "2", "--json"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    import json
    doc = json.loads(r.stdout)
    for key in ("policy", "subflows", "paths", "sockops", "leftovers"):
        assert key in doc
    assert doc["subflows"] == {"established": 1, "refused": 1}
    assert set(doc["paths"]) == {"1", "2"}
    assert set(doc["paths"]["1"]) >= {"subflows", "bytes"}
    assert doc["paths"]["1"]["bytes"] > doc["transfer"]["sent"]
    assert doc["sockops"]["ACTIVE_ESTABLISHED_CB"] == 1
    assert doc["leftovers"] == []


def test_doctor_checks_mptcp_and_proves_sock_ops():
    require_root()
    from conftest import doctor_report
    rep = doctor_report()
    check = next(c for c in rep["checks"] if c["name"] == "mptcp")
    if not check["ok"] and "CONFIG_MPTCP" in check["detail"]:
        pytest.skip(f"pktlab doctor: {check['detail']}")
    assert check["ok"] and "net.mptcp.enabled = 1" in check["detail"], check
    hook = rep["hooks"]["sock-ops"]
    assert hook["available"] and "real mptcp connection" in hook["why"], hook



# --- lesson 10's exercises: the solutions pass, the starting answers do not -----------------------

def test_lesson10_checkers_accept_the_solutions_and_refuse_the_starting_answers():
    require_sockops()
    from pktlab.lessons import exercises
    rto = mptcp_run(2, "none", seconds=6.0, drop=(1, 1.0, 3.0))
    want = [r["rto_jiffies"] for r in rto.doc["rto"] if r["side"] == "src" and r["path"] == 1]
    assert exercises.check_rto_reading(want, rto).passed
    assert not exercises.check_rto_reading([], rto).passed
    from pktlab.kernel.bpf import kernel_hz
    ms = [round(j * 1000 / kernel_hz()) for j in want]
    assert "milliseconds" in repr(exercises.check_rto_reading(ms, rto))

    run = mptcp_run(2, "none")
    assert exercises.check_join_token(lambda opt: int.from_bytes(opt[4:8], "big"), run).passed
    assert not exercises.check_join_token(lambda opt: None, run).passed
    little = exercises.check_join_token(lambda opt: int.from_bytes(opt[4:8], "little"), run)
    assert not little.passed and "wrong order" in repr(little)
    assert not exercises.check_join_token(lambda opt: 1 / 0, run).passed

    assert not exercises.check_only_path1_policy("").passed
    assert "does not look at where a join comes from" in \
        repr(exercises.check_only_path1_policy("no-path=2,no-path=3"))
    assert "also holds" in repr(exercises.check_only_path1_policy("only-from=10.0.0.0/8"))
    assert "refused before it reaches the map" in \
        repr(exercises.check_only_path1_policy("only-from=10.200.0.1/24"))
    assert exercises.check_only_path1_policy("only-from=10.200.0.0/24").passed
    assert lab_namespaces() == []


def test_plots_take_an_axis_and_return_the_figure():
    require_sockops()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pktlab.mptcp import plot_bytes, plot_timeline
    res = mptcp_run(2, "none", seconds=6.0, drop=(1, 1.0, 3.0))
    fig = plot_timeline(res)
    ax = fig.axes[0]
    assert len(ax.get_yticklabels()) == 4, "one row per subflow, both sides"
    assert "RTO_CB" in [t.get_text() for t in ax.get_legend().get_texts()]
    fig2, ax2 = plt.subplots()
    assert plot_bytes(res, ax=ax2) is fig2 and len(ax2.patches) == 4
    plt.close("all")


def test_doctor_says_how_to_turn_mptcp_on_and_proves_sock_ops_on_tcp(monkeypatch):
    """MPTCP off in the doctor's lab: the check fails with the sysctl fix, and sock-ops is
    still proven, on a plain TCP connection."""
    require_sockops()
    from pktlab import doctor
    from pktlab.mptcp import pm
    monkeypatch.setattr(pm, "enabled", lambda ns: 0)
    check, hooks = doctor._probe_mptcp(True)
    assert not check.ok and "net.mptcp.enabled = 0" in check.detail
    assert "sysctl -w net.mptcp.enabled=1" in check.fix
    assert hooks["sock-ops"]["available"], hooks
    assert "real tcp connection" in hooks["sock-ops"]["why"]


@pytest.mark.notebook
def test_lesson10_without_sock_ops_says_why_and_runs_on():
    """A learner's machine without the sock-ops hook: every live cell shows the reason, and
    the notebook runs to its end (NotHere answers whatever a cell does next)."""
    require_root()
    from test_notebooks import assert_clean_run, execute, output_text
    nb, _took = execute("10-mptcp-sockops", {"PKTLAB_PRETEND_MISSING": "sock-ops"},
                        save_as="10-mptcp-sockops.without-sock-ops")
    assert_clean_run(nb)
    shown = "\n".join(output_text(c) for c in nb.cells)
    assert "pretending it is missing" in shown
    assert shown.count("not run here") >= 8
    assert "subflow(s) established" not in shown
    assert lab_namespaces() == []
