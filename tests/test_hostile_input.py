"""Hostile input: every bad capture or argument exits 2 with one line on stderr, no traceback,
before any lab is built; a capture damaged part-way is replayed up to the damage and says so;
a closed pipe ends quietly; a user without root is told the truth.

The corpus of bad files is made here, from the bundled captures (no binaries committed): each
capture cut at many offsets, compressed, mangled, random, text, empty, special files. Most runs
are in-process (pktlab.cli.main with Lab.up and netns.create replaced by a tripwire: reaching
either means a lab would be built); a dozen run as real subprocesses while /run/netns and the
lab state files are watched for anything the run makes.
"""

import bz2
import gzip
import io
import json
import lzma
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile

import pytest

from conftest import PCAPS, REPO, corpus_files, require_hook, require_root

PKTLAB = os.path.join(REPO, ".venv", "bin", "pktlab")
if not os.path.exists(PKTLAB):
    PKTLAB = shutil.which("pktlab") or PKTLAB
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
STATE_DIR = "/run/pktlab/labs"
NETNS_DIR = "/run/netns"


# --- the corpus: an oracle of its own, by hand, not pktlab's reader ------------------------------

def _u32(data, off, bo):
    return struct.unpack_from(bo + "I", data, off)[0]


def _eth_len(linktype, caplen):
    """The frame's length once pktlab gives it an Ethernet header, None if unreadable."""
    if linktype == 1:
        return caplen
    if linktype == 113:
        return caplen - 16 + 14 if caplen >= 16 else None
    if linktype == 276:
        return caplen - 20 + 14 if caplen >= 20 else None
    if linktype in (101, 228, 229):
        return caplen + 14
    return None


def _pcap_layout(data):
    """(record end offsets, Ethernet lengths of those records, first record offset)."""
    bo = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    lt = _u32(data, 20, bo) & 0xFFFF
    ends, lens, off = [], [], 24
    while off + 16 <= len(data):
        end = off + 16 + _u32(data, off + 8, bo)
        if end > len(data):
            break
        ends.append(end)
        lens.append(_eth_len(lt, _u32(data, off + 8, bo)))
        off = end
    return ends, lens, 24


def _pcapng_layout(data):
    """Block by block: (block end offsets, per block the Ethernet length of its frame or None),
    little-endian sections with Ethernet (1) and raw IP (101) interfaces, as the corpus has."""
    ends, lens, links, off = [], [], [], 0
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from("<II", data, off)
        if off + blen > len(data):
            break
        if btype == 1:
            links.append(struct.unpack_from("<H", data, off + 8)[0])
        n = None
        if btype == 6:
            iid, cap = _u32(data, off + 8, "<"), _u32(data, off + 20, "<")
            n = _eth_len(links[iid], cap) if iid < len(links) else None
        ends.append(off + blen)
        lens.append(n)
        off += blen
    return ends, lens, ends[0] if ends else len(data)


def _expect_cut(data, cut, pcapng):
    """What a capture cut to its first `cut` bytes must do: 'bad' (refused), 'partial'
    (replayed up to the damage), 'good'; and whether `cast` exits 0."""
    ends, lens, first = (_pcapng_layout if pcapng else _pcap_layout)(data)
    if cut < first:
        return "bad", False
    boundary = cut == first or cut in ends
    whole = [n for e, n in zip(ends, lens) if e <= cut and n is not None]
    sendable = [n for n in whole if 14 <= n <= 1514]
    if not sendable:
        return "bad", boundary and bool(whole)
    return ("good" if boundary else "partial"), boundary


