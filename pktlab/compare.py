"""Per packet and hook: does the kernel's record agree with the walker's?

Verdicts:
    agree      every compared field equal (all but ts_ns, ifindex, hook)
    explained  different in a way the kernel causes, with the reason named
    disagree   anything else: a bug in one of the two parsers
    lost       a record was expected at this hook and never came
    skipped    the frame was never sent (the lab cannot carry it), with the reason

Matching records to frames: each record carries the fingerprint of the frame the hook saw
(pl_fingerprint / record.fingerprint). Within one fingerprint, records are matched to frames in
order. Records whose fingerprint no injected frame has are the lab's own traffic (or another
sender's), and are counted as `foreign`, never compared. All of this is done on whole numpy
arrays: no Python code runs per record.
"""

from dataclasses import dataclass, field

import numpy as np

from . import record as rec

AGREE, EXPLAINED, DISAGREE, LOST, SKIPPED = range(5)
VERDICT_NAMES = ("agree", "explained", "disagree", "lost", "skipped")
IGNORED_FIELDS = ("ts_ns", "ifindex", "hook")

#: explained-difference reasons (index = code stored per frame)
REASONS = (
    "",
    "VLAN tag moved to skb metadata by the stack (skb_vlan_untag in __netif_receive_skb_core) "
    "before TC ingress; the record takes it from __sk_buff (flag VLAN_FROM_META)",
    "frame dropped by the stack before TC ingress: skb_vlan_untag needs the VLAN header and the "
    "two bytes after it (a 20-byte frame) and could not pull them",
    "the kprobe hook copies only the first 2048 bytes of a frame out of the skb",
)
R_VLAN_META, R_VLAN_DROPPED, R_KPROBE_COPY = 1, 2, 3
KPROBE_COPY = 2048
TPIDS = (b"\x81\x00", b"\x88\xa8")


def _compare_mask():
    """Byte columns of the record that take part in the comparison."""
    dt = rec.RECORD_DTYPE
    mask = np.ones(dt.itemsize, dtype=bool)
    for name in IGNORED_FIELDS:
        off = dt.fields[name][1]
        mask[off:off + dt.fields[name][0].itemsize] = False
    return mask


_MASK = None


def compare_mask():
    global _MASK
    if _MASK is None:
        _MASK = _compare_mask()
    return _MASK


@dataclass
class Expected:
    """What one hook should record for each frame (array aligned with the frames)."""
    records: np.ndarray          # RECORD_DTYPE, the walker's view adjusted for the hook
    present: np.ndarray          # bool: a record is expected at all
    reason: np.ndarray           # uint8: REASONS code when adjusted/absent for a kernel reason


def walker_records(frames):
    """The walker's record of every frame, as one array (bulk path: numpy fingerprints)."""
    from .walker import walk_records_array
    return walk_records_array(frames)


def _raw(a):
    """The same memory as opaque fixed-size items: fancy indexing and copies at memcpy speed
    (on the structured dtype numpy copies field by field, ~10x slower)."""
    return a.view(np.dtype((np.void, a.dtype.itemsize)))


def _concat(a, b):
    """np.concatenate of two record arrays at memcpy speed."""
    return np.concatenate([_raw(a), _raw(b)]).view(a.dtype)


def _take(a, index):
    """a[index] (a boolean mask or indexes) at memcpy speed."""
    return _raw(a)[index].view(a.dtype)


def _copy(a):
    return _raw(a).copy().view(a.dtype)


def _tagged(frames):
    """Indexes of frames whose first EtherType is a VLAN TPID (what skb_vlan_untag acts on)."""
    return [i for i, f in enumerate(frames) if f[12:14] in TPIDS]


def expected_for(hook, frames, walked, sendable, tagged=None):
    """Adjust the walker's records to what `hook` sees of each frame.

    `tagged` (optional) is _tagged(frames), computed once per batch for all hooks."""
    exp = _copy(walked)
    present = sendable.copy()
    reason = np.zeros(len(frames), dtype=np.uint8)
    if hook == "tc-ingress":
        from_meta = rec.constants()["PL_F_VLAN_FROM_META"]
        for i in (_tagged(frames) if tagged is None else tagged):
            if not present[i]:
                continue
            f = frames[i]
            # skb_vlan_untag: pskb_may_pull(skb, VLAN_HLEN + sizeof(unsigned short)) after the
            # Ethernet header, i.e. 14 + 4 + 2 bytes, or the skb is freed
            if len(f) < 20:
                present[i] = False
                reason[i] = R_VLAN_DROPPED
                continue
            untagged = f[:12] + f[16:]
            r = exp[i]
            r["frame_len"] = len(untagged)
            r["fingerprint"] = rec.fingerprint(untagged)
            if r["payload_off"]:
                r["payload_off"] -= 4
            r["flags"] |= from_meta
            reason[i] = R_VLAN_META
    elif hook == "kprobe":
        long_ = np.flatnonzero(present & (walked["frame_len"] > KPROBE_COPY))
        if len(long_):
            from .walker import walk_record
            for i in long_:
                f = frames[i]
                exp[i] = np.frombuffer(bytes(walk_record(f[:KPROBE_COPY])),
                                       dtype=rec.RECORD_DTYPE)[0]
                exp[i]["frame_len"] = len(f)
                exp[i]["fingerprint"] = rec.fingerprint(f)
                reason[i] = R_KPROBE_COPY
    return Expected(exp, present, reason)


