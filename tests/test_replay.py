"""Instructor replay: rewrite, stepping, rates reported, loops and limits, damaged captures."""

import json

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO, require_hook

from pktlab.packet.rewrite import Rewriter

ALL = ("xdp", "tc-ingress", "tc-egress", "kprobe")
PKTLAB = [sys.executable, "-m", "pktlab.cli"]


def _pkt(v6, proto, payload, vlan):
    from scapy.all import ICMPv6EchoRequest, IP, TCP, UDP, Dot1Q, Ether, IPv6
    e = Ether(src="02:00:00:00:00:01", dst="02:aa:bb:cc:dd:ee")
    if vlan:
        e = e / Dot1Q(vlan=vlan)
    ip = IPv6(src="2001:db8::1", dst="2001:db8::99") if v6 else IP(src="192.0.2.1",
                                                                   dst="198.51.100.7")
    l4 = {"tcp": TCP(sport=1000, dport=80, flags="PA"), "udp": UDP(sport=53, dport=999),
          "icmp6": ICMPv6EchoRequest()}[proto if (v6 or proto != "icmp6") else "udp"]
    return e / ip / l4 / payload


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.booleans(), st.sampled_from(["tcp", "udp", "icmp6"]), st.binary(max_size=200),
       st.sampled_from([0, 7]))
def test_rewrite_fixes_checksums_as_scapy_would(v6, proto, payload, vlan):
    from scapy.all import IP, TCP, UDP, Ether, ICMPv6EchoRequest, IPv6
    frame = bytes(_pkt(v6, proto, payload, vlan))
    rw = Rewriter(dst_mac="02:00:00:00:00:02", dst_ip4="10.200.0.2", dst_ip6="fd00:706b:746c::2")
    out = rw(frame)
    p = Ether(out)
    assert p.dst == "02:00:00:00:00:02"
    ipl = p[IPv6] if v6 else p[IP]
    assert ipl.dst == ("fd00:706b:746c::2" if v6 else "10.200.0.2")
    # scapy recomputes every checksum from scratch: they must match ours
    ref = Ether(out)
    fields = {IP: "chksum", TCP: "chksum", UDP: "chksum", ICMPv6EchoRequest: "cksum"}
    for layer, name in fields.items():
        if ref.haslayer(layer):
            delattr(ref[layer], name)
    ref = Ether(bytes(ref))
    for layer, name in fields.items():
        if p.haslayer(layer):
            assert getattr(p[layer], name) == getattr(ref[layer], name), layer.__name__
    assert "frames" in rw.describe()


def test_rewrite_leaves_a_wrong_checksum_exactly_as_wrong():
    from scapy.all import IP, UDP, Ether
    f = bytearray(bytes(Ether(dst="02:00:00:00:00:09") / IP(dst="192.0.2.9") / UDP() / b"abc"))
    f[40] ^= 0xFF       # break the UDP checksum
    good_delta = Ether(bytes(f))[UDP].chksum
    out = Rewriter(dst_ip4="10.200.0.2")(bytes(f))
    ref = Ether(out)
    del ref[UDP].chksum
    correct = Ether(bytes(ref))[UDP].chksum
    assert Ether(out)[UDP].chksum != correct and good_delta is not None


def _write(path, frames):
    from pktlab.packet import write_pcap
    write_pcap(path, frames)
    return path


def _frames(n=8):
    from scapy.all import IP, UDP, Ether
    return [bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:05") / IP(dst="192.0.2.5") / UDP(dport=1000 + i) / (b"p" * i))
            for i in range(n)]