def _cuts(data, pcapng):
    ends, _, first = (_pcapng_layout if pcapng else _pcap_layout)(data)
    n = len(data)
    cuts = {0, 1, 3, 4, 5, 8, 12, 16, 20, 23, first, first + 1, first + 8, first + 15,
            n // 3, n // 2, n - 1, n - 4, n - 17}
    if ends:
        cuts |= {ends[0] - 1, ends[0], ends[0] + 3}
    if len(ends) > 1:
        cuts |= {ends[1] - 7, ends[1] + 16}
    return sorted(c for c in cuts if 0 <= c < n)


def _pcap(frames, linktype=1, snaplen=262144, magic=0xA1B2C3D4, version=(2, 4), caplens=None):
    out = struct.pack("<IHHiIII", magic, version[0], version[1], 0, 0, snaplen, linktype)
    for i, f in enumerate(frames):
        cap = caplens[i] if caplens and caplens[i] is not None else len(f)
        out += struct.pack("<IIII", 1_700_000_000 + i, 0, cap, len(f)) + f
    return out


def _blk(btype, body, blen=None, trail=None):
    body += bytes(-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n if blen is None else blen) + body + struct.pack(
        "<I", n if trail is None else trail)


def _shb():
    return _blk(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def _idb(linktype):
    return _blk(1, struct.pack("<HHI", linktype, 0, 0))


def _epb(iid, frame, **kw):
    return _blk(6, struct.pack("<IIIII", iid, 0, 0, len(frame), len(frame)) + frame, **kw)


def _eth(n=60, fill=0x11):
    return (bytes.fromhex("020000000002" "020000000001" "0800") + bytes.fromhex(
        "4500002e00010000401100000ac800010ac80002") + bytes([fill]) * 64)[:n].ljust(n, b"\0")


class Variant:
    """A hostile input and what must happen: expect (replay) 'bad', 'partial' or 'good';
    cast_ok: cast exits 0; words: what the one stderr line says (cast_words: cast's, when
    they differ)."""

    def __init__(self, name, expect, cast_ok=False, words=(), args=(), path=None,
                 cast_words=None):
        self.name, self.expect, self.cast_ok, self.words = name, expect, cast_ok, words
        self.cast_words = words if cast_words is None else cast_words
        self.args, self.path = list(args), path


def hostile_corpus(tmp):
    """>= 96 hostile files: (Variant with .path) each with its expected outcome."""
    out = []

    def add(name, data, expect, cast_ok=False, words=(), args=(), cast_words=None):
        p = os.path.join(tmp, name)
        with open(p, "wb") as f:
            f.write(data)
        v = Variant(name, expect, cast_ok, words, args, p, cast_words)
        out.append(v)
        return v

    # every bundled capture, cut at many offsets (inside the file header, inside record
    # headers, inside frames, at frame boundaries)
    for path in corpus_files():
        data = open(path, "rb").read()
        pcapng = path.endswith(".pcapng")
        base = os.path.basename(path).rsplit(".", 1)[0]
        for cut in _cuts(data, pcapng):
            expect, cast_ok = _expect_cut(data, cut, pcapng)
            add(f"{base}-cut{cut}.{'pcapng' if pcapng else 'pcap'}", data[:cut], expect, cast_ok)

    mixed = open(os.path.join(PCAPS, "tcp-http.pcap"), "rb").read()
    # compressed and archived captures: say which, and how to undo it
    add("http.pcap.gz", gzip.compress(mixed), "bad", words=("gzip-compressed", "gunzip it first"))
    add("http.pcap.bz2", bz2.compress(mixed), "bad", words=("bzip2-compressed", "bunzip2"))
    add("http.pcap.xz", lzma.compress(mixed), "bad", words=("xz-compressed", "unxz"))
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("http.pcap", mixed)
    add("http.zip", zbuf.getvalue(), "bad", words=("zip archive", "unzip"))
    add("gz-named.pcap", gzip.compress(mixed), "bad", words=("gzip-compressed",))
    # text and nothing
    add("hello.pcap", b"hello world\n", "bad", words=("text",))
    add("readme.pcap", open(os.path.join(PCAPS, "README.md"), "rb").read(), "bad",
        words=("text",))
    add("manifest.pcap", open(os.path.join(PCAPS, "MANIFEST.json"), "rb").read()[:4000], "bad",
        words=("text",))
    add("script.pcap", b"#!/bin/sh\necho hi\n", "bad", words=("text",))
    add("empty.pcap", b"", "bad", words=("0 bytes",))
    add("one-byte.pcap", b"\xd4", "bad")
    add(f"bad\nname{chr(0x2028)}.pcap", b"hello", "bad")          # one line still
    add("elf.pcap", open(sys.executable, "rb").read(4096), "bad", words=("ELF",))
    # random bytes, never a pcap/pcapng magic
    rng = random.Random(11)
    for size in (1, 3, 4, 5, 16, 24, 25, 100, 1000, 65536):
        b = bytearray(rng.randbytes(size))
        b[0] = 0x42
        add(f"random-{size}.pcap", bytes(b), "bad")
    # pcap headers that lie
    add("header-only.pcap", _pcap([]), "bad", words=("no frames",))
    add("version3.pcap", _pcap([_eth()], version=(3, 0)), "bad", words=("version",))
    add("kuznetzov.pcap", _pcap([_eth()], magic=0xA1B2CD34), "bad", words=("editcap",))
    add("snaplen-absurd.pcap", _pcap([_eth()] * 3, snaplen=0xFFFFFFFF), "good", cast_ok=True)
    add("snaplen-zero.pcap", _pcap([_eth()] * 3, snaplen=0), "good", cast_ok=True)
    add("caplen-absurd-first.pcap", _pcap([_eth()] * 3, caplens=[0xFFFFFFF0, None, None]),
        "bad", words=("frame 1",))
    add("caplen-absurd-third.pcap", _pcap([_eth()] * 3, caplens=[None, None, 0x7FFFFFFF]),
        "partial", words=("frame 3",))
    add("caplen-past-end.pcap", _pcap([_eth()] * 2, caplens=[None, 5000]), "partial")
    add("all-empty-frames.pcap", _pcap([b""] * 4), "bad", cast_ok=True,
        words=("none of its 4 frame(s)", "shorter than an Ethernet header"))
    add("all-jumbo.pcap", _pcap([_eth(3000)] * 3), "bad", cast_ok=True,
        words=("longer than a lab with MTU 1500", "--mtu"))
    add("all-jumbo-mtu9000.pcap", _pcap([_eth(3000)] * 3), "good", cast_ok=True,
        args=("--mtu", "9000"))
    # link types pktlab refuses, and cooked headers cut short
    for lt in (0, 105, 127, 147, 65535):
        add(f"linktype-{lt}.pcap", _pcap([_eth()] * 3, linktype=lt), "bad",
            words=("not one pktlab parses",))
    add("sll-short.pcap", _pcap([b"\x00" * 10] * 3, linktype=113), "bad",
        words=("16-byte Linux cooked",))
    add("sll2-short.pcap", _pcap([b"\x00" * 19] * 3, linktype=276), "bad",
        words=("20-byte Linux cooked v2",))
    sll = bytes.fromhex("0000000100060200000000010000" "0800") + _eth()[14:]
    add("sll-some-short.pcap", _pcap([b"\x00" * 10, sll, b"\x00" * 3], linktype=113), "good",
        cast_ok=True)
    # pcapng: no interface, bad lengths, bad byte order, refused interfaces
    ok = _epb(0, _eth())
    add("ng-no-idb.pcapng", _shb() + ok + ok, "bad", words=("Interface Description Block",))
    add("ng-shb-only.pcapng", _shb(), "bad", words=("no frames",))
    add("ng-idb-only.pcapng", _shb() + _idb(1), "bad", words=("no frames",))
    add("ng-bad-bom.pcapng", _shb()[:8] + b"\x11\x22\x33\x44" + _shb()[12:] + _idb(1) + ok,
        "bad", words=("byte-order",))
    add("ng-shb-len5.pcapng", _blk(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1),
                                   blen=5) + _idb(1) + ok, "bad")
    add("ng-epb-len-odd-first.pcapng", _shb() + _idb(1) + _epb(0, _eth(), blen=0x63) + ok,
        "bad", words=("multiple of 4",))
    add("ng-epb-len-huge-third.pcapng", _shb() + _idb(1) + ok + ok + _epb(0, _eth(),
                                                                          blen=0x7FFFFFF0),
        "partial")
    add("ng-trailers-all-wrong.pcapng", _shb() + _idb(1) + _epb(0, _eth(), trail=8) * 3, "bad",
        words=("trailing length",))
    add("ng-refused-only.pcapng", _shb() + _idb(105) + _idb(127) + _epb(0, _eth()) +
        _epb(1, _eth()), "bad", words=("not one pktlab parses",))
    add("ng-refused-and-eth.pcapng", _shb() + _idb(105) + _idb(1) + _epb(0, _eth()) +
        _epb(1, _eth()), "good", cast_ok=True)
    add("ng-version2.pcapng", _blk(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 2, 0, -1)) +
        _idb(1) + ok, "bad", words=("version",))
    add("ng-iface-7.pcapng", _shb() + _idb(1) + _epb(7, _eth()) * 2, "bad",
        words=("interface 7",))
    return out


