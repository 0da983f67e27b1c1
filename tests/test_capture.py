"""Capture reading: formats, link types, damaged files, and a fuzz that only pktlab errors escape."""

import io
import json
import os
import random
import struct

import pytest

from pktlab.packet import frames as C
from pktlab.packet.capture import CaptureError, count_frames, frames_from_bytes, read_frames
from pktlab.packet.frames import Problem
from pktlab.packet.write import PcapngInterface, PcapngPacket, write_pcap, write_pcapng
from pktlab.errors import PktlabError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PCAPS = os.path.join(REPO, "pcaps")
T0 = 1_700_000_000_123_456_789


def _manifest():
    with open(os.path.join(PCAPS, "MANIFEST.json")) as f:
        return json.load(f)["files"]


def _eth(n=60, et=b"\x08\x00", fill=0x11):
    return b"\x02" * 6 + b"\x04" * 6 + et + bytes([fill]) * (n - 14)


FRAMES = [(T0, _eth(60)), (T0 + 1_000_001, _eth(100, fill=0x22)), (T0 + 2_500_000_000, _eth(14))]


# --- the corpus ----------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", _manifest(), ids=lambda e: e["file"])
def test_every_corpus_file_reads_completely(entry):
    path = os.path.join(PCAPS, entry["file"])
    frames = list(read_frames(path))
    assert len(frames) == entry["frames"] == count_frames(path)
    assert [f.index for f in frames] == list(range(1, len(frames) + 1))
    synth = any(lt != C.LINKTYPE_ETHERNET for lt in entry["linktypes"])
    for f, exp in zip(frames, entry["expected"]):
        assert f.truncated == exp.get("truncated", False)
        if not synth:
            assert not f.synthesized_eth and len(f.data) == f.caplen
    ts = [f.ts_ns for f in frames]
    assert ts == sorted(ts)


def test_corpus_link_types_are_synthesized_and_said_so():
    sll = list(read_frames(os.path.join(PCAPS, "cooked-sll.pcap")))
    assert all(f.synthesized_eth and f.original_linktype == C.LINKTYPE_LINUX_SLL for f in sll)
    # the cooked header's EtherType and source address are kept; 16 cooked bytes became 14
    assert sll[0].data[12:14] == b"\x08\x00" and sll[0].data[6:12] == bytes.fromhex("00005e005301")
    assert sll[1].data[6:12] == bytes.fromhex("00005e005302")
    assert len(sll[0].data) == sll[0].caplen - 2
    assert sll[3].data[12:14] == b"\x86\xdd" and sll[4].data[12:14] == b"\x08\x06"
    assert sll[5].data[12:14] == b"\x81\x00"
    sll2 = list(read_frames(os.path.join(PCAPS, "cooked-sll2.pcap")))
    assert all(f.original_linktype == C.LINKTYPE_LINUX_SLL2 for f in sll2)
    assert len(sll2[0].data) == sll2[0].caplen - 6 and sll2[0].data[12:14] == b"\x08\x00"
    raw = list(read_frames(os.path.join(PCAPS, "raw-ip.pcap")))
    assert [f.data[12:14] for f in raw] == [b"\x08\x00", b"\x08\x00", b"\x86\xdd", b"\x08\x00"]
    assert all(f.data[:12] == bytes(12) and len(f.data) == f.caplen + 14 for f in raw)
    assert {f.data[12:14] for f in read_frames(os.path.join(PCAPS, "raw-ipv4.pcap"))} == {b"\x08\x00"}
    assert {f.data[12:14] for f in read_frames(os.path.join(PCAPS, "raw-ipv6.pcap"))} == {b"\x86\xdd"}


def test_corpus_two_interfaces_and_clocks():
    fr = list(read_frames(os.path.join(PCAPS, "two-interfaces.pcapng")))
    assert [f.interface for f in fr] == [0, 1, 0, 1, 0, 1]
    assert [f.linktype for f in fr] == [1, 101, 1, 101, 1, 101]
    assert [f.synthesized_eth for f in fr] == [False, True] * 3
    base = _manifest_base()
    # interface 0 keeps nanoseconds, interface 1 microseconds (the generator's 1 ms steps fit)
    assert [f.ts_ns - base for f in fr] == [i * 1_000_000 for i in range(6)]


