"""The parse entered at a hook's layer: pl_parse_at() in C and walk_record_at() in Python agree,
byte for byte, at every entry (the network header for cgroup_skb, the transport header for a
socket filter, the payload for sk_skb and recv), on the corpus cut at each layer and on random
bytes; and the entry's record is the Ethernet walk's record seen from that layer."""

import ctypes
import os
import random
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import corpus_files
from optgen import frame_with_options

from pktlab import resources
from pktlab.packet import record as R
from pktlab.packet.capture import read_frames
from pktlab.packet.walker import ENTRIES, walk_record, walk_record_at

SHIM = r"""
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
typedef uint16_t __be16;
typedef uint32_t __be32;
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#define bpf_ntohs(x) ntohs(x)
#define bpf_ntohl(x) ntohl(x)
#include "pktlab_parse.h"
void pl_walk_at(const unsigned char *buf, unsigned len, struct pl_record *r, int entry, int proto)
{
	memset(r, 0, sizeof(*r));
	r->frame_len = len;
	r->hook = PL_HOOK_WALKER;
	/* the entry is a constant in every hook program; here one switch keeps it so */
	switch (entry) {
	case PL_ENTRY_NET:
		pl_parse_at((void *)buf, (void *)(buf + len), r, PL_ENTRY_NET, proto);
		break;
	case PL_ENTRY_L4:
		pl_parse_at((void *)buf, (void *)(buf + len), r, PL_ENTRY_L4, proto);
		break;
	case PL_ENTRY_PAYLOAD:
		pl_parse_at((void *)buf, (void *)(buf + len), r, PL_ENTRY_PAYLOAD, proto);
		break;
	default:
		pl_parse((void *)buf, (void *)(buf + len), r);
	}
	r->fingerprint = pl_fingerprint((void *)buf, (void *)(buf + len), len, r->parse_end);
}
"""


@pytest.fixture(scope="module")
def c_at(tmp_path_factory):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no system C compiler: install gcc to run pl_parse_at() next to the walker")
    d = tmp_path_factory.mktemp("centry")
    (d / "shim.c").write_text(SHIM)
    r = subprocess.run([cc, "-O1", "-shared", "-fPIC", "-DPKTLAB_USERSPACE",
                        "-Wno-unknown-pragmas", f"-I{resources.snippets_dir()}", "-o",
                        str(d / "libpl.so"), str(d / "shim.c")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lib = ctypes.CDLL(str(d / "libpl.so"))
    lib.pl_walk_at.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_void_p, ctypes.c_int,
                               ctypes.c_int]

    def run(data, entry, proto):
        rec = R.Record()
        lib.pl_walk_at(data, len(data), ctypes.byref(rec), ENTRIES.index(entry), proto)
        return rec
    return run


def _same(c_at, data, entry, proto):
    a, b = walk_record_at(data, entry, proto), c_at(data, entry, proto)
    assert bytes(a) == bytes(b), (f"{entry}/{proto} {data.hex()}: fields differ: "
                                  f"{R.compare_fields(a, b, ())}")
    return a


def _cuts(frame):
    """The frame as each socket-end hook sees it: (entry, proto, bytes), from its own walk."""
    r = walk_record(frame)
    l3 = 14 + 4 * r.vlan_depth
    out = [("net", r.eth_proto, frame[l3:])]
    if r.layer_name in ("TCP", "UDP", "PAYLOAD") and r.l4_proto in (6, 17):
        l4_off = r.payload_off - (r.tcp_doff * 4 if r.l4_proto == 6 else 8)
        out.append(("l4", r.l4_proto, frame[l4_off:]))
        out.append(("payload", r.l4_proto, frame[r.payload_off:r.payload_off + r.payload_len]))
    return r, out


def test_every_entry_agrees_with_c_on_the_corpus(c_at):
    seen = {e: 0 for e in ENTRIES[1:]}
    for path in corpus_files():
        for f in read_frames(path, data_only=True, on_error=lambda p: None):
            f = bytes(f)
            if len(f) < 14:
                continue
            _r, cuts = _cuts(f)
            for entry, proto, data in cuts:
                _same(c_at, data, entry, proto)
                seen[entry] += 1
    assert all(n > 100 for n in seen.values()), seen


def test_the_entry_sees_what_the_ethernet_walk_sees_from_there():
    """A TCP segment with payload, walked from Ethernet and entered at each layer: the layers
    the entry cannot see are zero, the rest is the same, offsets counted from the entry."""
    from scapy.all import IP, TCP, Ether, Raw
    f = bytes(Ether() / IP(src="10.200.0.1", dst="10.200.0.2", ttl=9) /
              TCP(sport=40000, dport=80, flags="PA", seq=7) / Raw(b"GET /x HTTP/1.1\r\n\r\n"))
    full, cuts = _cuts(f)
    by = {e: walk_record_at(d, e, p) for e, p, d in cuts}
    net, l4, pay = by["net"], by["l4"], by["payload"]
    assert (net.ttl, net.ip_version, net.src_addr, net.sport, net.tcp_seq) == \
        (9, 4, full.src_addr, 40000, 7)
    assert bytes(net.dst_mac) == bytes(6) and net.payload_off == full.payload_off - 14
    assert l4.ip_version == 0 and l4.ttl == 0 and (l4.sport, l4.dport, l4.tcp_seq) == (40000, 80, 7)
    assert l4.payload_off == 20 and l4.payload_len == full.payload_len
    assert pay.sport == 0 and pay.payload_off == 0 and pay.payload_len == full.payload_len
    for r in (net, l4, pay):
        assert r.status_name == "OK" and r.layer_name == "PAYLOAD" and r.l7_name == "HTTP_REQUEST"
        assert bytes(r.payload) == bytes(full.payload)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(["net", "l4", "payload"]), st.sampled_from([0x0800, 0x86DD, 0x0806, 6, 17,
                                                                      1, 58, 0x1234, 0]),
       st.binary(max_size=160))
def test_every_entry_agrees_with_c_on_random_bytes(c_at, entry, proto, data):
    _same(c_at, data, entry, proto)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2**64 - 1))
def test_tcp_options_agree_with_c_at_every_entry(c_at, seed):
    """TCP option lists (tests/optgen.py) seen from each layer a hook enters at: the network
    header (cgroup_skb), the transport header (a socket filter); pl_parse_at() and
    walk_record_at() agree, and the options in the record are the Ethernet walk's."""
    rnd = random.Random(seed)
    for _ in range(8):
        frame = frame_with_options(rnd)
        full, cuts = _cuts(frame)
        for entry, proto, data in cuts:
            if entry == "payload":
                continue
            r = _same(c_at, data, entry, proto)
            if full.status_name == "OK" and r.status_name == "OK":
                for k in ("tcp_opt_flags", "tcp_mss", "tcp_wscale", "tcp_ts_val", "tcp_ts_ecr",
                          "tcp_sack_blocks", "mptcp_subtype", "mptcp_subtypes", "mptcp_token"):
                    assert getattr(r, k) == getattr(full, k), (entry, k, frame.hex())


def test_a_bad_entry_is_refused():
    with pytest.raises(ValueError, match="entry"):
        walk_record_at(b"x", "l7")
