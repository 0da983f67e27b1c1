"""How the walker hands its values to a record: the field order it fills, checked against
bpf_snippets/pktlab_record.h, and the fast path's pack functions (a record whose fields are
mostly zero packs faster with those fields as pad bytes: fewer arguments).

Kept apart from the walker (pktlab.packet.walker), which reads the frames; this module knows
only the record's layout (pktlab.packet.record).
"""

from __future__ import annotations

import struct

from . import record as R
from ..errors import EnvironmentProblem

__all__ = ["VALUE_ORDER", "OPT_FIELDS", "check_layout", "packer", "fast_packers"]

# The order of values the parser hands to RECORD_STRUCT.pack: pl_record's field order, with
# arrays spread. The walker's _make_parser() checks it against the header, so an edit to pktlab_record.h
# that the walker does not know about fails loudly instead of shifting every field.
VALUE_ORDER = (
    "ts_ns", "fingerprint", "ifindex", "frame_len", "hook", "status", "layer", "flags",
    "eth_proto", "vlan_depth", "ip_version", "vlan_tpid*", "vlan_tci*", "dst_mac", "src_mac",
    "src_ip", "dst_ip", "ttl", "ip4_hdr_len", "ip4_opt_len", "l4_proto", "ip_tot_len",
    "frag_off", "frag_id", "sport", "dport", "tcp_seq", "tcp_ack", "tcp_flags", "tcp_doff",
    "icmp_type", "icmp_code", "payload_off", "payload_len", "arp_op", "ipv6_ext_count", "l7",
    "parse_end", "tcp_mss", "tcp_wscale", "tcp_opt_flags", "tcp_sack_blocks", "mptcp_subtype",
    "tcp_ts_val", "tcp_ts_ecr", "mptcp_token", "mptcp_subtypes", "_reserved", "payload",
)


def check_layout():
    fields = R._parse_struct()
    names = tuple(n + ("*" if dim and ct != "__u8" else "") for n, ct, dim, _c in fields)
    if names != VALUE_ORDER:
        raise EnvironmentProblem(
            "pktlab walker: bpf_snippets/pktlab_record.h declares the fields "
            f"{', '.join(names)}, but the walker fills {', '.join(VALUE_ORDER)}; the header "
            "changed without the walker; update pktlab/packet/packing.py (VALUE_ORDER) and "
            "walker.py (the parser) to fill the new fields the way pl_parse() does")


def packer(zero: frozenset, args: tuple):
    """A pack function for records whose ``zero`` fields are 0: those become pad bytes.

    Fewer arguments is most of what a fast path saves. ``args`` names the remaining fields in
    the order the caller passes them; it must be the record's order, which is checked here so
    a change to pktlab_record.h cannot shift values silently.
    """
    fmt, pos, names = "=", 0, []
    for name, off, size in R.field_layout():
        if off > pos:
            fmt += f"{off - pos}x"
        if name in zero:
            fmt += f"{size}x"
        else:
            ct, dim = next((ct, dim) for n, ct, dim, _c in R._parse_struct() if n == name)
            width = size // dim if dim else size
            if dim and width == 1:
                fmt += f"{dim}s"
            else:
                fmt += (str(dim) if dim else "") + {1: "B", 2: "H", 4: "I", 8: "Q"}[width]
            names.append(name)
        pos = off + size
    if tuple(names) != tuple(args):
        raise EnvironmentProblem(
            f"pktlab walker: fast-path record fields {', '.join(names)} differ from what the "
            f"walker passes ({', '.join(args)}); pktlab_record.h changed; update "
            "pktlab/packet/packing.py and walker.py")
    st = struct.Struct(fmt)
    if st.size != R.RECORD_STRUCT.size:
        raise EnvironmentProblem("pktlab walker: fast-path record format has the wrong size; "
                                 "update pktlab/packet/packing.py")
    return st.pack


ZERO_ALWAYS = frozenset(("ts_ns", "ifindex", "hook", "status", "vlan_depth", "vlan_tpid",
                         "vlan_tci", "ip4_opt_len", "frag_off", "icmp_type", "icmp_code",
                         "arp_op", "ipv6_ext_count", "_reserved"))
#: the record's TCP option fields (parse_tcp_options), zero in a frame without options
OPT_FIELDS = ("tcp_mss", "tcp_wscale", "tcp_opt_flags", "tcp_sack_blocks", "mptcp_subtype",
              "tcp_ts_val", "tcp_ts_ecr", "mptcp_token", "mptcp_subtypes")
TCP_FIELDS = ("tcp_seq", "tcp_ack", "tcp_flags", "tcp_doff")
_FAST_V4_TCP = ("fingerprint", "frame_len", "layer", "flags", "eth_proto", "ip_version",
                "dst_mac", "src_mac", "src_ip", "dst_ip", "ttl", "ip4_hdr_len", "l4_proto",
                "ip_tot_len", "frag_id", "sport", "dport", *TCP_FIELDS, "payload_off",
                "payload_len", "l7", "parse_end", "payload")
_FAST_V4_UDP = tuple(a for a in _FAST_V4_TCP if a not in TCP_FIELDS)
_FAST_V4_TCPO = _FAST_V4_TCP[:-1] + OPT_FIELDS + ("payload",)    # a TCP header with options
_FAST_V6_TCP = tuple(a for a in _FAST_V4_TCP if a not in ("flags", "ip4_hdr_len", "frag_id"))
_FAST_V6_UDP = tuple(a for a in _FAST_V6_TCP if a not in TCP_FIELDS)
_FAST_V6_TCPO = _FAST_V6_TCP[:-1] + OPT_FIELDS + ("payload",)


def fast_packers():
    """Pack functions of the fast path's kinds of record (v4/v6, TCP/UDP; TCP with options)."""
    v4_fields = ZERO_ALWAYS
    v6_fields = ZERO_ALWAYS | {"flags", "ip4_hdr_len", "frag_id"}
    no_opts = frozenset(OPT_FIELDS)
    return (packer(v4_fields | no_opts, _FAST_V4_TCP),
            packer(v4_fields | frozenset(TCP_FIELDS) | no_opts, _FAST_V4_UDP),
            packer(v6_fields | no_opts, _FAST_V6_TCP),
            packer(v6_fields | frozenset(TCP_FIELDS) | no_opts, _FAST_V6_UDP),
            packer(v4_fields, _FAST_V4_TCPO),
            packer(v6_fields, _FAST_V6_TCPO))