def _manifest_base():
    with open(os.path.join(PCAPS, "MANIFEST.json")) as f:
        return json.load(f)["base_ts_ns"]


def test_corpus_nanosecond_and_big_endian():
    ns = list(read_frames(os.path.join(PCAPS, "nanosecond.pcap")))
    assert [f.ts_ns - ns[0].ts_ns for f in ns] == [0, 7, 14, 21, 28]
    be = list(read_frames(os.path.join(PCAPS, "bigendian.pcap")))
    assert [f.data for f in be] == [f.data for f in ns]


# --- formats, written and read back ----------------------------------------------------------------

@pytest.mark.parametrize("byteorder", ["little", "big"])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcap_both_magics_and_byte_orders(tmp_path, byteorder, nanosecond):
    p = tmp_path / "x.pcap"
    write_pcap(p, FRAMES, nanosecond=nanosecond, byteorder=byteorder)
    got = list(read_frames(p))
    res = 1 if nanosecond else 1000
    assert [(f.ts_ns, f.data) for f in got] == [(t // res * res, d) for t, d in FRAMES]
    assert [f.offset for f in got] == [24, 24 + 16 + 60, 24 + 32 + 160]
    head = p.read_bytes()[:4]
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    assert head == magic.to_bytes(4, byteorder)


def test_snaplen_truncated_frame_is_marked(tmp_path):
    p = tmp_path / "snap.pcap"
    write_pcap(p, [(T0, _eth(60)[:40], 60), (T0, _eth(60), 60)], snaplen=40)
    a, b = read_frames(p)
    assert a.truncated and a.caplen == 40 and a.wirelen == 60 and len(a.data) == 40
    assert not b.truncated


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_pcapng_interfaces_resolutions_and_blocks(tmp_path, byteorder):
    p = tmp_path / "x.pcapng"
    ifs = [PcapngInterface(C.LINKTYPE_ETHERNET, 0, 9), PcapngInterface(C.LINKTYPE_RAW, 0, 6),
           PcapngInterface(C.LINKTYPE_LINUX_SLL, 0, 3)]
    ip4 = bytes([0x45]) + bytes(19)
    sll = struct.pack(">HHH8sH", 0, 1, 6, b"\x02\x00\x00\x00\x00\x07\0\0", 0x0800) + ip4
    write_pcapng(p, ifs, [PcapngPacket(0, T0, _eth(60)), PcapngPacket(1, T0, ip4, 1500),
                          PcapngPacket(2, T0, sll)], byteorder=byteorder)
    a, b, c = read_frames(p)
    assert (a.ts_ns, a.interface, a.synthesized_eth) == (T0, 0, False)
    assert b.ts_ns == T0 // 1000 * 1000 and b.truncated and b.data[12:14] == b"\x08\x00"
    assert c.ts_ns == T0 // 1_000_000 * 1_000_000 and c.data[6:12] == b"\x02\0\0\0\0\x07"
    assert count_frames(p) == 3


def _block(bo, btype, body):
    body += bytes(-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(bo + "II", btype, n) + body + struct.pack(bo + "I", n)


def _shb(bo):
    return _block(bo, 0x0A0D0D0A, struct.pack(bo + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def _idb(bo, lt, snap=0, opts=b""):
    return _block(bo, 1, struct.pack(bo + "HHI", lt, 0, snap) + opts)


def _opt(bo, code, val):
    return struct.pack(bo + "HH", code, len(val)) + val + bytes(-len(val) % 4)


def test_pcapng_hand_made_spb_opb_options_unknown_blocks_and_sections():
    bo = "<"
    d = _eth(64)
    tsres_2_20 = _opt(bo, 9, bytes([0x80 | 20])) + _opt(bo, 14, struct.pack(bo + "q", 100)) + \
        _opt(bo, 0, b"")
    data = (_shb(bo) + _idb(bo, 1, 60, tsres_2_20)
            + _block(bo, 4, b"\x01\x00\x04\x00\x0a\x00\x00\x01" + b"\0" * 4)       # NRB
            + _block(bo, 3, struct.pack(bo + "I", 64) + d)                          # SPB
            + _block(bo, 0x00000BAD, b"custom stuff")                               # unknown
            + _block(bo, 2, struct.pack(bo + "HHIIII", 0, 0, 0, 1 << 20, 64, 64) + d)  # OPB
            + _block(bo, 5, struct.pack(bo + "III", 0, 0, 0)))                      # ISB
    bo2 = ">"
    data += (_shb(bo2) + _idb(bo2, 101)
             + _block(bo2, 6, struct.pack(bo2 + "IIIII", 0, 0, 5, 21, 21) + b"\x60" + bytes(20)))
    frames = frames_from_bytes(data, "hand.pcapng")
    assert [f.index for f in frames] == [1, 2, 3]
    spb, opb, epb = frames
    assert spb.caplen == 60 and spb.wirelen == 64 and spb.truncated and spb.ts_ns == 0
    assert opb.ts_ns == 100 * 10**9 + 10**9           # 2^20 ticks of 2^-20 s, plus the offset
    assert epb.linktype == 101 and epb.data[12:14] == b"\x86\xdd" and epb.ts_ns == 5000
    assert count_frames(io.BytesIO(data)) == 3


# --- refused link types ---------------------------------------------------------------------------

def test_refused_link_type_is_named(tmp_path):
    p = tmp_path / "wifi.pcap"
    write_pcap(p, [b"\x00" * 40], linktype=105)
    with pytest.raises(C.UnsupportedLinkType, match=r"IEEE802_11 \(105\)") as e:
        list(read_frames(p))
    assert isinstance(e.value, CaptureError) and isinstance(e.value, PktlabError)
    assert "frame 1 at byte 24" in str(e.value) and str(p) in str(e.value)
    p2 = tmp_path / "null.pcap"
    write_pcap(p2, [b"\x02\0\0\0" + bytes(20)], linktype=0)
    with pytest.raises(CaptureError, match="NULL"):
        list(read_frames(p2))


def test_refused_interface_in_lenient_mode_keeps_the_others(tmp_path):
    p = tmp_path / "mixed.pcapng"
    write_pcapng(p, [PcapngInterface(1), PcapngInterface(127)],
                 [PcapngPacket(0, T0, _eth(60)), PcapngPacket(1, T0, b"\0" * 30),
                  PcapngPacket(1, T0, b"\0" * 30), PcapngPacket(0, T0, _eth(61))])
    with pytest.raises(CaptureError, match="IEEE802_11_RADIOTAP"):
        list(read_frames(p))
    probs = []
    got = list(read_frames(p, on_error=probs.append))
    assert [f.index for f in got] == [1, 4]
    assert len(probs) == 1 and probs[0].frame == 2 and "IEEE802_11_RADIOTAP (127)" in probs[0].reason


def test_short_cooked_frame_is_reported(tmp_path):
    p = tmp_path / "sll.pcap"
    write_pcap(p, [b"\0" * 10, struct.pack(">HHH8sH", 0, 1, 6, bytes(8), 0x0800) + b"\x45" + bytes(19)],
               linktype=113)
    with pytest.raises(CaptureError, match="shorter than the 16-byte Linux cooked"):
        list(read_frames(p))
    probs = []
    assert len(list(read_frames(p, on_error=probs.append))) == 1 and probs[0].frame == 1


# --- damage ----------------------------------------------------------------------------------------

def test_truncated_pcap_errors_name_file_frame_and_offset(tmp_path):
    p = tmp_path / "cut.pcap"
    write_pcap(p, FRAMES)
    data = p.read_bytes()
    cases = {
        10: ("byte 0", "24-byte pcap file header"),
        24 + 16 + 60 + 5: ("frame 2 at byte 100", "record header"),
        24 + 16 + 60 + 16 + 50: ("frame 2 at byte 100", "only 50 remain"),
    }
    for cut, (where, what) in cases.items():
        p.write_bytes(data[:cut])
        with pytest.raises(CaptureError) as e:
            list(read_frames(p))
        msg = str(e.value)
        assert str(p) in msg and where in msg and what in msg, msg
        assert e.value.offset == int(where.split()[-1]) and isinstance(e.value, ValueError)


def test_lenient_mode_stops_cleanly_at_a_cut_off_last_frame(tmp_path):
    p = tmp_path / "cut.pcap"
    write_pcap(p, FRAMES)
    p.write_bytes(p.read_bytes()[:-3])
    probs = []
    got = list(read_frames(p, on_error=probs.append))
    assert len(got) == 2
    assert len(probs) == 1 and probs[0].fatal and probs[0].frame == 3
    assert isinstance(probs[0], Problem) and "frame 3 at byte" in probs[0].message()


def test_lenient_mode_skips_a_bad_pcapng_block_by_its_length():
    bo = "<"
    good = _block(bo, 6, struct.pack(bo + "IIIII", 0, 0, 0, 60, 60) + _eth(60))
    bad_len = _block(bo, 6, struct.pack(bo + "IIIII", 0, 0, 0, 999, 999) + _eth(60))
    bad_iface = _block(bo, 6, struct.pack(bo + "IIIII", 7, 0, 0, 60, 60) + _eth(60))
    bad_trailer = bytearray(good)
    bad_trailer[-4:] = struct.pack(bo + "I", 12345)
    data = _shb(bo) + _idb(bo, 1) + good + bad_len + bad_iface + bytes(bad_trailer) + good
    with pytest.raises(CaptureError, match="frame 2 at byte"):
        frames_from_bytes(data)
    probs = []
    got = frames_from_bytes(data, "x.pcapng", on_error=probs.append)
    assert [f.index for f in got] == [1, 5]
    assert [p.frame for p in probs] == [2, 3, 4] and not any(p.fatal for p in probs)
    assert "captured length 999" in probs[0].reason and "interface 7" in probs[1].reason
    assert "trailing length" in probs[2].reason


def test_not_a_capture_and_missing_file():
    with pytest.raises(CaptureError, match="not a pcap or pcapng file"):
        frames_from_bytes(b"hello world, not a capture")
    with pytest.raises(CaptureError, match="gzip"):
        frames_from_bytes(b"\x1f\x8b\x08\x00" + bytes(40))
    with pytest.raises(CaptureError, match="too short"):
        frames_from_bytes(b"")
    with pytest.raises(CaptureError, match="cannot open"):
        list(read_frames("/nonexistent/x.pcap"))
    with pytest.raises(CaptureError, match="cannot open"):
        count_frames("/nonexistent/x.pcap")


def test_count_frames_refuses_damage(tmp_path):
    p = tmp_path / "x.pcap"
    write_pcap(p, FRAMES)
    p.write_bytes(p.read_bytes()[:-1])
    with pytest.raises(CaptureError, match="frame 3"):
        count_frames(p)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("data_only", [False, True])
def test_reading_is_streaming(tmp_path, fmt, data_only):
    """A generator that reads as it goes: when the first frame comes out, most of a 6 MB file
    is still unread (a reader that builds a list first has read it all); by the last frame,
    all of it has been read."""
    p = tmp_path / f"many.{fmt}"
    n_frames = 60000
    frames = (_eth(60 + i % 50) for i in range(n_frames))
    if fmt == "pcap":
        write_pcap(p, frames)
    else:
        write_pcapng(p, [PcapngInterface(C.LINKTYPE_ETHERNET, 0, 9)],
                     (PcapngPacket(0, T0 + i, f) for i, f in enumerate(frames)))
    size = p.stat().st_size
    with open(p, "rb") as f:
        it = read_frames(f, data_only=data_only)
        first = next(it)
        read_for_first = f.tell()
        assert read_for_first <= size // 3, \
            f"{read_for_first} of {size} bytes read before the first frame came out"
        assert (first if data_only else first.data) == _eth(60)
        n = 1 + sum(1 for _ in it)
        assert f.tell() == size
    assert n == n_frames == count_frames(p)


# --- fuzz: damage never escapes as anything but a pktlab error ---------------------------------------

def _mutations(rng, data, n):
    for _ in range(n):
        b = bytearray(data)
        k = rng.random()
        if k < 0.3:
            b = b[:rng.randrange(len(b) + 1)]
        elif k < 0.7:
            for _i in range(rng.randint(1, 6)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif k < 0.85:
            i = rng.randrange(0, len(b) - 4)
            b[i:i + 4] = struct.pack("<I", rng.choice([0, 1, 11, 12, 13, 0xFFFFFFFF, 1 << 24,
                                                       rng.randrange(1 << 32)]))
        else:
            i = rng.randrange(len(b))
            b = b[:i] + bytes(rng.randrange(1, 40)) + b[i:]
        yield bytes(b)


def test_fuzzed_captures_raise_only_pktlab_errors():
    rng = random.Random(7)
    seeds = [open(os.path.join(PCAPS, n), "rb").read() for n in
             ("tcp-http.pcap", "two-interfaces.pcapng", "cooked-sll.pcap", "bigendian.pcap",
              "nanosecond.pcap", "raw-ip.pcap", "cooked-sll2.pcap")]
    bo = "<"
    seeds.append(_shb(bo) + _idb(bo, 1, 60, _opt(bo, 9, b"\x89") + _opt(bo, 0, b""))
                 + _block(bo, 3, struct.pack(bo + "I", 64) + _eth(64))
                 + _block(bo, 2, struct.pack(bo + "HHIIII", 0, 0, 0, 1, 60, 60) + _eth(60)))
    runs = 0
    for seed in seeds:
        for data in _mutations(rng, seed, 500):
            runs += 1
            try:
                for fr in frames_from_bytes(data, "fuzz"):
                    assert isinstance(fr.data, bytes)
            except PktlabError:
                pass
            probs = []
            frames_from_bytes(data, "fuzz", on_error=probs.append)   # lenient: never raises
            assert all(isinstance(p, Problem) for p in probs)
            try:
                count_frames(io.BytesIO(data))
            except PktlabError:
                pass
    assert runs >= 3000


def test_problem_messages_say_what_to_do(tmp_path):
    p = tmp_path / "cut.pcap"
    write_pcap(p, FRAMES)
    p.write_bytes(p.read_bytes()[:50])
    with pytest.raises(CaptureError) as e:
        list(read_frames(p))
    assert "on_error" in str(e.value) or "re-capture" in str(e.value)


def _damaged_variants(tmp):
    """A pcap cut off mid-frame, one with a garbage record header, and the intact one."""
    path = os.path.join(tmp, "v.pcap")
    write_pcap(path, [(t, d) for t, d in FRAMES])
    with open(path, "rb") as f:
        raw = f.read()
    bad_header = bytearray(raw)
    struct.pack_into("<I", bad_header, 24 + 16 + 60 + 8, 10 ** 7)   # frame 2's captured length
    return {"cut": raw[:-7], "garbage": bytes(bad_header), "good": raw}


@pytest.mark.parametrize("entry", _manifest(), ids=lambda e: e["file"])
def test_data_only_yields_the_frames_bytes_and_the_same_problems(entry):
    """The replay's fast reading (bytes only, no Frame objects) may skip no check: same bytes,
    same problems, on every corpus file (pcap, pcapng, cooked and raw link types)."""
    path = os.path.join(PCAPS, entry["file"])
    p1, p2 = [], []
    frames = [f.data for f in read_frames(path, on_error=p1.append)]
    data = list(read_frames(path, on_error=p2.append, data_only=True))
    assert data == frames
    assert [str(p) for p in p1] == [str(p) for p in p2]


@pytest.mark.parametrize("name", ["cut", "garbage", "good"])
def test_data_only_reports_damage_like_the_frame_reader(name, tmp_path):
    buf = _damaged_variants(str(tmp_path))[name]
    p1, p2 = [], []
    frames = [f.data for f in read_frames(io.BytesIO(buf), on_error=p1.append)]
    data = list(read_frames(io.BytesIO(buf), on_error=p2.append, data_only=True))
    assert data == frames
    assert [str(p) for p in p1] == [str(p) for p in p2]
    assert bool(p1) == (name != "good")
    with pytest.raises(CaptureError) if name != "good" else _nothing():
        list(read_frames(io.BytesIO(buf), data_only=True))


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
