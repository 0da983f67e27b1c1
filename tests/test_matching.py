"""Matching kernel records to frames is exact, whatever order the records arrive in.

The unit tests build the records a correct kernel would emit (the walker's, adjusted for the
hook) and hand them to compare.judge in many orders; the live tests replay captures made to
collide (frames identical in their first 64 and 128 bytes, VLAN-tagged frames that are
byte-identical to others once the tag is stripped) through real hooks, alone, three at once and
for a long run, and check that a deliberately broken walker field is still counted exactly.
"""

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import REPO, require_hook

from pktlab.replay import compare
from pktlab.packet import record as rec

PKTLAB = [sys.executable, "-m", "pktlab.cli"]
ALL = ("xdp", "tc-ingress", "tc-egress", "kprobe")


# --- frames made to collide ---------------------------------------------------------------

def _eth(dst=b"\x02\xaa\xbb\xcc\xdd\xee", src=b"\x02\x00\x00\x00\x00\x01"):
    return dst + src


def _ipv6_tcp(ack, payload=b"", dstopts=0, seq=1000):
    """IPv6 TCP (optionally behind a Destination Options header of `dstopts` bytes): the ack
    field starts at byte 62 without options, so frames that differ only in its low bytes or
    later are identical in their first 64 bytes."""
    import struct
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, seq, ack, 5 << 4, 0x10, 512, 0, 0) + payload
    nxt, ext = 6, b""
    if dstopts:
        # PadN option filling the header: length in 8-byte units, not counting the first 8
        body = bytes([1, dstopts - 4]) + bytes(dstopts - 4)
        ext = bytes([6, dstopts // 8 - 1]) + body
        nxt = 60
    ip6 = struct.pack("!IHBB", 6 << 28, len(ext) + len(tcp), nxt, 64) + \
        bytes.fromhex("20010db8000000000000000000000001") + \
        bytes.fromhex("20010db8000000000000000000000099")
    return _eth() + b"\x86\xdd" + ip6 + ext + tcp


def _arp(op=1):
    import struct
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + b"\x02\x00\x00\x00\x00\x01" + \
        bytes([192, 0, 2, 1]) + bytes(6) + bytes([192, 0, 2, 2])
    return _eth(dst=b"\xff" * 6) + b"\x08\x06" + body


def _tag(frame, vid, tpid=0x8100):
    return frame[:12] + tpid.to_bytes(2, "big") + vid.to_bytes(2, "big") + frame[12:]


def colliding_frames():
    """Groups of frames sharing a key at some hook, each frame's record different:
    - IPv6 TCP pure ACKs, identical in the first 64 bytes (ack differs in its low bytes);
    - the same behind a 72-byte Destination Options header: identical in the first 128 bytes
      (the TCP header starts at byte 126), differing in seq/ack;
    - an ARP frame and the same ARP frame VLAN-tagged (at TC ingress the stack strips the tag:
      the bytes are then identical) and the same tagged with another VLAN id."""
    frames = []
    for i in range(12):
        frames.append(_ipv6_tcp(ack=0x10000 + i))
    for i in range(12):
        frames.append(_ipv6_tcp(ack=7 + i, seq=5 + 3 * i, dstopts=72, payload=b"x" * (i % 3)))
    a = _arp()
    frames += [a, _tag(a, 5), _tag(a, 6), _tag(a, 5, 0x88A8)]
    return frames


def test_colliding_frames_do_collide():
    """The corpus above is what it says: shared 64- and 128-byte prefixes and keys."""
    f = colliding_frames()
    assert len({x[:64] for x in f[:12]}) == 1 and len({len(x) for x in f[:12]}) == 1
    assert len({x[:128] for x in f[12:24:3]}) == 1
    arp, tagged = f[24], f[25]
    assert tagged[:12] + tagged[16:] == arp
    exp = compare.expected_for("tc-ingress", f, compare.walker_records(f),
                               np.ones(len(f), dtype=bool))
    # same fingerprint at tc-ingress (bytes identical once the tag is gone), different keys
    assert exp.records["fingerprint"][24] == exp.records["fingerprint"][25]
    assert len(set(exp.keys[24:28].tolist())) == 4


# --- the kernel's records, simulated --------------------------------------------------------

def _kernel_records(expected, hook_id=2):
    """What a correct kernel emits: the expected records of present frames, with the fields
    the comparison ignores set as a hook would."""
    r = compare._take(expected.records, np.flatnonzero(expected.present))
    r = compare._copy(r)
    r["ts_ns"] = np.arange(len(r)) + 1
    r["ifindex"] = 7
    r["hook"] = hook_id
    return r


@pytest.mark.parametrize("hook", ALL)
@pytest.mark.parametrize("seed", range(25))
def test_any_arrival_order_gives_the_same_verdicts(hook, seed):
    frames = colliding_frames()
    sendable = np.ones(len(frames), dtype=bool)
    exp = compare.expected_for(hook, frames, compare.walker_records(frames), sendable)
    recs = _kernel_records(exp)
    order = np.random.default_rng(seed).permutation(len(recs))
    res = compare.judge(exp, compare._take(recs, order), sendable)
    c = res.counts()
    assert c["disagree"] == 0 and c["lost"] == 0, res.diffs
    assert c["agree"] + c["explained"] == len(frames)
    assert res.foreign == 0 and res.unmatched == 0
    # every frame got the record with its own content
    assert compare._same_rows(res.matched, exp.records).all()


def test_the_first_64_bytes_collide_where_the_key_does_not():
    """The old identity (the first 64 bytes and the length) is shared by each group; the key
    (every byte the parse read) is not, and in reverse order the old pairing swapped frames
    (this is the bug the issue found): the new one does not."""
    frames = colliding_frames()
    sendable = np.ones(len(frames), dtype=bool)
    exp = compare.expected_for("xdp", frames, compare.walker_records(frames), sendable)
    old = np.array([rec.fingerprint(f) for f in frames], dtype=np.uint64)
    assert len(set(old[:12].tolist())) == 1
    assert len(set(exp.keys[:12].tolist())) == 12 and len(set(exp.keys[12:24].tolist())) == 12
    recs = compare._take(_kernel_records(exp), np.arange(len(frames))[::-1])
    paired = compare._rank_match(old, np.arange(len(frames)), old[::-1].copy())
    assert (~compare._same_rows(recs, compare._take(exp.records, paired))).sum() >= 10
    assert compare.judge(exp, recs, sendable).counts()["disagree"] == 0


@pytest.mark.parametrize("seed", range(10))
def test_a_broken_walker_field_is_counted_exactly_in_any_order(seed):
    """A walker bug cannot hide behind a swap: ack + 1 on every TCP frame is one disagreement
    per TCP frame, whatever the order."""
    frames = colliding_frames()
    sendable = np.ones(len(frames), dtype=bool)
    exp = compare.expected_for("xdp", frames, compare.walker_records(frames), sendable)
    recs = _kernel_records(exp)
    tcp = exp.records["l4_proto"] == 6
    exp.records["tcp_ack"][tcp] += 1               # the broken walker
    order = np.random.default_rng(seed).permutation(len(recs))
    res = compare.judge(exp, compare._take(recs, order), sendable)
    c = res.counts()
    assert c["disagree"] == int(tcp.sum()) == 24
    assert c["agree"] == len(frames) - 24 and c["lost"] == 0
    assert all(names == ["tcp_ack"] for names in res.diffs.values())


def test_next_batch_records_wait_for_it_even_when_a_same_key_frame_here_is_lost():
    frames = colliding_frames()[:12]
    sendable = np.ones(12, dtype=bool)
    exp_all = compare.expected_for("xdp", frames, compare.walker_records(frames), sendable)
    recs = _kernel_records(exp_all)
    first, second = np.arange(12) < 6, np.arange(12) >= 6

    def part(mask):
        return compare.Expected(exp_all.records, sendable & mask, exp_all.reason, exp_all.keys)

    here, upcoming = part(first), part(second)
    # batch 1's frame 0 is lost; batch 2's records (same key) arrive early, interleaved
    got = compare._take(recs, [6, 1, 7, 2, 3, 8, 4, 5, 11])
    res = compare.judge(here, got, sendable, upcoming)
    c = res.counts()
    assert c["agree"] == 5 and c["lost"] == 1 and c["disagree"] == 0
    assert len(res.carry) == 4 and res.foreign == 0 and res.unmatched == 0
    res2 = compare.judge(upcoming, res.carry, sendable, None, here.present_keys())
    assert res2.counts()["agree"] == 4 and res2.counts()["lost"] == 2


def test_unclaimed_records_are_unmatched_if_ours_foreign_otherwise():
    frames = colliding_frames()
    sendable = np.ones(len(frames), dtype=bool)
    exp = compare.expected_for("xdp", frames, compare.walker_records(frames), sendable)
    recs = _kernel_records(exp)
    stranger = compare._copy(recs[:1])
    stranger["fingerprint"] = rec.fingerprint(b"\x01" * 90)
    doubled = compare._concat(compare._concat(recs, recs[3:4]), stranger)
    res = compare.judge(exp, doubled, sendable)
    assert res.counts()["agree"] == len(frames)
    assert res.unmatched == 1 and res.foreign == 1


def test_vlan_meta_key_separates_a_tagged_frame_from_its_untagged_twin():
    """At TC ingress a tagged ARP and the untagged ARP have the same bytes and fingerprint; the
    key built from the record's metadata tag keeps them apart, records in either order."""
    a = _arp()
    frames = [a, _tag(a, 5), a, _tag(a, 5)]
    sendable = np.ones(4, dtype=bool)
    exp = compare.expected_for("tc-ingress", frames, compare.walker_records(frames), sendable)
    recs = _kernel_records(exp)
    for order in ([1, 3, 0, 2], [3, 2, 1, 0]):
        res = compare.judge(exp, compare._take(recs, order), sendable)
        assert res.counts()["disagree"] == 0
        assert res.verdict.tolist() == [compare.AGREE, compare.EXPLAINED] * 2


# --- live: real hooks, real labs ----------------------------------------------------------

@pytest.fixture(scope="module")
def collide_pcap(tmp_path_factory):
    from pktlab.packet import write_pcap
    path = tmp_path_factory.mktemp("collide") / "collide.pcap"
    # the colliding groups, interleaved with each other many times over in one capture
    base = colliding_frames()
    frames = [base[(i * 11) % len(base)] for i in range(len(base) * 20)]   # 11: coprime to 28
    assert len(set(frames)) == len(base)
    write_pcap(str(path), frames)
    return str(path)


def _replay_here(pcap, loop):
    """`pktlab replay PCAP --loop N --json`'s document and exit status, replayed in this
    process (what the command calls), so the hooks' programs compiled by earlier tests are
    reused; the concurrent runs below are real `pktlab replay` processes."""
    from pktlab.replay.run import replay
    res = replay(pcap, loop=loop)
    return res.summary(), 0 if res.ok else 1


def _check_clean(doc, packets):
    assert doc["packets"] == packets
    for h, t in doc["hooks"].items():
        assert t["disagree"] == 0, (h, doc["disagreements"])
        assert t["lost"] == 0 and t["unmatched"] == 0 and t["ring_buffer_lost"] == 0, (h, t)
        assert t["seen"] == doc["sent"], (h, t)
    assert doc["leftovers"] == []


def _run_three(argv_list):
    out = [None] * len(argv_list)

    def run(i, argv):
        out[i] = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=900)
    ts = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(argv_list)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


@pytest.mark.kernel
def test_colliding_capture_agrees_at_every_hook(collide_pcap):
    for h in ALL:
        require_hook(h)
    doc, rc = _replay_here(collide_pcap, 5)
    _check_clean(doc, 5 * 28 * 20)
    assert rc == 0


@pytest.mark.kernel
def test_three_concurrent_replays_never_disagree(collide_pcap):
    for h in ALL:
        require_hook(h)
    runs = _run_three([PKTLAB + ["replay", p, "--json", "--loop", "10"]
                       for p in (collide_pcap, os.path.join(REPO, "pcaps", "flows.pcap"),
                                 collide_pcap)])
    for p, n in zip(runs, (10 * 560, 10 * 267, 10 * 560)):
        assert p.returncode == 0, p.stderr[-2000:]
        _check_clean(json.loads(p.stdout), n)


_BROKEN = """
import sys, numpy as np
from pktlab import cli
from pktlab.replay import compare
_walk = compare.walker_records
def broken(frames):
    w = _walk(frames)
    w["ttl"][w["ip_version"] != 0] += 1       # a deliberately broken walker field
    return w
compare.walker_records = broken
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.kernel
def test_a_broken_walker_is_counted_exactly_under_three_concurrent_replays(collide_pcap):
    """The exact matching cannot hide a real bug: with the walker's TTL off by one, every IP
    frame disagrees at every hook, no more, no fewer, in all three concurrent runs."""
    for h in ALL:
        require_hook(h)
    from pktlab.packet.capture import read_frames
    frames = [bytes(f) for f in read_frames(collide_pcap, data_only=True)]
    ip = int((compare.walker_records(frames)["ip_version"] != 0).sum())
    assert 0 < ip < len(frames)
    loops = 6
    runs = _run_three([[sys.executable, "-c", _BROKEN, "replay", collide_pcap, "--json",
                        "--loop", str(loops)]] * 3)
    for p in runs:
        assert p.returncode == 1, p.stderr[-2000:]
        doc = json.loads(p.stdout)
        for h, t in doc["hooks"].items():
            assert t["disagree"] == ip * loops, (h, t)
            assert t["agree"] + t["explained"] == (len(frames) - ip) * loops, (h, t)
            assert t["lost"] == 0 and t["unmatched"] == 0, (h, t)


@pytest.mark.kernel
def test_a_long_replay_never_disagrees(collide_pcap):
    """200k+ frames through all four hooks, with the corpus's own collisions and these."""
    for h in ALL:
        require_hook(h)
    doc, rc = _replay_here(os.path.join(REPO, "pcaps", "flows.pcap"), 800)
    _check_clean(doc, 800 * 267)
    assert rc == 0