def special_paths(tmp):
    """Paths that are not regular files: a replay refuses them without opening them."""
    d = os.path.join(tmp, "a-directory.pcap")
    os.makedirs(d, exist_ok=True)
    fifo = os.path.join(tmp, "fifo.pcap")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    loop = os.path.join(tmp, "loop.pcap")
    if not os.path.lexists(loop):
        os.symlink(loop, loop)
    return [Variant("directory", "bad", words=("directory",), path=d),
            Variant("fifo", "bad", words=("FIFO",), path=fifo, cast_words=()),
            Variant("dev-zero", "bad", words=("character device",), path="/dev/zero",
                    cast_words=("not a pcap or pcapng file",)),
            Variant("symlink-loop", "bad", path=loop, cast_words=()),
            Variant("missing", "bad", words=("no such capture",),
                    path=os.path.join(tmp, "missing.pcap"))]


# --- in-process runs, with a tripwire on building a lab -----------------------------------------

class ReachedLab(BaseException):
    """Raised where a lab would be built (BaseException: nothing in pktlab may swallow it)."""


@pytest.fixture
def tripwire(monkeypatch):
    """Lab.up and netns.create raise ReachedLab: a run that gets there was not refused."""
    from pktlab.lab import labs as lab, netns
    calls = []

    def reached(*a, **k):
        calls.append(a)
        raise ReachedLab()
    monkeypatch.setattr(lab.Lab, "up", reached)
    monkeypatch.setattr(netns, "create", reached)
    return calls


