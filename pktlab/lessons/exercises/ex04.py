"""Lesson 04's exercises: where this kernel keeps the packet's EtherType in the skb (from BTF),
and the status the kprobe hook reports for a frame longer than the 2048 bytes it copies
(measured in a jumbo-MTU lab of its own)."""

import os

from ..here import hook_available, in_lab_thread, why_not
from ..html import NotHere
from ..kernelviews import btf_offset
from .common import CheckResult, guarded

#: the member that holds the EtherType; the feedback never names it
_MEMBER = "sk_buff.protocol"


@guarded
def check_btf_field(path, offset):
    """Lesson 04: where this kernel keeps the skb's EtherType (path and byte offset, from BTF).
    Wrong answers say what is wrong with them, never the member's name."""
    try:
        want, size = btf_offset(_MEMBER)
    except Exception as e:
        return NotHere("checking a BTF offset", str(e))
    p = str(path or "").strip()
    if p.count(".") != 1 or not all(p.split(".")):
        return CheckResult(False, f"path {p!r}: write it as 'struct.member', the structure the "
                                  "stack keeps a received packet in, then the member; "
                                  "pl.btf_members(\"sk_buff\") lists its members")
    if p != _MEMBER:
        found = btf_offset(p)
        if not found:
            return CheckResult(False, f"{p}: this kernel's BTF has no such member "
                                      f"({found.why})")
        return CheckResult(False, f"{p} is a member of this kernel (byte {found[0]}, {found[1]} "
                                  "bytes), but not the one that holds the EtherType: an "
                                  "EtherType is 16 bits in network order (__be16); which "
                                  "members of sk_buff have that type, and which of them is "
                                  "the packet's own?")
    if offset != want:
        return CheckResult(False, f"the member is right; offset {offset!r} is not where this "
                                  "kernel keeps it: ask pl.btf_offset(...)")
    return CheckResult(True, f"{_MEMBER} is at byte {want} ({size} bytes) in kernel "
                             f"{os.uname().release}; another kernel may put it elsewhere, "
                             "which is why pktlab asks BTF")


def _jumbo_frame(length=3000):
    """An Ethernet/IPv4/UDP frame of ``length`` bytes (a valid one: lengths and checksum)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    p = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
         IP(src="192.0.2.1", dst="198.51.100.2") / UDP(sport=40000, dport=9))
    return bytes(p / (b"\x00" * (length - len(p))))


def kcopy_record(length=3000):
    """(the kprobe hook's status name, the verdict, the reason) for a ``length``-byte frame,
    sent across a jumbo-MTU lab of its own with only the kprobe hook attached."""
    return in_lab_thread(_kcopy_record, length)


def _kcopy_record(length):
    from ...packet import record as R
    from ...replay import compare
    from ..live import LiveLab
    from ..remote import RemoteLab, through_daemon
    # not open_lab(): a checker's own, closed here (through pktlabd: a lab of the learner's
    # there, the frame sent across it by the daemon)
    lab = (RemoteLab if through_daemon() else LiveLab)(["kprobe"], mtu=9000)
    try:
        if not lab:
            return NotHere("the kprobe hook on a long frame", lab.why())
        st = lab.step(_jumbo_frame(length))
        res = st.batch.hooks["kprobe"]
        v = int(res.verdict[0])
        if v > compare.DISAGREE:
            return NotHere("the kprobe hook on a long frame",
                           f"no record ({compare.VERDICT_NAMES[v]})")
        rec = res.matched[0]
        return (R.status_name(int(rec["status"])), compare.VERDICT_NAMES[v],
                compare.REASONS[int(res.reason[0])])
    finally:
        lab.close()


@guarded
def check_kcopy_status(answer):
    """Lesson 04, exercise 2: the status the kprobe hook reports for a 3,000-byte frame (it
    parses a copy of the first 2048 bytes). Measured in a jumbo-MTU lab of its own."""
    if not hook_available("kprobe"):
        return NotHere("checking the kprobe hook's status", why_not("kprobe"))
    got = kcopy_record()
    if not isinstance(got, tuple):
        return got
    status, verdict, reason = got
    a = str(answer or "").strip().upper().replace("-", "_")
    if a == status:
        return CheckResult(True, f"measured: {status}, counted as {verdict}: {reason}")
    return CheckResult(False, f"{a or '(no answer)'}: not what the kprobe hook recorded for a "
                              "3,000-byte frame. It parses only its copy of the first 2048 "
                              "bytes: which of the parser's checks compares a length read "
                              "from a header with the bytes it has?")