_IGNORE_WORDS = None


def _same_rows(a, b):
    """Row-wise equality of two record arrays, ignoring IGNORED_FIELDS, as 64-bit words."""
    global _IGNORE_WORDS
    if _IGNORE_WORDS is None:
        keep = compare_mask().reshape(-1, 8)
        # a word is compared through a byte mask (0xff for compared bytes)
        _IGNORE_WORDS = np.frombuffer(np.where(keep, 0xFF, 0).astype(np.uint8).tobytes(),
                                      dtype="<u8")
    if len(a) == 0:
        return np.zeros(0, dtype=bool)
    wa = a.view("<u8").reshape(len(a), -1)
    wb = b.view("<u8").reshape(len(b), -1)
    return ((wa ^ wb) & _IGNORE_WORDS == 0).all(axis=1)


@dataclass
class HookResult:
    verdict: np.ndarray                  # uint8 per frame (VERDICT codes)
    reason: np.ndarray                   # uint8 per frame (REASONS codes)
    matched: np.ndarray                  # RECORD_DTYPE per frame (zeros where none)
    foreign: int = 0                     # records that matched no injected frame
    diffs: dict = field(default_factory=dict)   # frame index -> differing field names

    def counts(self):
        c = np.bincount(self.verdict, minlength=5)
        return {VERDICT_NAMES[i]: int(c[i]) for i in range(5)}


def match(expected_fp, present, records):
    """Index of the frame each record belongs to (-1: foreign), matching in order per fingerprint."""
    idx = np.flatnonzero(present)
    rfp = records["fingerprint"]
    # Fast path: one record per expected frame, in send order (the usual case on one CPU):
    # the first records of a batch (the rest still on its way), or all of it, possibly
    # followed by records of frames sent after these (a replay's next batch).
    m = min(len(rfp), len(idx))
    if np.array_equal(rfp[:m], expected_fp[idx[:m]]):
        if len(rfp) == m:
            return idx[:m].astype(np.int64)
        out = np.full(len(rfp), -1, dtype=np.int64)
        out[:m] = idx[:m]
        return out
    return _match_sorted(expected_fp, idx, rfp)


def _match_sorted(expected_fp, idx, rfp):
    efp = expected_fp[idx]
    order = np.argsort(efp, kind="stable")
    sorted_fp = efp[order]
    frame_of_sorted = idx[order]
    lo = np.searchsorted(sorted_fp, rfp, "left")
    hi = np.searchsorted(sorted_fp, rfp, "right")
    # rank of each record among records of the same fingerprint, in arrival order
    rorder = np.argsort(rfp, kind="stable")
    rs = rfp[rorder]
    starts = np.r_[0, np.flatnonzero(rs[1:] != rs[:-1]) + 1] if len(rs) else np.zeros(0, int)
    run_id = np.zeros(len(rs), dtype=np.int64)
    if len(rs):
        run_id[starts[1:]] = 1
        run_id = np.cumsum(run_id)
    rank_sorted = np.arange(len(rs)) - (starts[run_id] if len(rs) else 0)
    rank = np.empty(len(rs), dtype=np.int64)
    rank[rorder] = rank_sorted
    pos = lo + rank
    ok = pos < hi
    out = np.full(len(rfp), -1, dtype=np.int64)
    out[ok] = frame_of_sorted[pos[ok]]
    return out


def judge(expected, records, sendable):
    """Verdicts for one hook: `records` is everything the hook emitted for these frames."""
    n = len(expected.records)
    verdict = np.full(n, LOST, dtype=np.uint8)
    verdict[~sendable] = SKIPPED
    absent_ok = sendable & ~expected.present
    verdict[absent_ok] = EXPLAINED
    reason = expected.reason.copy()
    matched = np.zeros(n, dtype=rec.RECORD_DTYPE)
    frame = match(expected.records["fingerprint"], expected.present, records)
    hit = frame >= 0
    foreign = int(len(hit) - np.count_nonzero(hit))
    fi = frame[hit]
    got = _raw(records)[hit] if foreign else _raw(records)
    _raw(matched)[fi] = got
    same = _same_rows(got.view(rec.RECORD_DTYPE), _raw(expected.records)[fi].view(rec.RECORD_DTYPE))
    verdict[fi] = np.where(same, np.where(expected.reason[fi] > 0, EXPLAINED, AGREE), DISAGREE)
    diffs = {}
    bad = fi[~same]
    for i in bad[:50]:   # names for the first few: enough to read, cheap to compute
        diffs[int(i)] = rec.compare_fields(matched[i], expected.records[i], ignore=IGNORED_FIELDS)
    return HookResult(verdict, reason, matched, foreign, diffs)
