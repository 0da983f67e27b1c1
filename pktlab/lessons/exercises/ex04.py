"""Lesson 04's exercise: where this kernel keeps skb->protocol, from BTF."""

import os

from ..html import NotHere
from ..kernelviews import btf_offset
from .common import CheckResult


def check_btf_field(path, offset):
    """Lesson 04: where this kernel keeps skb->protocol (path and byte offset, from BTF)."""
    try:
        want, size = btf_offset("sk_buff.protocol")
    except Exception as e:
        return NotHere("checking a BTF offset", str(e))
    p = str(path or "").strip()
    if p != "sk_buff.protocol":
        return CheckResult(False, f"path {p!r}: the member is `protocol` of struct sk_buff; "
                                  "write it as 'struct.member'")
    if offset != want:
        return CheckResult(False, f"offset {offset!r} is not where this kernel keeps it: ask "
                                  "pl.btf_offset(...)")
    return CheckResult(True, f"sk_buff.protocol is at byte {want} ({size} bytes) in kernel "
                             f"{os.uname().release}; another kernel may put it elsewhere, "
                             "which is why pktlab asks BTF")
