"""What each hook should record of one request, computed by the walker from the frame as it
left src, and how each hook's records are matched and judged against it.

Every hook parses what it sees with the one parser, entered at its layer (pl_parse_at), so
the expected record at a hook is the walker entered at the same layer (walk_record_at) over
the same bytes of the src frame:

    tc-egress, kprobe, xdp, tc-ingress   the frame              entry "eth"
    cgroup-ingress                       from the IP header      entry "net" (the EtherType)
    socket-filter                        from the TCP/UDP header entry "l4" (the IP protocol)
    sk-skb, recv                         the payload             entry "payload" (the protocol)

A hook's record is the request's when its fingerprint is the expected one (the fingerprint
covers every byte the parse read, and the request carries a nonce): then it must agree with
the expected record field for field. What a hook cannot see, compared with the whole frame's
walk (no Ethernet header at cgroup-ingress, only the payload at sk-skb and recv), is an
explained difference: listed with its reason, never a disagreement. One more explained
difference comes from the kernel: the kprobe hook reads only the skb's linear part, and
locally generated TCP keeps its payload in page fragments, so at kprobe the parse ends after
the headers (found exactly: the record is the walk of the frame cut at the linear part's
end). A record that carries the request's nonce but is not what the walker expects is a
disagreement: a bug in one of the parsers.
"""

from ..packet import record as R
from ..packet.walker import walk_record, walk_record_at

#: where each hook enters the walk
ENTRY = {"tc-egress": "eth", "kprobe": "eth", "xdp": "eth", "tc-ingress": "eth",
         "cgroup-ingress": "net", "socket-filter": "l4", "sk-skb": "payload", "recv": "payload"}
#: what the belt's JSON calls each hook's view
VIEW = {"tc-egress": "l2", "kprobe": "l2", "xdp": "l2", "tc-ingress": "l2",
        "cgroup-ingress": "l3", "socket-filter": "l4", "sk-skb": "payload", "recv": "app"}
#: what a hook cannot see of the frame: why its record differs from the whole frame's walk
CANNOT_SEE = {
    "cgroup-ingress": "sees the packet from the IP header: no Ethernet header (no MACs; the "
                      "EtherType comes from the skb), offsets count from the IP header",
    "socket-filter": "sees the packet from the transport header: no Ethernet or IP header (no "
                     "MACs, addresses or TTL; the protocol is read from the IP header behind "
                     "it), offsets count from the TCP/UDP header",
    "sk-skb": "sees the payload only: no headers, no addresses, no ports; offsets count from "
              "the payload",
    "recv": "sees the bytes the application got: the payload only, every header taken off",
}
KPROBE_LINEAR = ("the kprobe hook reads the skb's linear part only: its record is the walk of "
                 "the first {n} of the frame's {total}; the rest is in page fragments, where "
                 "locally generated TCP keeps its payload (no tc-egress program pulled it into "
                 "the linear part on the way), so the parse ends at the IP length check")
IGNORED = ("ts_ns", "ifindex", "hook")


def entry_bytes(frame, walked, entry):
    """(bytes a hook entering at `entry` sees of `frame`, the protocol it knows): the IP
    packet without Ethernet padding, the transport header on, or the payload."""
    if entry == "eth":
        return bytes(frame), 0
    l3 = 14 + 4 * int(walked.vlan_depth)
    end = l3 + int(walked.ip_tot_len) if walked.ip_tot_len else len(frame)
    if entry == "net":
        return bytes(frame[l3:end]), int(walked.eth_proto)
    proto = int(walked.l4_proto)
    if entry == "l4":
        hdr = int(walked.tcp_doff) * 4 if proto == 6 else 8
        return bytes(frame[int(walked.payload_off) - hdr:end]), proto
    off = int(walked.payload_off)
    return bytes(frame[off:off + int(walked.payload_len)]), proto


def expected(hook, frame):
    """The record `hook` should make of `frame` (a Record)."""
    walked = walk_record(frame)
    data, proto = entry_bytes(frame, walked, ENTRY[hook])
    return walked if ENTRY[hook] == "eth" else walk_record_at(data, ENTRY[hook], proto)


def _kprobe_linear(frame, rec):
    """(lo, hi): the linear lengths n for which the kprobe record `rec` is the walk of
    frame[:n] with the whole frame's length (one range: the parse and the fingerprint change
    only where n crosses what they read), or None."""
    total, lo, hi = len(frame), None, None
    for n in range(14, min(total, 2048) + 1):
        cand = walk_record(frame[:n])
        cand.frame_len = total
        cand.fingerprint = R.fingerprint(frame[:n], total, int(cand.parse_end))
        if cand.fingerprint == rec.fingerprint and not R.compare_fields(rec, cand, IGNORED):
            lo = n if lo is None else lo
            hi = n
        elif lo is not None:
            break
    return None if lo is None else (lo, hi)


def _records(arr):
    return [R.record_from_bytes(r.tobytes()) for r in arr]


def judge(hook, records, frame, nonce):
    """The request's records among `records` (a RECORD_DTYPE array) at `hook`, judged.

    Returns {"seen", "agree", "first_ts_ns", "explained", "differs_from_frame", "disagree",
    "records"} (see the module docstring)."""
    want = expected(hook, frame)
    whole = walk_record(frame)
    recs = _records(records)
    exact, explained, wrong = [], "", []
    for r in recs:
        if r.fingerprint == want.fingerprint:
            diff = R.compare_fields(r, want, IGNORED)
            (wrong if diff else exact).append((r, diff))
    if hook == "kprobe" and not exact:
        ident = ("src_ip", "dst_ip", "frag_id", "ip_tot_len", "l4_proto", "frame_len")
        for r in recs:
            if all(bytes(getattr(r, f)) == bytes(getattr(whole, f)) if f.endswith("ip")
                   else getattr(r, f) == getattr(whole, f) for f in ident):
                span = _kprobe_linear(frame, r)
                if span is not None and span[0] < len(frame):
                    exact.append((r, []))
                    hdr = int(whole.payload_off)
                    n = (f"{hdr} bytes (the headers)" if span[0] <= hdr <= span[1] else
                         f"{span[0]} to {span[1]} bytes")
                    explained = KPROBE_LINEAR.format(n=n, total=len(frame))
                elif span is None:
                    wrong.append((r, R.compare_fields(r, whole, IGNORED)))
    if not exact and not wrong:
        tag = nonce.encode()[:8]
        wrong = [(r, R.compare_fields(r, want, IGNORED)) for r in recs
                 if tag in bytes(r.payload)]
    seen = exact + wrong
    out = {"seen": len(seen), "records": len(recs),
           "agree": bool(exact) and not wrong if seen else None,
           "first_ts_ns": min(int(r.ts_ns) for r, _ in seen) if seen else None,
           "explained": explained if hook == "kprobe" else CANNOT_SEE.get(hook, "") if seen
           else "",
           "differs_from_frame": (R.compare_fields(seen[0][0], whole, IGNORED) if seen
                                  else []),
           "disagree": sorted({f for _, d in wrong for f in d})}
    # the records themselves, for views (not JSON: see belt.BeltRun.summary)
    out["_record"] = seen[0][0] if seen else None
    out["_expected"] = want
    return out