@pytest.fixture
def one_parser(monkeypatch):
    """main() builds its argparse parser on every call (about 10 ms here, nearly all of it
    argparse's and gettext's own work): built once for a test that calls main() a thousand
    times and more (the parser depends on neither the arguments nor the input)."""
    from pktlab import cli
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)


def run_cli(capsys, argv):
    """(exit status or 'lab', stdout, stderr) of pktlab.cli.main(argv), in this process."""
    from pktlab.cli import main
    capsys.readouterr()
    t = time.perf_counter()
    try:
        rc = main(argv)
    except ReachedLab:
        rc = "lab"
    elapsed = time.perf_counter() - t
    out, err = capsys.readouterr()
    return rc, out, err, elapsed


def one_clean_line(err):
    """The stderr of a refusal: exactly one line, no traceback."""
    return len(err.splitlines()) == 1 and err.endswith("\n") and "Traceback" not in err


def test_corpus_is_large_and_varied(tmp_path):
    vs = hostile_corpus(str(tmp_path))
    kinds = {k: sum(v.expect == k for v in vs) for k in ("bad", "partial", "good")}
    assert len(vs) >= 96 and kinds["bad"] >= 96 and kinds["partial"] >= 20, kinds


def test_every_hostile_capture_is_refused_in_one_line_or_replayed_and_said(tmp_path, capsys,
                                                                              tripwire,
                                                                              one_parser):
    """replay: bad -> exit 2, one stderr line naming the file, no lab; partial -> the lab is
    reached after a one-line note that the capture is damaged; good -> the lab is reached."""
    require_root()          # as root, the only refusals left are the input's
    vs = hostile_corpus(str(tmp_path)) + special_paths(str(tmp_path))
    wrong, slowest = [], 0.0
    # every seventh also with --step (it takes the same check, then steps instead)
    runs = [(v, []) for v in vs] + [(v, ["--step"]) for v in vs[::7]]
    for v, step in runs:
        rc, out, err, elapsed = run_cli(capsys, ["replay", v.path, "--hooks", "xdp", *v.args,
                                                 *step])
        slowest = max(slowest, elapsed) if rc == 2 else slowest
        if v.expect == "bad":
            ok = (rc == 2 and out == "" and one_clean_line(err) and
                  os.path.basename(v.path).split("\n")[0] in err and
                  all(w in err for w in v.words))
        elif v.expect == "partial":
            ok = (rc == "lab" and one_clean_line(err) and
                  "are replayed, the rest of the file is not" in err and
                  all(w in err for w in v.words))
        else:
            ok = rc == "lab" and err == ""
        if not ok:
            wrong.append((v.name, step, v.expect, rc, err[-300:]))
    print(f"{len(runs)} replays of {len(vs)} hostile inputs; slowest refusal "
          f"{slowest * 1000:.0f} ms")
    assert not wrong, wrong[:10]


