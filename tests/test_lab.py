"""The foundation: labs, their cleanup, refusing host interfaces, the doctor, the setup."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO, require_root

from pktlab.lab import netns
from pktlab.errors import LabError
from pktlab.lab import Lab, leftovers, list_labs

PKTLAB = [sys.executable, "-m", "pktlab.cli"]


def _frame(src_mac, dst_mac, payload=b"pktlab-test"):
    return dst_mac + src_mac + b"\x88\xb5" + payload   # 0x88b5: local experimental EtherType


def _mac(text):
    return bytes(int(x, 16) for x in text.split(":"))


def test_lab_carries_a_frame_and_leaves_nothing(lab):
    from pktlab.lab.inject import Injector
    with netns.enter(lab.ns_dut):
        rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88B5))
    rx.bind((lab.if_dut, 0))
    rx.settimeout(3)
    try:
        frame = _frame(_mac(lab.mac("src")), _mac(lab.mac("dut")), b"hello across the veth")
        with Injector(lab) as inj:
            inj.send(frame)
        got = rx.recv(2048)
    finally:
        rx.close()
    assert got[:len(frame)] == frame
    assert netns.exists(lab.ns_src) and netns.exists(lab.ns_dut)
    # names fit the kernel's limits
    assert len(lab.if_src) <= 15 and len(lab.if_dut) <= 15


def test_lab_is_quiet_and_private(lab):
    out = netns.run(lab.ns_dut, ["ip", "-o", "addr", "show", "dev", lab.if_dut]).stdout
    assert lab.dut_ip4 in out and lab.dut_ip6 in out
    host = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert lab.dut_ip4 not in host and lab.if_dut not in host, "lab addresses leaked to the host"
    for key in ("accept_dad", "autoconf", "accept_ra"):
        with netns.enter(lab.ns_dut), open(f"/proc/sys/net/ipv6/conf/{lab.if_dut}/{key}") as f:
            assert f.read().strip() == "0"


def test_lab_cleans_up_when_the_body_raises():
    require_root()
    with pytest.raises(RuntimeError, match="boom"):
        with Lab(prefix="pltest") as lb:
            name = lb.name
            assert netns.exists(lb.ns_dut)
            raise RuntimeError("boom")
    assert leftovers(name) == []
    assert not any(s.name == name for s in list_labs())


def test_close_twice_is_safe():
    require_root()
    lb = Lab(prefix="pltest").up()
    lb.close()
    lb.close()
    assert leftovers(lb.name) == []


def test_two_labs_at_once_do_not_collide():
    require_root()
    with Lab(prefix="pltest") as a, Lab(prefix="pltest") as b:
        assert a.name != b.name
        assert {a.ns_src, a.ns_dut}.isdisjoint({b.ns_src, b.ns_dut})
        for lb in (a, b):
            r = netns.run(lb.ns_src, ["ping", "-c", "1", "-W", "2", lb.dut_ip4], check=False)
            assert r.returncode == 0, r.stdout + r.stderr
    assert leftovers(a.name) == [] and leftovers(b.name) == []


def test_sigkilled_owner_is_cleaned_by_lab_clean():
    require_root()
    code = ("import sys, time; from pktlab.lab import Lab; lb = Lab(prefix='pltest').up(); "
            "print(lb.name, flush=True); time.sleep(120)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                         cwd=REPO)
    try:
        name = p.stdout.readline().strip()
        assert name and netns.exists(f"{name}-dut")
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert netns.exists(f"{name}-dut"), "SIGKILL cannot clean up: the lab must still be there"
    st = [s for s in list_labs() if s.name == name]
    assert st and not st[0].owner_alive()
    r = subprocess.run([*PKTLAB, "lab", "clean"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert name in r.stdout
    assert leftovers(name) == []


def test_a_new_lab_removes_stale_ones():
    require_root()
    code = "from pktlab.lab import Lab; lb = Lab(prefix='pltest').up(); print(lb.name); import os; os._exit(0)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    name = r.stdout.strip()
    assert netns.exists(f"{name}-dut")
    with Lab(prefix="pltest"):
        assert leftovers(name) == []


def test_manual_lab_up_down_status():
    require_root()
    r = subprocess.run([*PKTLAB, "lab", "up", "--prefix", "pltest"], capture_output=True,
                       text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    name = r.stdout.split(":")[0]
    try:
        st = subprocess.run([*PKTLAB, "lab", "status", "--json"], capture_output=True, text=True,
                            cwd=REPO)
        labs = {x["name"]: x for x in json.loads(st.stdout)}
        assert name in labs and not labs[name]["stale"]
        # `clean` leaves a manual lab alone (its owner is the user, not a process)
        subprocess.run([*PKTLAB, "lab", "clean"], check=True, capture_output=True, cwd=REPO)
        assert netns.exists(f"{name}-dut")
    finally:
        d = subprocess.run([*PKTLAB, "lab", "down", name], capture_output=True, text=True,
                           cwd=REPO)
    assert d.returncode == 0, d.stderr
    assert leftovers(name) == []
    bad = subprocess.run([*PKTLAB, "lab", "down", "nosuchlab"], capture_output=True, text=True,
                         cwd=REPO)
    assert bad.returncode == 2 and "no such lab" in bad.stderr


def test_attaching_to_lo_is_refused_with_a_clear_message():
    require_root()
    from pktlab.kernel import bpf
    from pktlab.kernel.attach import TcAttachment, XdpAttachment
    prog = bpf.load("xdp")
    try:
        with pytest.raises(LabError) as e:
            XdpAttachment(None, "lo", prog.fd)
        msg = str(e.value)
        assert "lo" in msg and "refused" in msg and "allow_host" in msg
        with pytest.raises(LabError, match="refused"):
            TcAttachment(None, "lo", prog.fd, "ingress")
    finally:
        bpf.release(prog)
    # nothing got attached to the host's lo
    out = subprocess.run(["ip", "link", "show", "lo"], capture_output=True, text=True).stdout
    assert "xdp" not in out


def test_bad_prefix_is_refused():
    with pytest.raises(ValueError, match="prefix"):
        Lab(prefix="this-prefix-is-far-too-long")


# the doctor ---------------------------------------------------------------------------------
def _doctor(env=None, pre=None):
    env = dict(os.environ, **(env or {}))
    return subprocess.run([*(pre or []), *PKTLAB, "doctor", "--json"], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)


def test_doctor_reports_hooks_and_why():
    require_root()
    r = _doctor()
    doc = json.loads(r.stdout)            # stdout is one JSON document and nothing else
    assert set(doc) >= {"ok", "checks", "hooks"}
    for c in doc["checks"]:
        assert set(c) >= {"name", "ok", "detail", "fix"}
        if not c["ok"]:
            assert c["fix"], f"failed check {c['name']} has no fix"
    for h in ("xdp", "tc-ingress", "tc-egress", "kprobe"):
        assert set(doc["hooks"][h]) >= {"available", "via", "why"}
    assert doc["ok"] and r.returncode == 0
    assert doc["hooks"]["xdp"]["available"] and doc["hooks"]["tc-ingress"]["available"]
    assert doc["hooks"]["tc-egress"]["available"]
    k = doc["hooks"]["kprobe"]
    assert k["available"] and k["via"] in ("kprobe", "fentry", "raw_tracepoint")
    if not os.path.exists("/sys/bus/event_source/devices/kprobe"):
        # this machine (MACHINE.md): no CONFIG_KPROBES, fentry refused -> raw tracepoint
        assert k["via"] == "raw_tracepoint"
        assert "CONFIG_KPROBES" in k["why"] and "fentry" in k["why"]
    cg = [c for c in doc["checks"] if c["name"] == "cgroup v2"][0]
    with open("/proc/mounts") as f:
        mounts = [ln.split()[1] for ln in f if ln.split()[2] == "cgroup2"]
    assert cg["ok"] == bool(mounts) and (not mounts or mounts[0] in cg["detail"])
    assert not [n for n in netns.list_names() if n.startswith("pldoc")]


def test_doctor_not_root_exits_2():
    require_root()
    r = _doctor(pre=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    priv = [c for c in doc["checks"] if c["name"] == "privileges"][0]
    assert not priv["ok"] and "root" in priv["fix"]


def test_doctor_without_bcc_exits_2():
    require_root()
    code = ("import sys; sys.modules['bcc'] = None; from pktlab.cli import main; "
            "sys.exit(main(['doctor', '--json']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       timeout=300)
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    b = [c for c in doc["checks"] if c["name"] == "bcc"][0]
    assert not b["ok"] and "python3-bpfcc" in b["detail"] + b["fix"]


def test_doctor_without_btf_exits_2():
    require_root()
    r = _doctor(env={"PKTLAB_BTF": "/nonexistent/vmlinux"})
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    b = [c for c in doc["checks"] if c["name"] == "btf"][0]
    assert not b["ok"] and "CONFIG_DEBUG_INFO_BTF" in b["detail"] + b["fix"]


def test_replay_not_root_exits_2():
    require_root()
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        *PKTLAB, "replay", os.path.join(REPO, "pcaps", "mixed.pcap")],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "root" in r.stderr


# setup and packaging ----------------------------------------------------------------------------
def test_setup_is_idempotent_and_quiet_the_second_time():
    require_root()
    t = time.monotonic()
    r = subprocess.run(["bash", os.path.join(REPO, "scripts", "setup.sh"), "--test"],
                       capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - t
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("[setup]")]
    assert not [ln for ln in lines if "installing" in ln or "creating" in ln], lines
    print(f"second setup run took {elapsed:.1f}s")


def test_lab_and_hooks_work_inside_a_running_event_loop():
    """A Jupyter kernel's main thread runs an asyncio loop; pyroute2 alone fails there."""
    require_root()
    import asyncio
    from pktlab.kernel.hooks import HookSet
    from pktlab.lab.inject import Injector

    async def body():
        with Lab(prefix="pltest") as lb, HookSet(lb, ["xdp", "tc-egress"]) as hs, \
                Injector(lb) as inj:
            inj.send(_frame(_mac(lb.mac("src")), _mac(lb.mac("dut"))))
            deadline = time.monotonic() + 3
            counts = {"xdp": 0, "tc-egress": 0}
            while time.monotonic() < deadline and not all(counts.values()):
                for h, arr in hs.drain().items():
                    # only our frame (EtherType 0x88b5), not the lab's own IPv6 chatter
                    counts[h] += int((arr["eth_proto"] == 0x88B5).sum())
                time.sleep(0.01)
            return lb.name, counts
    name, counts = asyncio.run(body())
    assert counts == {"xdp": 1, "tc-egress": 1}
    assert leftovers(name) == []