def test_replay_rewrite_is_shown_and_frames_reach_the_dut_socket(tmp_path, lab):
    """Rewritten to the dut's addresses, the frames are accepted by the dut's stack."""
    require_hook("xdp")
    import socket
    from pktlab.lab import netns
    from pktlab.replay.run import replay
    with netns.enter(lab.ns_dut):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((lab.dut_ip4, 1003))
    s.settimeout(3)
    try:
        res = replay(_frames(), hooks=["xdp"], lab=lab,
                     rewrite={"dst_mac": "auto", "dst_ip4": "auto", "dst_ip6": None})
        data = s.recv(2048)
    finally:
        s.close()
    assert data == b"ppp"
    doc = res.summary()
    assert doc["rewrite"]["dst_ip4"] == lab.dut_ip4 and doc["rewrite"]["dst_mac"]
    assert doc["rewrite"]["frames_changed"]["dst_ip4"] == 8
    assert "8 frames" in doc["rewrite"]["description"]
    assert doc["hooks"]["xdp"]["agree"] == 8


def _cli(capsys, monkeypatch, *argv, stdin=""):
    """`pktlab ARGV` through the CLI's main() in this process (so the hooks' programs compiled
    by other tests are reused; `pktlab replay` processes run in test_kernel_parse and
    test_matching): a CompletedProcess-like (returncode, stdout, stderr)."""
    import io
    from pktlab.cli import main
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capsys.readouterr()
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(argv, rc, out, err)


def test_cli_step_shows_each_frame_and_every_hook(tmp_path, capsys, monkeypatch):
    for h in ALL:
        require_hook(h)
    path = _write(str(tmp_path / "s.pcap"), _frames(3))
    r = _cli(capsys, monkeypatch, "replay", path, "--step", stdin="\nq\n")
    assert r.returncode == 0, r.stderr
    assert "frame 1:" in r.stdout and "frame 2:" in r.stdout and "frame 3:" not in r.stdout
    for h in ALL:
        assert h in r.stdout
    assert r.stdout.count("agree") >= 8


def test_cli_replay_loop_limit_and_rates(tmp_path, capsys, monkeypatch):
    require_hook("xdp")
    path = _write(str(tmp_path / "l.pcap"), _frames(8))
    r = _cli(capsys, monkeypatch, "replay", path, "--hooks", "xdp,tc-egress", "--loop", "3",
             "--limit", "5", "--pps", "2000", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["packets"] == 15 and doc["hooks"]["xdp"]["agree"] == 15
    assert doc["requested_pps"] == 2000
    assert doc["pps"] > 0 and doc["hooks"]["xdp"]["measured_pps"] > 0
    assert doc["leftovers"] == []


def test_cli_replay_bad_input_exits_2(tmp_path):
    r = subprocess.run([*PKTLAB, "replay", str(tmp_path / "missing.pcap")], capture_output=True,
                       text=True, cwd=REPO)
    assert r.returncode == 2 and "no such capture" in r.stderr
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture at all")
    r = subprocess.run([*PKTLAB, "replay", str(bad), "--hooks", "bogus"], capture_output=True,
                       text=True, cwd=REPO)
    assert r.returncode == 2 and "choose from" in r.stderr


def test_cut_off_capture_replays_what_it_can_and_reports_where(tmp_path, capsys, monkeypatch):
    require_hook("xdp")
    path = _write(str(tmp_path / "cut.pcap"), _frames(6))
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:-10])          # the last frame is cut off in the middle
    r = _cli(capsys, monkeypatch, "replay", path, "--hooks", "xdp", "--json")
    doc = json.loads(r.stdout)
    assert doc["packets"] == 5 and doc["hooks"]["xdp"]["agree"] == 5
    assert doc["problems"] and "frame 6 at byte" in doc["problems"][0]
    assert "cut.pcap" in doc["problems"][0]


def test_frames_the_lab_cannot_carry_are_skipped_with_a_reason(lab):
    require_hook("xdp")
    from pktlab.replay.run import replay
    frames = [b"\x01" * 10, b"\x02" * 3000] + _frames(2)
    doc = replay(frames, hooks=["xdp"], lab=lab).summary()
    t = doc["hooks"]["xdp"]
    assert t["skipped"] == 2 and t["agree"] == 2 and t["lost"] == 0
    assert doc["sent"] == 2 and doc["packets"] == 4