def test_every_hostile_capture_through_cast(tmp_path, capsys, one_parser):
    """cast: exit 0 only with at least one frame shown; otherwise 2 and one stderr line."""
    vs = hostile_corpus(str(tmp_path)) + [v for v in special_paths(str(tmp_path))
                                          if v.name != "fifo"]      # cast reads a FIFO: blocks
    wrong = []
    for v in vs:
        for json_ in (False, True):
            rc, out, err, _ = run_cli(capsys, ["cast", v.path] + (["--json"] if json_ else []))
            if v.cast_ok:
                ok = rc == 0 and err == "" and (json.loads(out)["count"] > 0 if json_ else
                                                out.startswith("frame "))
            else:
                ok = rc == 2 and one_clean_line(err) and all(w in err for w in v.cast_words)
                if json_ and out:
                    ok = ok and isinstance(json.loads(out), dict)   # still one document
            if rc == 0:
                n = json.loads(out)["count"] if json_ else out.count("\nframe ") + 1
                ok = ok and n > 0                       # never exit 0 with 0 frames
            if not ok:
                wrong.append((v.name, json_, rc, err[-300:]))
    assert not wrong, wrong[:10]


@pytest.mark.parametrize("feed,rc,count", [("tcp-http.pcap", 0, 10), ("gzip", 2, 0)])
def test_cast_streams_a_fifo(tmp_path, capsys, feed, rc, count):
    """cast reads a capture from a FIFO as it comes (a replay refuses one: it reads twice)."""
    fifo = str(tmp_path / "live.pcap")
    os.mkfifo(fifo)
    data = open(os.path.join(PCAPS, "tcp-http.pcap"), "rb").read()
    data = gzip.compress(data) if feed == "gzip" else data

    def writer():
        with open(fifo, "wb") as f:
            f.write(data)
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    got, out, err, _ = run_cli(capsys, ["cast", fifo, "--json"])
    t.join(10)
    assert got == rc and json.loads(out)["count"] == count
    assert (err == "") if rc == 0 else (one_clean_line(err) and "gunzip it first" in err)


def test_partly_readable_capture_is_replayed_up_to_the_damage_and_says_so(tmp_path, capsys):
    """For real (no tripwire: a lab, the XDP hook, frames sent; main() in this process, so
    the program is compiled once for the session): a capture cut inside its 7th frame replays
    6 frames; stderr says so first, the text's first line and --json's "capture" say so, exit
    status from the verdicts."""
    require_hook("xdp")
    data = open(os.path.join(PCAPS, "tcp-http.pcap"), "rb").read()
    ends, _, _ = _pcap_layout(data)
    cut = tmp_path / "half-saved.pcap"
    cut.write_bytes(data[:ends[5] + 20])
    rc, out, err, _ = run_cli(capsys, ["replay", str(cut), "--hooks", "xdp", "--json"])
    assert rc in (0, 1), err
    assert one_clean_line(err) and "frame 7" in err
    assert "the 6 frame(s) before it are replayed" in err
    doc = json.loads(out)
    assert doc["packets"] == 6 and doc["capture"]["complete"] is False
    assert "frame 7" in doc["capture"]["damage"] and "frame 7" in doc["problems"][0]
    assert doc["leftovers"] == []
    rc, out, err, _ = run_cli(capsys, ["replay", str(cut), "--hooks", "xdp", "--loop", "3"])
    assert rc in (0, 1), err
    first = out.splitlines()[0]
    assert "replayed 18 frames" in first and "only the readable part" in first
    assert out.count("capture problem:") == 1         # once, not once per loop


# --- hostile arguments --------------------------------------------------------------------------

