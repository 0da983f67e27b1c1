"""`python -m pktlab.cli.cast` (the body of `pktlab cast`): text, --json, and bad input."""

import io
import json
import os
import subprocess
import sys

import pytest

from pktlab.cli import cast

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PCAPS = os.path.join(REPO, "pcaps")


def _run(*args):
    return subprocess.run([sys.executable, "-m", "pktlab.cli.cast", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=120)


def _expected(name):
    with open(os.path.join(PCAPS, "MANIFEST.json")) as f:
        for e in json.load(f)["files"]:
            if e["file"] == name:
                return e
    raise KeyError(name)


def test_text_shows_every_frame_layer_by_layer():
    r = _run(os.path.join(PCAPS, "tcp-http.pcap"))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.count("\nframe ") + out.startswith("frame ") == 10
    assert "frame 4 " in out and "OK at PAYLOAD  L7 HTTP_REQUEST" in out
    for needle in ("Ethernet @0 (14 bytes)", "IPv4 @14 (20 bytes)", "TCP @34", "saddr",
                   "192.0.2.10", "option MSS", "Payload @"):
        assert needle in out
    assert r.stderr == ""


def test_text_says_when_ethernet_was_synthesized():
    r = _run(os.path.join(PCAPS, "cooked-sll.pcap"))
    assert r.returncode == 0
    assert "Ethernet header synthesized from a LINUX_SLL (113) capture" in r.stdout


@pytest.mark.parametrize("name", ["dns.pcap", "malformed-totlen.pcap", "two-interfaces.pcapng",
                                  "malformed-truncated-eth.pcap"])
def test_json_is_one_document_with_every_frame(name):
    r = _run(os.path.join(PCAPS, name), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)                    # nothing else on stdout
    exp = _expected(name)
    assert doc["file"].endswith(name) and doc["count"] == exp["frames"] and doc["problems"] == []
    assert len(doc["frames"]) == exp["frames"]
    for fr, e in zip(doc["frames"], exp["expected"]):
        assert (fr["status"], fr["layer"]) == (e["status"], e["layer"])
        assert fr["record"]["status_name"] == e["status"]
        for key in ("index", "ts_ns", "caplen", "wirelen", "truncated", "synthesized_eth",
                    "layers", "record"):
            assert key in fr
        assert fr["layers"][0]["name"] == "Ethernet"
        assert sum(ly["length"] for ly in fr["layers"]) == fr["record"]["frame_len"]


def test_missing_file_exits_2_with_a_clear_message(tmp_path):
    r = _run(str(tmp_path / "nope.pcap"))
    assert r.returncode == 2 and r.stdout == ""
    assert "no such capture" in r.stderr and "nope.pcap" in r.stderr and "pcaps/" in r.stderr


def test_not_a_capture_exits_2(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture at all")
    r = _run(str(bad))
    assert r.returncode == 2
    assert "not a pcap or pcapng file" in r.stderr and "bad.pcap" in r.stderr
    r = _run(str(bad), "--json")
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    assert doc["count"] == 0 and doc["problems"][0]["fatal"]


def test_cut_off_capture_shows_what_it_read_then_exits_2(tmp_path):
    data = open(os.path.join(PCAPS, "tcp-http.pcap"), "rb").read()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-20])
    r = _run(str(cut), "--json")
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    assert doc["count"] == 9 and doc["problems"][0]["frame"] == 10
    assert "frame 10 at byte" in r.stderr and "cut.pcap" in r.stderr


def test_directory_is_refused(tmp_path):
    r = _run(str(tmp_path))
    assert r.returncode == 2 and "directory" in r.stderr


def test_run_in_process_with_limit():
    out, err = io.StringIO(), io.StringIO()
    rc = cast.run(os.path.join(PCAPS, "mixed.pcap"), as_json=True, out=out, err=err, limit=3)
    assert rc == 0 and json.loads(out.getvalue())["count"] == 3