@pytest.mark.parametrize("hooks", [["xdp", "tc-ingress", "tc-egress", "kprobe"]])
def test_replay_progress_callback_sees_every_batch(hooks, lab):
    for h in hooks:
        require_hook(h)
    from pktlab.replay.run import replay
    seen = []
    replay(_frames(8) * 50, hooks=hooks, lab=lab, batch=100, progress=seen.append)
    assert seen == [100, 200, 300, 400]


def test_step_in_python_api(lab):
    require_hook("xdp")
    from pktlab.replay.run import Replayer
    from pktlab.replay.stepper import Stepper
    with Replayer(["xdp", "tc-ingress"], lab=lab) as rp:
        st_ = Stepper(rp, _frames(2))
        a = st_.step()
        b = st_.step()
        assert st_.step() is None
    assert a.index == 1 and b.index == 2
    assert a.verdicts() == {"xdp": "agree", "tc-ingress": "agree"}
    rows = b.rows()
    assert rows["walker"]["dport"] == rows["xdp"]["dport"] == 1001



def test_cli_replay_mbps_paces_by_bits(tmp_path, capsys, monkeypatch):
    """--mbps: the requested rate is reported; 24 frames of 14..45 bytes at 0.1 Mbit/s take
    (sum of frame bits) / 1e5 seconds of pacing at least; never timed in a unit test beyond
    that lower bound, which follows from the pacing itself."""
    require_hook("xdp")
    frames = _frames(8) * 3
    path = _write(str(tmp_path / "m.pcap"), frames)
    r = _cli(capsys, monkeypatch, "replay", path, "--hooks", "xdp", "--mbps", "0.1", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["requested_pps"] == "0.1 Mbit/s"
    assert doc["hooks"]["xdp"]["agree"] == 24
    bits = sum(len(f) for f in frames[:-1]) * 8
    assert doc["elapsed_s"] >= bits / 0.1e6 * 0.95


def test_pacer_refuses_nonsense_rates():
    from pktlab.replay.run import Pacer
    with pytest.raises(ValueError):
        Pacer(pps=0)
    with pytest.raises(ValueError):
        Pacer(pps=10, mbps=1)


def test_cli_replay_zero_rate_is_bad_input(tmp_path):
    from conftest import require_root
    require_root()          # replay refuses non-root first, with its own message
    path = _write(str(tmp_path / "z.pcap"), _frames(2))
    r = subprocess.run([*PKTLAB, "replay", path, "--pps", "0"], capture_output=True, text=True,
                       cwd=REPO)
    assert r.returncode == 2 and "must be positive" in r.stderr


def test_send_many_keeps_order_across_sendmmsg_calls_and_reports_a_refused_frame(lab):
    """2,500 frames: three sendmmsg() calls (1,024 per call); XDP at dut records them in send
    order. A frame the kernel refuses (longer than the MTU) stops the batch with a clear error,
    and `sent` counts exactly the frames before it."""
    import struct
    import time

    require_hook("xdp")
    from pktlab.replay import compare
    from pktlab.errors import LabError
    from pktlab.kernel.hooks import HookSet
    from pktlab.lab.inject import Injector
    base = bytes.fromhex("0200000000050200000000010800") + bytes.fromhex(
        "450000200000000040110000c0000201c0000205") + bytes(12)
    frames = [base[:34] + struct.pack("!HH", 1024 + i % 60000, 9) + base[38:] + struct.pack(
        "!I", i) for i in range(2500)]
    with HookSet(lab, ["xdp"]) as hs, Injector(lab) as inj:
        hs.drain()
        inj.send_many(frames)
        assert inj.sent == 2500
        got, deadline = [], time.monotonic() + 5
        while len(got) < 2500 and time.monotonic() < deadline:
            got += list(hs.drain()["xdp"]["fingerprint"])
            time.sleep(0.01)
        want = [int(x) for x in compare.walker_records(frames)["fingerprint"]]
        ours = set(want)                  # the lab's own traffic (IPv6 ND...) left out
        assert [fp for fp in got if fp in ours] == want
        with pytest.raises(LabError, match="Message too long"):
            inj.send_many(frames[:3] + [base + bytes(3000)] + frames[:3])
        assert inj.sent == 2503
