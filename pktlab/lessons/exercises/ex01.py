"""Lesson 01's exercise: add a field to the parse (the IPv4 DSCP, by casting), checked against
scapy on the corpus and on a few frames made with DSCP set.
"""

from ..html import esc, table
from .common import CheckResult, corpus_frames, guarded


def _dscp_expected(frame):
    """DSCP by scapy (the oracle), where the walker says a whole IPv4 header is there."""
    from ...packet import record as R
    from ...packet.walker import walk_record
    r = walk_record(frame)
    C = R.constants()
    if r.eth_proto != 0x0800 or r.layer < C["PL_L_IPV4"]:
        return None
    if r.status == C["PL_ST_TRUNCATED"] and r.layer == C["PL_L_IPV4"]:
        return None
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether
    p = Ether(frame)
    ip = p.getlayer(IP)
    if ip is None:
        return None
    return int(ip.tos) >> 2


def _dscp_frames():
    """The corpus has no DSCP set anywhere: a few frames that do (EF, AF41, CS1 with ECN
    bits, behind VLAN tags), made with scapy."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    pkts = [e / IP(tos=0xB8) / UDP(), e / IP(tos=0x8A) / UDP(), e / IP(tos=0x23) / UDP(),
            e / Dot1Q(vlan=5) / IP(tos=0xB8) / UDP(),
            e / Dot1AD(vlan=3) / Dot1Q(vlan=4) / IP(tos=0x48) / UDP(),
            e / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / IP(tos=0xB8) / UDP()]
    return [("(crafted, DSCP set)", i + 1, bytes(p)) for i, p in enumerate(pkts)]


def check_dscp(fn):
    """Lesson 01: ``fn(frame)`` must return the IPv4 DSCP (TOS >> 2), or None without a whole
    IPv4 header (at most two VLAN tags, like pktlab's parser). Checked against scapy on every
    frame of the corpus, and on a few frames with DSCP set (the corpus has none)."""
    import logging

    from ...packet import walk
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    corpus = corpus_frames() + _dscp_frames()
    bad = []
    for name, idx, data in corpus:
        want = _dscp_expected(data)
        try:
            got = fn(data)
        except Exception as e:          # the learner's code: show, do not fail the notebook
            got = f"raised {type(e).__name__}: {e}"
        if got != want:
            bad.append((name, idx, len(data), want, got))
    n = len(corpus)
    shown, per_file = [], {}
    for b in bad:                       # a few of each kind of mistake, not ten ARP frames
        if per_file.get(b[0], 0) < 2 and len(shown) < 12:
            per_file[b[0]] = per_file.get(b[0], 0) + 1
            shown.append(b)
    frames_by = {(c[0], c[1]): c[2] for c in corpus}
    rows = [[b[0], b[1], b[2], repr(b[3]), repr(b[4]), walk(frames_by[(b[0], b[1])]).summary()]
            for b in shown]
    body = f"<p>{n - len(bad)} of {n} corpus frames right.</p>"
    if bad:
        body += ("<p>some of them (at most two per capture):</p>" +
                 table(["capture", "#", "bytes", "scapy says", "yours", "walker"], rows))
        return CheckResult(False, f"dscp(): {len(bad)} frames differ from scapy", body,
                           f"{len(bad)} of {n} differ")
    return CheckResult(True, f"dscp() agrees with scapy on all {n} frames (the corpus, and a "
                             "few made with DSCP set)", body)


def _doff_frame(doff):
    """A 54-byte Ethernet/IPv4/TCP frame with no payload whose TCP data offset is ``doff``."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    p = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
         IP(src="192.0.2.1", dst="198.51.100.2") / TCP(sport=49152, dport=80, dataofs=doff))
    return bytes(p)


_DOFF_HINTS = {
    3: "doff counts 32-bit words: how many bytes is a data offset of 3, and how many bytes has "
       "the TCP header's fixed part?",
    15: "how many bytes of TCP header does a data offset of 15 claim, and how many bytes are "
        "left in a 54-byte frame after Ethernet and IPv4?",
}


def _status_layer(pair):
    try:
        status, layer = pair
    except (TypeError, ValueError):
        return None
    return (str(status).strip().upper().replace("-", "_"),
            str(layer).strip().upper().replace("-", "_"))


@guarded
def check_doff(doff_3, doff_15):
    """Lesson 01, exercise 2: (status, layer) the walker gives a TCP segment with data offset
    3, and one with data offset 15 in a 54-byte frame. Checked by walking such frames."""
    import logging

    from ...packet.walker import walk_record
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    wrong = []
    for doff, guess in ((3, doff_3), (15, doff_15)):
        r = walk_record(_doff_frame(doff))
        want = (r.status_name, r.layer_name)
        got = _status_layer(guess)
        if got is None:
            wrong.append((doff, f"data offset {doff}: write your guess as (status, layer), "
                                "e.g. (\"OK\", \"PAYLOAD\")"))
        elif got[0] != want[0]:
            wrong.append((doff, f"data offset {doff}: {got[0]} is not the walker's status. "
                                + _DOFF_HINTS[doff]))
        elif got[1] != want[1]:
            wrong.append((doff, f"data offset {doff}: the status is right; the layer is where "
                                "the walk stopped: which header's check failed?"))
    if not wrong:
        return CheckResult(True, "both right: a length read from the packet is checked before "
                                 "it is used (see them in malformed-doff-lt5.pcap and "
                                 "malformed-doff-beyond.pcap)")
    return CheckResult(False, f"{len(wrong)} of 2 not yet right",
                       "<ul>" + "".join(f"<li>{esc(w)}</li>" for _d, w in wrong) + "</ul>")