MIXED = os.path.join(PCAPS, "mixed.pcap")
BAD_ARGS = [
    (["replay", MIXED, "--pps", "inf"], ("--pps", "finite")),
    (["replay", MIXED, "--pps", "nan"], ("--pps", "finite")),
    (["replay", MIXED, "--pps", "1e400"], ("--pps",)),
    (["replay", MIXED, "--pps", "0"], ("must be positive",)),
    (["replay", MIXED, "--pps", "-5"], ("must be positive",)),
    (["replay", MIXED, "--pps", "fast"], ("not a number",)),
    (["replay", MIXED, "--mbps", "inf"], ("--mbps",)),
    (["replay", MIXED, "--mbps", "0"], ("--mbps",)),
    (["replay", MIXED, "--mbps", "-0.5"], ("--mbps",)),
    (["replay", MIXED, "--pps", "10", "--mbps", "1"], ("not allowed with",)),
    (["replay", MIXED, "--limit", "0"], ("--limit", "at least 1")),
    (["replay", MIXED, "--limit", "-5"], ("--limit", "at least 1")),
    (["replay", MIXED, "--limit", "2.5"], ("--limit",)),
    (["replay", MIXED, "--loop", "0"], ("--loop", "at least 1")),
    (["replay", MIXED, "--loop", "-1"], ("--loop",)),
    (["replay", MIXED, "--loop", "many"], ("--loop",)),
    (["replay", MIXED, "--mtu", "68"], ("IPv6", "1280")),
    (["replay", MIXED, "--mtu", "1279"], ("IPv6", "1280")),
    (["replay", MIXED, "--mtu", "9001"], ("9000",)),
    (["replay", MIXED, "--mtu", "70000"], ("9000",)),
    (["replay", MIXED, "--mtu", "big"], ("--mtu",)),
    (["replay", MIXED, "--hooks", "bogus"], ("choose from",)),
    (["replay", MIXED, "--hooks", ""], ("choose from",)),
    (["replay", MIXED, "--hooks", "xdp,,tc"], ("choose from",)),
    (["replay", MIXED, "--dst-mac", "zz:zz"], ("--dst-mac",)),
    (["replay", MIXED, "--dst-ip4", "999.1.1.1"], ("--dst-ip4",)),
    (["replay", MIXED, "--dst-ip6", "not-an-ip"], ("--dst-ip6",)),
    (["replay", MIXED, "--xdp-mode", "turbo"], ("--xdp-mode",)),
    (["replay", MIXED, "--nope"], ("unrecognized",)),
    (["replay"], ("required",)),
    (["replay", MIXED, "--step", "--limit", "0"], ("--limit",)),
    (["lab", "up", "--mtu", "68"], ("IPv6", "1280")),
    (["lab", "up", "--mtu", "1279"], ("IPv6", "1280")),
    (["lab", "up", "--mtu", "9001"], ("9000",)),
    (["lab", "up", "--prefix", "BAD!"], ("--prefix",)),
    (["lab", "up", "somename"], ("takes no lab names",)),
    (["lab", "down"], ("name the lab",)),
    (["lab", "down", "x", "--all"], ("--all",)),
    (["lab", "status", "--mtu", "1500"], ("--mtu",)),
    (["lab", "clean", "x"], ("takes no lab names",)),
    (["lab", "explode"], ("invalid choice",)),
    (["bench", "--only", "bogus"], ("--only",)),
    (["bench", "--only", ","], ("--only",)),
    (["bench", "--plot", "/nonexistent/dir/x.png"], ("does not exist",)),
    (["bench", "--plot", "chart.txt"], ("--plot",)),
    (["cast"], ("required",)),
    ([], ("required",)),
    (["explode"], ("invalid choice",)),
]


@pytest.mark.parametrize("argv,words", BAD_ARGS, ids=lambda a: " ".join(a) if
                         isinstance(a, list) else None)
def test_bad_arguments_exit_2_with_one_line_before_anything(argv, words, capsys, tripwire):
    rc, out, err, _ = run_cli(capsys, argv)
    assert rc == 2, (rc, err)
    assert out == "" and one_clean_line(err), err
    assert all(w in err for w in words), err
    assert not tripwire


def test_lab_up_down_clean_json_print_one_document(capsys, monkeypatch):
    """--json for lab up/down/clean: one JSON document on stdout, for real (a lab is made and
    removed); clean's document is checked with the stale labs left alone (other runs' labs are
    not ours to clean here)."""
    require_root()
    from pktlab import lab as L
    before = {s.name for s in L.list_labs()}
    try:
        rc, out, err, _ = run_cli(capsys, ["lab", "up", "--json", "--prefix", "plhz"])
        assert rc == 0, err
        doc = json.loads(out)
        name = doc["name"]
        assert doc["ns"] == [f"{name}-src", f"{name}-dut"] and doc["mtu"] == 1500
        assert doc["addresses"]["dut"][0] == L.DUT_IP4
        rc, out, err, _ = run_cli(capsys, ["lab", "down", name, "--json"])
        assert rc == 0, err
        assert json.loads(out) == {"removed": [name]}
        assert L.leftovers(name) == []
    finally:                    # whatever failed above, the lab this test made goes
        for st in L.list_labs():
            if st.name.startswith("plhz") and st.name not in before:
                L.remove_lab(st)
    monkeypatch.setattr(L, "clean_stale", lambda all_labs=False: [])
    rc, out, err, _ = run_cli(capsys, ["lab", "clean", "--json"])
    assert rc == 0 and json.loads(out) == {"removed": []}


def test_pacer_and_replay_refuse_nonsense_numbers():
    """The library says no too (notebooks call replay() directly), before any lab."""
    from pktlab.replay.run import Pacer, replay
    for bad in (float("inf"), float("nan"), 0, -1, "x"):
        with pytest.raises(ValueError):
            Pacer(pps=bad)
        with pytest.raises(ValueError):
            Pacer(mbps=bad)
    for kw in ({"limit": 0}, {"limit": -5}, {"loop": 0}, {"batch": 0}, {"limit": 1.5}):
        with pytest.raises(ValueError):
            replay([b"\x00" * 60], **kw)


