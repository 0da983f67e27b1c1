"""The application end of the belt, with real servers, real clients and real connections in
labs: every hook sees the one request, from its own layer, in the kernel's order; each hook's
record agrees with the walker entered at that layer over the frame captured leaving src (and
with scapy's dissection of that frame); what a hook cannot see is explained; the socket filter
is inherited by accepted sockets; a socket put in the sockmap after its reader blocked hangs
it; recv records only its own lab; bad input exits 2 and leaves nothing behind; so do Ctrl-C
and a SIGKILLed owner (cgroups, sockmaps, servers, clients, namespaces).
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, require_hook, require_root

from pktlab.lab import Lab, leftovers
from pktlab.sockets import belt as B
from pktlab.sockets import expect

PKTLAB = os.path.join(REPO, ".venv", "bin", "pktlab")
ORDER = {"http": B.KERNEL_ORDER, "tcp": B.KERNEL_ORDER,
         "udp": tuple(h for h in B.KERNEL_ORDER if h != "sk-skb")}


def require(hook):
    """require_hook, except that a hook the doctor attached but which recorded nothing fails:
    that is a bug in pktlab (or this machine's cgroup v1 net_cls, which the doctor names),
    not a feature this machine lacks."""
    from conftest import doctor_report
    require_root()
    info = doctor_report()["hooks"][hook]
    if not info["available"] and "but no record" in info["why"]:
        pytest.fail(f"the doctor attached {hook} here but it recorded nothing: {info['why']}",
                    pytrace=False)
    return require_hook(hook)


def require_belt():
    for h in B.KERNEL_ORDER:
        require(h)


def pktlab(*args, timeout=120):
    return subprocess.run([PKTLAB, *args], capture_output=True, text=True, timeout=timeout)


def belt_leftovers():
    """Namespaces and cgroups of belt labs, and belt children, anywhere on this machine."""
    from pktlab.lab import cgroup2_mount
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    left = [ln.split()[0] for ln in out.splitlines() if ln.startswith(B.LAB_PREFIX)]
    root = cgroup2_mount()
    if root:
        left += [d for d in os.listdir(root) if d.startswith("pktlab-" + B.LAB_PREFIX)]
    left += [f"pid {p}" for p in _children_running()]
    return left


def _children_running():
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if b"pktlab/sockets/children.py" in cmd:
                pids.append(int(entry))
    return pids


@pytest.fixture
def clean():
    """No belt lab, cgroup or child before; none after (whatever the test did)."""
    require_root()

    def settled():
        deadline = time.monotonic() + 5           # a child being reaped may take a moment
        while belt_leftovers() and time.monotonic() < deadline:
            time.sleep(0.05)
        return belt_leftovers()
    assert settled() == []
    yield
    assert settled() == []


# --- the belt -------------------------------------------------------------------------------

@pytest.mark.parametrize("traffic", ["http", "tcp", "udp"])
def test_one_request_through_every_hook_in_the_kernels_order(traffic, clean):
    require_belt()
    doc = B.run_belt(traffic)
    json.dumps(doc)                                   # the JSON contract: serialisable
    assert doc["traffic"] == traffic
    assert doc["order"] == list(ORDER[traffic]), doc["order"]
    assert doc["kernel_order"] and doc["ties"] == 0
    assert all(g["ns"] > 0 for g in doc["gaps_ns"])
    for h in ORDER[traffic]:
        v = doc["hooks"][h]
        assert v["seen"] == 1 and v["agree"] is True and not v["disagree"], (h, v)
        assert v["view"] == expect.VIEW[h] and v["first_ts_ns"] > 0 and v["lost"] == 0
    if traffic == "udp":                              # said, never silently left out
        assert doc["hooks"]["sk-skb"]["attached"] is False
        assert "UDP" in doc["hooks"]["sk-skb"]["why"]
    assert doc["ok"] and doc["leftovers"] == []


def test_each_hook_sees_the_request_from_its_own_layer(clean):
    """The records themselves, against scapy's dissection of the frame that left src."""
    require_belt()
    import scapy.layers.inet  # noqa: F401  (binds IP and TCP under Ether)
    from scapy.layers.l2 import Ether
    with B.Belt("tcp") as belt:
        run = belt.request()
        port = belt.port
    pkt = Ether(run.frame)
    ip, tcp, payload = pkt["IP"], pkt["TCP"], bytes(pkt["TCP"].payload)
    assert payload == (run.nonce + "\n").encode()
    whole = run.record("xdp")
    assert bytes(whole.src_mac) == bytes.fromhex(pkt.src.replace(":", ""))
    cg = run.record("cgroup-ingress")               # from the IP header
    assert bytes(cg.dst_mac) == bytes(6) and cg.eth_proto == 0x0800
    assert bytes(cg.src_ip[:4]) == bytes(map(int, ip.src.split(".")))
    assert cg.ttl == ip.ttl and cg.frag_id == ip.id and cg.frame_len == ip.len
    assert cg.payload_off == ip.ihl * 4 + tcp.dataofs * 4
    sf = run.record("socket-filter")                # from the TCP header
    assert bytes(sf.src_ip) == bytes(16) and sf.ttl == 0
    assert (sf.sport, sf.dport, sf.tcp_seq) == (tcp.sport, port, tcp.seq)
    assert sf.payload_off == tcp.dataofs * 4 and sf.frame_len == len(tcp)
    for h in ("sk-skb", "recv"):                    # the payload only
        r = run.record(h)
        assert (r.sport, r.dport, r.payload_off) == (0, 0, 0), h
        assert r.frame_len == len(payload) and bytes(r.payload[:len(payload)]) == payload, h
    for h in ("cgroup-ingress", "socket-filter", "sk-skb", "recv"):
        assert run.hooks[h]["explained"] == expect.CANNOT_SEE[h]
        assert "dst_mac" in run.hooks[h]["differs_from_frame"] or h == "cgroup-ingress"


def test_a_record_that_is_not_what_the_walker_expects_is_a_disagreement():
    """The judge itself: one field of the real expected record changed is caught, named."""
    import numpy as np
    from pktlab.packet import record as R
    frame = bytes.fromhex("020000000002020000000001080045000034abcd40004006000"
                          "00ac800010ac80002c3501b59000000010000000080180200000000000101080a"
                          "0000000100000002") + b"pktlab-0123\n"
    for hook in ("tc-ingress", "cgroup-ingress", "socket-filter", "recv"):
        want = expect.expected(hook, frame)
        good = np.frombuffer(bytes(want), dtype=R.RECORD_DTYPE)
        v = expect.judge(hook, good, frame, "pktlab-0123")
        assert v["seen"] == 1 and v["agree"] is True, (hook, v)
        bad = good.copy()
        bad["payload_len"] += 1                     # a parser's bug, after the fingerprint
        v = expect.judge(hook, bad, frame, "pktlab-0123")
        assert v["agree"] is False and v["disagree"] == ["payload_len"], (hook, v)


def test_the_kprobe_hook_reads_the_linear_part_only_and_says_so(clean):
    """Without tc-egress (whose pull makes the skb linear) the TCP payload reaches the receive
    path in page fragments: the kprobe record is the walk of the headers, explained."""
    require("kprobe")
    doc = B.run_belt("tcp", hooks="kprobe,xdp")
    k = doc["hooks"]["kprobe"]
    assert k["seen"] == 1 and k["agree"] is True
    assert "linear part only" in k["explained"] and "66 bytes (the headers)" in k["explained"]
    assert "payload" in k["differs_from_frame"]
    assert doc["hooks"]["xdp"]["agree"] is True and doc["order"] == ["kprobe", "xdp"]


def test_the_socket_filter_on_the_listener_covers_accepted_sockets(clean):
    """SO_ATTACH_BPF went on the listening socket only; the request's data arrives on the
    socket accept() made later, and the filter saw it there."""
    require("socket-filter")
    from pktlab.kernel.sockattach import SocketFilterAttachment
    with B.Belt("tcp", hooks="socket-filter") as belt:
        filters = [a for a in belt.sockhooks.attachments
                   if isinstance(a, SocketFilterAttachment)]
        assert [(a.pid, a.fd) for a in filters] == [(belt.server.pid, belt.server.fd)]
        with open(f"/proc/{belt.server.pid}/net/tcp") as f:   # fd is the listener (0A)
            assert any(ln.split()[3] == "0A" for ln in list(f)[1:])
        run = belt.request()
    v = run.hooks["socket-filter"]
    assert v["seen"] == 1 and v["agree"] is True      # the data segment, on the accepted one
    assert run.record("socket-filter").tcp_flags & 0x08     # PSH: the request's data


def test_a_socket_put_in_the_sockmap_while_its_reader_waits_hangs_it(lab):
    require("sk-skb")
    from pktlab.sockets.sockmap import late_insert
    res = late_insert(lab, wait=1.0)
    assert res["blocked_in"] == "recvfrom" and res["still_blocked_in"] == "recvfrom"
    assert res["verdicts"] == 1                 # the sk-skb program saw the bytes...
    assert res["echoed"] is False               # ...the reader never got them
    assert res["recv_q"] == len(b"late-insert\n")


def test_recv_records_only_its_own_labs_threads(clean):
    require("recv")
    from pktlab.sockets import apps
    with Lab(prefix="ploth") as other, B.Belt("udp", hooks="recv") as belt:
        with apps.Server(other, "udp", 7002):
            apps.request(other, "udp", 7002, "pktlab-other-lab")
            run = belt.request()
            recs = belt.sockhooks.drain()["recv"]
        assert run.hooks["recv"]["seen"] == 1 and run.hooks["recv"]["records"] == 1
        assert not [r for r in recs if b"other" in bytes(r["payload"])]


def test_the_sockhash_is_freed_and_the_cgroup_removed_with_the_belt(clean):
    require("sk-skb")
    from pktlab.kernel.sockhooks import map_exists
    from pktlab.lab.cgroup import cgroup_id
    belt = B.Belt("tcp", hooks="sk-skb,cgroup-ingress")
    with belt:
        ids, cg = belt.sockhooks.map_ids(), belt.lab.cgroup()
        assert ids and all(map_exists(i) for i in ids)
        assert cgroup_id(cg.path) == cg.id and belt.server.pid in cg.procs()
        pids = belt.server.pids()
    assert not any(map_exists(i) for i in ids)
    assert not os.path.exists(cg.path)
    assert not [p for p in pids if os.path.exists(f"/proc/{p}")]
    assert belt.leftovers() == []


# --- bad input, interrupts, a killed owner ------------------------------------------------

def _belt_here(capsys, *args):
    """`pktlab belt ARGS` through the CLI's main() in this process (the programs the tests
    above compiled are reused): (exit status, stdout, stderr)."""
    from pktlab.cli import main
    capsys.readouterr()
    rc = main(["belt", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_busy_port_is_said_in_one_line_and_nothing_is_left(clean, capsys):
    require("cgroup-ingress")
    r = subprocess.run([PKTLAB, "lab", "up", "--prefix", "plbelt", "--json"],
                       capture_output=True, text=True, check=True)
    name = json.loads(r.stdout)["name"]
    try:
        squatter = subprocess.Popen(["ip", "netns", "exec", f"{name}-dut", sys.executable,
                                     "-c", "import socket,time; s=socket.socket(); "
                                     "s.bind(('',8080)); s.listen(); print(1,flush=True); "
                                     "time.sleep(60)"], stdout=subprocess.PIPE)
        squatter.stdout.readline()
        rc, out, err = _belt_here(capsys, "--lab", name)
        assert rc == 2, err
        assert out == "" and len(err.strip().splitlines()) == 1
        assert "port is busy" in err and "8080" in err
        from pktlab.lab.state import LabState
        assert "cgroup" not in LabState.load(name).extra      # the belt's cgroup is gone
        assert _children_running() == []
        rc, out, err = _belt_here(capsys, "--lab", name, "--port", "8081", "--json")
        assert rc == 0, err                                   # the lab still works
        assert json.loads(out)["ok"]
        squatter.kill()
        squatter.wait()
    finally:
        subprocess.run([PKTLAB, "lab", "down", name], capture_output=True)


@pytest.mark.parametrize("traffic", ["http", "udp"])
def test_a_client_that_cannot_connect_exits_2_and_leaves_nothing(traffic, clean, capsys):
    require("cgroup-ingress")
    rc, out, err = _belt_here(capsys, "--traffic", traffic, "--to-port", "9999")
    assert rc == 2, err
    assert out == "" and len(err.strip().splitlines()) == 1
    assert "connection refused" in err and "9999" in err


def test_no_cgroup_v2_exits_2_with_the_mount_command(tmp_path, monkeypatch, capsys, clean):
    from pktlab.cli import main
    from pktlab.lab import cgroup
    fake = tmp_path / "mountinfo"
    fake.write_text("".join(ln for ln in open("/proc/self/mountinfo")
                            if " - cgroup2 " not in ln))
    monkeypatch.setattr(cgroup, "MOUNTINFO", str(fake))
    assert main(["belt"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "no cgroup v2" in err and "mount -t cgroup2" in err
    # packet hooks and the hooks that need no cgroup still run
    assert main(["belt", "--hooks", "xdp,socket-filter,recv", "--json"]) == 0


def test_the_doctor_without_cgroup_v2_says_so_and_how(tmp_path, monkeypatch):
    require_root()
    from pktlab import doctor
    from pktlab.lab import cgroup
    fake = tmp_path / "mountinfo"
    fake.write_text("".join(ln for ln in open("/proc/self/mountinfo")
                            if " - cgroup2 " not in ln))
    monkeypatch.setattr(cgroup, "MOUNTINFO", str(fake))
    report, _ = doctor.run()
    check = next(c for c in report["checks"] if c["name"] == "cgroup v2")
    assert not check["ok"] and "mount -t cgroup2" in check["fix"]
    for h in ("cgroup-ingress", "sk-skb"):
        assert not report["hooks"][h]["available"]
        assert "no cgroup v2" in report["hooks"][h]["why"]
    assert report["hooks"]["socket-filter"]["available"] == \
        report["hooks"]["recv"]["available"] is True


@pytest.mark.parametrize("hook", ["cgroup-ingress", "socket-filter", "sk-skb", "recv"])
def test_the_doctor_proves_every_socket_end_hook_with_a_real_request(hook):
    from conftest import doctor_report
    require(hook)
    info = doctor_report()["hooks"][hook]
    assert "real request" in info["why"] and info["via"]


def test_a_v1_net_cls_hierarchy_is_flagged(tmp_path, monkeypatch):
    from pktlab.lab import cgroup
    fake = tmp_path / "mountinfo"
    fake.write_text(open("/proc/self/mountinfo").read() +
                    "99 31 0:99 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup "
                    "rw,net_cls,net_prio\n")
    monkeypatch.setattr(cgroup, "MOUNTINFO", str(fake))
    assert [c for _p, c in cgroup.v1_net_controllers()] == ["net_cls", "net_prio"]
    from pktlab import doctor
    c = doctor._check_cgroup_v1_net()
    assert not c.ok and "disabling cgroup2 socket matching" in c.detail and c.fix


def test_replay_refuses_socket_end_hooks_and_points_to_the_belt():
    r = pktlab("replay", os.path.join(REPO, "pcaps", "mixed.pcap"), "--hooks", "xdp,sk-skb")
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1
    assert "sk-skb is a socket-end hook" in r.stderr and "pktlab belt" in r.stderr


@pytest.mark.parametrize("sig,after", [(signal.SIGINT, 1.5), (signal.SIGTERM, 3.0),
                                       (signal.SIGINT, 4.5)])
def test_an_interrupted_belt_leaves_nothing(sig, after, clean):
    require_belt()
    p = subprocess.Popen([PKTLAB, "belt", "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(after)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode in (130, 0), err        # 0: it finished before the signal
    if p.returncode == 130:
        assert "interrupted" in err


def test_a_sigkilled_owner_leaves_nothing_after_clean(clean):
    """The owner dies mid-belt: its server dies with it (PDEATHSIG), and the next clean
    removes the lab and its cgroup (proven by the recorded id)."""
    require_belt()
    code = ("from pktlab.sockets.belt import Belt; b = Belt('http').open(); "
            "print(b.lab.name, b.lab.cgroup().path, *b.server.pids(), flush=True); "
            "import time; time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                         cwd=REPO)
    try:
        name, cg, *pids = p.stdout.readline().split()
        assert os.path.isdir(cg)
    finally:
        p.kill()
        p.wait()
    deadline = time.monotonic() + 5
    while [q for q in pids if os.path.exists(f"/proc/{q}")] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [q for q in pids if os.path.exists(f"/proc/{q}")]
    from pktlab.lab import clean_stale
    assert name in clean_stale()
    assert leftovers(name) == [] and not os.path.exists(cg)


def test_a_cgroup_named_like_a_labs_but_not_its_own_is_left_alone(clean):
    """The proof rule: a lab's record names its cgroup's id; another directory of that name
    (made after the lab's own went) is not pktlab's, and clean leaves it."""
    require_root()
    from pktlab.lab import cgroup2_mount, remove_lab
    from pktlab.lab.state import LabState
    lab = Lab(prefix="plbelt", persistent=True).up()
    try:
        cg = lab.cgroup()
        path, rec = cg.path, dict(lab.state.extra["cgroup"])
        os.rmdir(path)
        os.mkdir(path)                                  # someone else's, same name
        st = LabState.load(lab.name)
        assert st.extra["cgroup"] == rec
        res = remove_lab(st)
        assert any("not pktlab's" in x and path in x for x in res.left_alone), res.left_alone
        assert os.path.isdir(path)
    finally:
        if os.path.isdir(path):
            os.rmdir(path)
        lab.close()
    assert cgroup2_mount() and not os.path.exists(path)