def test_a_lab_that_fails_half_way_up_removes_what_it_made(monkeypatch):
    require_root()
    import pktlab.lab.labs as L
    made = {}

    def broken(ns):
        made.setdefault("ns", []).append(ns)
        raise OSError(5, "simulated failure while configuring " + ns)
    monkeypatch.setattr(L, "_quiet_namespace", broken)
    lb = Lab(prefix="pltest")
    with pytest.raises(OSError, match="simulated"):
        lb.up()
    assert made["ns"] and not netns.exists(made["ns"][0])
    assert leftovers(lb.name) == []


def test_ctrl_c_while_labs_are_made_leaves_nothing():
    """SIGINT at varying moments of Lab.up(), including pyroute2's fork of a namespace.

    The child makes labs in a loop and says so; each run must have been making labs when the
    signal came (and die of that KeyboardInterrupt, not of anything else), some runs must be
    caught inside a build, some labs must be complete, and no plsig namespace or state file
    may be left."""
    require_root()
    from pktlab.lab import STATE_DIR
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "from pktlab.lab import Lab\n"
            "print('ready', flush=True)\n"
            "while True:\n"
            "    print('building', flush=True)\n"
            "    with Lab(prefix='plsig') as lab:\n"
            "        print('made', lab.name, flush=True)\n")
    made, caught_building = [], 0
    for delay in (0.05, 0.11, 0.17, 0.23, 0.29, 0.37, 0.43, 0.51):
        # unbuffered: readline() must not read ahead what communicate() is to see
        p = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, bufsize=0,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            assert p.stdout.readline().strip() == b"ready"
            time.sleep(delay)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        lines, err = out.decode().splitlines(), err.decode().strip()
        assert err.splitlines()[-1:] == ["KeyboardInterrupt"] and p.returncode == -signal.SIGINT, \
            f"SIGINT after {delay}s: the child did not die of it (status {p.returncode}): {err}"
        assert "building" in lines, f"SIGINT after {delay}s: no lab was being made: {lines}"
        made += [ln.split()[1] for ln in lines if ln.startswith("made ")]
        caught_building += lines[-1] == "building"
        left = [n for n in netns.list_names() if n.startswith("plsig")]
        assert left == [], f"SIGINT after {delay}s left {left}"
        states = [f for f in os.listdir(STATE_DIR) if f.startswith("plsig")] \
            if os.path.isdir(STATE_DIR) else []
        assert states == [], f"SIGINT after {delay}s left state files {states}"
    assert made, "no lab was ever complete: the signal never met a working Lab"
    assert caught_building, "the signal never came while a lab was being built"
    assert all(leftovers(n) == [] for n in made)