def test_a_very_slow_rate_waits_in_slices_and_cancels_at_once():
    """--pps 1e-300 is finite and positive: the wait for the second frame must not overflow a
    sleep, and cancel() ends it at once."""
    from pktlab.replay.run import Cancelled, Pacer
    p = Pacer(pps=1e-300)
    p.wait(60)                      # the first frame is due now
    threading.Timer(0.2, p.cancel).start()
    with pytest.raises(Cancelled):
        p.wait(60)


def test_library_replay_refuses_an_unreadable_capture_before_a_lab(tmp_path, tripwire):
    from pktlab.packet.capture import CaptureError
    from pktlab.replay.run import replay
    p = tmp_path / "x.pcap.gz"
    p.write_bytes(gzip.compress(open(MIXED, "rb").read()))
    with pytest.raises(CaptureError, match="gunzip it first"):
        replay(str(p), hooks=["xdp"])
    assert not tripwire


# --- real subprocesses: a representative dozen, watched ----------------------------------------

class LabWatch:
    """Poll /run/netns and the lab state files while a process runs: every lab whose state
    file names that process, and every pktlab-looking namespace that appears and stays."""

    def __init__(self):
        self.before = set(self._netns())
        self.labs = set()
        self.appeared = {}          # netns name -> the owner pid its state file named
        self.pid = None
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()

    @staticmethod
    def _netns():
        try:
            return os.listdir(NETNS_DIR)
        except FileNotFoundError:
            return []

    def _poll(self):
        while not self._stop.is_set():
            try:
                files = os.listdir(STATE_DIR)
            except FileNotFoundError:
                files = []
            for f in files:
                try:
                    with open(os.path.join(STATE_DIR, f)) as fh:
                        st = json.load(fh)
                except (OSError, ValueError):
                    continue
                if self.pid is not None and st.get("owner_pid") == self.pid:
                    self.labs.add(st["name"])
            for ns in set(self._netns()) - self.before:
                if ns not in self.appeared:
                    lab = ns.rsplit("-", 1)[0]
                    try:        # a lab's state file is written before its namespaces
                        with open(os.path.join(STATE_DIR, lab + ".json")) as fh:
                            self.appeared[ns] = json.load(fh).get("owner_pid")
                    except (OSError, ValueError):
                        self.appeared[ns] = None
            time.sleep(0.002)

    def stop(self):
        self._stop.set()
        self._t.join()
        from pktlab.lab import leftovers
        left = {n: leftovers(n) for n in self.labs}
        now = set(self._netns())
        # namespaces of this run, or of nobody's lab and still there (a replay's default
        # prefix "pl": other engineers' tests use their own prefixes)
        mine = {ns for ns, owner in self.appeared.items()
                if owner == self.pid or (owner is None and ns in now and
                                         re.match(r"^pl[0-9a-f]{6}-(src|dut)$", ns))}
        return self.labs | mine, {n: v for n, v in left.items() if v}


def _watched(argv, **kw):
    w = LabWatch()
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=REPO, **kw)
    w.pid = p.pid
    out, err = p.communicate(timeout=120)
    elapsed = time.perf_counter() - t
    labs, left = w.stop()
    return p.returncode, out, err, elapsed, labs, left


def test_a_dozen_bad_captures_as_real_subprocesses(tmp_path):
    """The real console script: exit 2, one stderr line, no traceback, and no lab, namespace
    or state file made by that process (watched while it runs)."""
    require_root()
    vs = {v.name: v for v in hostile_corpus(str(tmp_path)) + special_paths(str(tmp_path))}
    pick = ["hello.pcap", "http.pcap.gz", "random-1000.pcap", "empty.pcap", "directory",
            "fifo", "dev-zero", "ng-no-idb.pcapng", "linktype-105.pcap", "sll-short.pcap",
            "header-only.pcap", "tcp-http-cut20.pcap", "all-jumbo.pcap"]
    times = {}
    for name in pick:
        v = vs[name]
        assert v.expect == "bad", name
        rc, out, err, elapsed, labs, left = _watched([PKTLAB, "replay", v.path])
        times[name] = elapsed
        assert rc == 2 and out == "" and one_clean_line(err), (name, rc, err)
        assert all(w in err for w in v.words), (name, err)
        assert not labs and not left, (name, labs, left)
    print("refusal times (s): " + ", ".join(f"{k} {t:.2f}" for k, t in times.items()))


