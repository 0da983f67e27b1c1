"""TCP options as scapy dissects them, next to pktlab's decode of the same bytes (the side-by-side
view's option table).

scapy decodes MSS, window scale, SACK permitted, SACK blocks, timestamps and a few more kinds.
Kind 30, multipath TCP, it does not know (scapy 2.8.0: no MPTCP layer, no contrib module): it
keeps such an option as its raw bytes, ``(30, b'...')``. The table says so on that row, next to
pktlab's decode (the subtype, keys, the MP_JOIN token...), instead of leaving two different
answers side by side unexplained. Should a later scapy decode kind 30, the remark goes away.

scapy is imported when a table is asked for, never with this module.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["scapy_knows_mptcp", "scapy_tcp_options", "option_rows", "MPTCP_REMARK"]

MPTCP_KIND = 30


def _scapy():
    import logging

    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    import scapy
    import scapy.all  # noqa: F401  (bind every layer scapy knows, as a user would)
    from scapy.layers.inet import TCP, TCPOptions
    from scapy.layers.l2 import Ether
    return scapy, Ether, TCP, TCPOptions


def scapy_knows_mptcp() -> bool:
    """Whether this scapy decodes TCP option kind 30 (MPTCP) at all."""
    try:
        _s, _e, _t, options = _scapy()
    except Exception:
        return False
    return MPTCP_KIND in options[0]


def _version() -> str:
    try:
        return _scapy()[0].__version__
    except Exception:
        return "?"


#: what the table says on an MPTCP row when scapy shows raw bytes
MPTCP_REMARK = "scapy {version} has no MPTCP dissection: kind 30 stays raw bytes"


def scapy_tcp_options(frame: bytes) -> "list | str":
    """scapy's list of TCP options for the frame (``[(name, value), ...]``, as
    ``Ether(frame)[TCP].options``), or a sentence saying why there is none."""
    try:
        _s, Ether, TCP, _o = _scapy()
    except Exception as e:
        return f"scapy is not available here: {e}"
    try:
        tcp = Ether(bytes(frame)).getlayer(TCP)
        if tcp is None:
            return "scapy found no TCP layer in these bytes"
        return list(tcp.options)
    except Exception as e:      # scapy's dissectors can throw on hostile bytes
        return f"scapy could not dissect the TCP options: {type(e).__name__}: {e}"


def _scapy_text(opt: Any) -> str:
    name, value = opt if isinstance(opt, tuple) and len(opt) == 2 else (opt, None)
    return f"({name!r}, {value!r})"


def option_rows(mine: list, theirs: "list | str") -> list[tuple[str, str, str, str]]:
    """(where, pktlab's decode, scapy's, remark) per option, in order: pktlab's TcpOption list
    (pktlab.packet.options.parse_tcp_options) next to scapy's, option by option."""
    if isinstance(theirs, str):
        return [(f"@{o.offset}", o.display, "" if i else theirs, "") for i, o in enumerate(mine)]
    remark_mptcp: Optional[str] = None
    if not scapy_knows_mptcp():
        remark_mptcp = MPTCP_REMARK.format(version=_version())
    rows = []
    for i in range(max(len(mine), len(theirs))):
        o = mine[i] if i < len(mine) else None
        t = theirs[i] if i < len(theirs) else None
        remark = ""
        if o is not None and o.kind == MPTCP_KIND and remark_mptcp and t is not None \
                and t[0] == MPTCP_KIND:
            remark = remark_mptcp
        rows.append((f"@{o.offset}" if o is not None else "",
                     o.display if o is not None else "",
                     _scapy_text(t) if t is not None else "", remark))
    return rows