# --- a closed pipe, a closed stdout -------------------------------------------------------------

@pytest.mark.parametrize("fmt", [[], ["--json"]])
def test_cast_into_head_ends_quietly(fmt):
    """`pktlab cast pcaps/mixed.pcap | head -1`: the first line, then a quiet stop (141, as a
    tool stopped by SIGPIPE reports), no traceback, nothing on stderr."""
    r = subprocess.run(["bash", "-c", f"'{PKTLAB}' cast pcaps/mixed.pcap {' '.join(fmt)} | "
                       "head -1; echo \"status=${PIPESTATUS[0]}\" >&2"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert len(r.stdout.splitlines()) == 1
    assert r.stderr == "status=141\n", r.stderr


def test_reader_gone_before_anything_was_read_and_stdout_closed():
    """The reader closes the pipe at once (the output is still in pktlab's buffer at exit),
    and a stdout closed from the start (`>&-`): both quiet."""
    p = subprocess.Popen([PKTLAB, "cast", "pcaps/dns.pcap"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=REPO)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) in (0, 141) and err == "", err
    r = subprocess.run(["bash", "-c", f"'{PKTLAB}' cast pcaps/dns.pcap >&-"],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = subprocess.run(["bash", "-c", f"'{PKTLAB}' cast pcaps/hello-missing.pcap 2>&- >&-"],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 2                     # nowhere to say it, still the right status


# --- not root: told the truth -------------------------------------------------------------------

def _as_nobody(args, **kw):
    return subprocess.run(NOBODY + [PKTLAB, *args], capture_output=True, text=True, cwd="/",
                          timeout=300, **kw)


def _nobody_can_run_pktlab():
    r = subprocess.run(NOBODY + [sys.executable, "-c", "import pktlab.cli"], capture_output=True,
                       text=True, cwd="/")
    return r.returncode == 0


def test_doctor_as_a_normal_user_says_what_is_missing_and_what_works():
    require_root()          # to become `nobody`
    if not _nobody_can_run_pktlab():
        pytest.skip("the checkout is not readable by uid 65534")
    tracefs_mounted = any(ln.split()[2] == "tracefs" for ln in open("/proc/self/mounts"))
    r = _as_nobody(["doctor"])
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    text = r.stdout
    assert "[FAIL] privileges" in text and "sudo" in text
    assert "`pktlab cast PCAP`" in text and "lesson 01" in text and "without root" in text
    if tracefs_mounted:
        assert "not mounted" not in text, text
        assert "[ok  ] tracefs" in text and "root only" in text
    r = _as_nobody(["doctor", "--json"])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    doc = json.loads(r.stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert not checks["privileges"]["ok"] and "sudo" in checks["privileges"]["fix"]
    assert doc["root"] is False
    assert any("pktlab cast" in w for w in doc["without_root"]["works"])
    assert any("lesson 01" in w for w in doc["without_root"]["works"])
    assert checks["walker"]["ok"]
    if tracefs_mounted:
        assert checks["tracefs"]["ok"] and "not mounted" not in checks["tracefs"]["detail"]
    for h in doc["hooks"].values():
        assert "needs root" in h["why"]


@pytest.mark.parametrize("args", [["replay", "pcaps/mixed.pcap"], ["bench"], ["mptcp"],
                                  ["lab", "up"],
                                  ["lab", "down", "x"], ["lab", "clean"],
                                  ["replay", "pcaps/mixed.pcap", "--step"]])
def test_root_commands_as_a_normal_user_exit_2_in_one_line(args):
    require_root()
    if not _nobody_can_run_pktlab():
        pytest.skip("the checkout is not readable by uid 65534")
    r = subprocess.run(NOBODY + [PKTLAB, *args], capture_output=True, text=True, cwd=REPO,
                       timeout=120)
    assert r.returncode == 2 and r.stdout == "" and one_clean_line(r.stderr), r.stderr
    assert "needs root" in r.stderr and "sudo" in r.stderr


def test_cast_works_as_a_normal_user():
    require_root()
    if not _nobody_can_run_pktlab():
        pytest.skip("the checkout is not readable by uid 65534")
    r = subprocess.run(NOBODY + [PKTLAB, "cast", "pcaps/tcp-http.pcap", "--json"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["count"] == 10, r.stderr
