"""Per packet and hook: does the kernel's record agree with the walker's?

Verdicts:
    agree      every compared field equal (all but ts_ns, ifindex, hook)
    explained  different in a way the kernel causes, with the reason named
    disagree   anything else: a bug in one of the two parsers
    lost       a record was expected at this hook and never came
    skipped    the frame was never sent (the lab cannot carry it), with the reason

Matching records to frames, exactly, whatever order they arrive in:

- A record's *key* is the frame's identity as the hook saw it: its fingerprint (pktlab_record.h),
  a hash of the frame length and of every byte the parse read (at least the first 64, up to
  the record's parse_end), and what the hook took from metadata instead of the bytes (the
  VLAN tag the stack moved into the skb before TC ingress: without it a tagged frame and an
  untagged one with the same remaining bytes look alike). Equal keys mean equal inputs to the
  parser, so equal records: frames that share a key are interchangeable, and which of them
  gets which record changes no verdict and no count. Python computes every frame's key at
  every hook from the frame's own bytes and the walker's parse_end (expected_for).
- Records are paired with frames by key (the i-th record of a key with the i-th frame of it,
  whatever CPU ring it came from). Only a walker that reads different bytes than the kernel
  (a different parse_end: a real bug) leaves records and frames without a key in common: those
  are paired by what both sides read first (length, MACs, EtherType, metadata tag), and are
  disagreements.
- A record no frame takes is one of three things: the next batch's (one of its frames has the
  key: carried over), the run's own but unclaimed (its key belongs to a frame of this or the
  previous batch, which already has a record: `unmatched`, which fails the run like a lost
  record), or foreign (the lab's own traffic, e.g. a reply from the dut's stack: counted, never
  compared).

Limit: the fingerprint hashes at most PL_HASH_MAX (2048) bytes, so frames whose headers run past
2048 bytes (only a jumbo-MTU lab carries them) are told apart by their first 2048 bytes only.

All of it works on whole numpy arrays: no Python code runs per record.
"""

from dataclasses import dataclass, field

import numpy as np

from ..packet import record as rec

AGREE, EXPLAINED, DISAGREE, LOST, SKIPPED = range(5)
VERDICT_NAMES = ("agree", "explained", "disagree", "lost", "skipped")
IGNORED_FIELDS = ("ts_ns", "ifindex", "hook")

#: explained-difference reasons (index = code stored per frame)
REASONS = (
    "",
    "VLAN tag moved to skb metadata by the stack (skb_vlan_untag in __netif_receive_skb_core) "
    "before TC ingress; the record takes it from __sk_buff",
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
    keys: np.ndarray = None      # uint64: the frame's identity at this hook (module docstring)

    def __post_init__(self):
        if self.keys is None:
            self.keys = self.records["fingerprint"].copy()

    def present_keys(self):
        """Sorted keys of the frames that expect a record (for membership tests)."""
        return np.sort(self.keys[self.present])


def walker_records(frames):
    """The walker's record of every frame, as one array (bulk path: numpy fingerprints)."""
    from ..packet import walk_records_array
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


# --- keys and content ---------------------------------------------------------------------

_U64 = np.uint64
_META_PRIME = _U64(0x100000001B3)
_META_MARK = _U64(1 << 40)


def _meta_key(fp, tpid, tci):
    """A key for a frame whose outer VLAN tag the hook took from metadata: the fingerprint of
    the bytes it saw, mixed with that tag (so it can never equal the key of an untagged frame
    with the same bytes). numpy uint64 in, uint64 out; wraps like C."""
    tag = (np.asarray(tpid, dtype=_U64) << _U64(16)) | np.asarray(tci, dtype=_U64)
    with np.errstate(over="ignore"):
        return (np.asarray(fp, dtype=_U64) ^ (tag | _META_MARK)) * _META_PRIME


def record_keys(records):
    """The key of each kernel record: its fingerprint, plus the metadata tag when it has one."""
    keys = records["fingerprint"].astype(_U64, copy=True)
    meta = (records["flags"] & rec.constants()["PL_F_VLAN_FROM_META"]) != 0
    if meta.any():
        keys[meta] = _meta_key(keys[meta], records["vlan_tpid"][meta, 0],
                               records["vlan_tci"][meta, 0])
    return keys


def expected_for(hook, frames, walked, sendable, tagged=None):
    """Adjust the walker's records to what `hook` sees of each frame, and key each frame.

    `tagged` (optional) is _tagged(frames), computed once per batch for all hooks."""
    exp = _copy(walked)
    present = sendable.copy()
    reason = np.zeros(len(frames), dtype=np.uint8)
    keys = walked["fingerprint"].astype(_U64, copy=True)
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
            r["parse_end"] -= 4           # every byte read after the tag moved up by 4
            r["fingerprint"] = rec.fingerprint(untagged, parse_end=int(r["parse_end"]))
            if r["payload_off"]:
                r["payload_off"] -= 4
            r["flags"] |= from_meta
            reason[i] = R_VLAN_META
            # the key from the frame's own bytes (the tag the stack moves), not from the walker
            keys[i] = _meta_key(r["fingerprint"], int.from_bytes(f[12:14], "big"),
                                int.from_bytes(f[14:16], "big"))
    elif hook == "kprobe":
        long_ = np.flatnonzero(present & (walked["frame_len"] > KPROBE_COPY))
        if len(long_):
            from ..packet.walker import walk_record
            for i in long_:
                f = frames[i]
                exp[i] = np.frombuffer(bytes(walk_record(f[:KPROBE_COPY])),
                                       dtype=rec.RECORD_DTYPE)[0]
                exp[i]["frame_len"] = len(f)
                exp[i]["fingerprint"] = rec.fingerprint(f[:KPROBE_COPY], len(f),
                                                        int(exp[i]["parse_end"]))
                keys[i] = exp[i]["fingerprint"]
                reason[i] = R_KPROBE_COPY
    return Expected(exp, present, reason, keys)


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
    foreign: int = 0                     # records that belong to no frame of the run
    unmatched: int = 0                   # records of the run's frames that no frame took
    diffs: dict = field(default_factory=dict)   # frame index -> differing field names
    carry: np.ndarray = None             # records that belong to the next batch

    def counts(self):
        c = np.bincount(self.verdict, minlength=5)
        return {VERDICT_NAMES[i]: int(c[i]) for i in range(5)}


# --- matching -------------------------------------------------------------------------------

def _rank_match(ekeys, eidx, rkeys):
    """Pair records with frames of equal key, the i-th record of a key with the i-th frame of
    that key (eidx: the candidate frames, in send order). Returns the frame per record, -1 when
    its key has no frame left."""
    efp = ekeys[eidx]
    order = np.argsort(efp, kind="stable")
    sorted_fp = efp[order]
    frame_of_sorted = eidx[order]
    lo = np.searchsorted(sorted_fp, rkeys, "left")
    hi = np.searchsorted(sorted_fp, rkeys, "right")
    # rank of each record among records of the same key, in arrival order
    rorder = np.argsort(rkeys, kind="stable")
    rs = rkeys[rorder]
    out = np.full(len(rkeys), -1, dtype=np.int64)
    if not len(rs):
        return out
    starts = np.r_[0, np.flatnonzero(rs[1:] != rs[:-1]) + 1]
    run_id = np.zeros(len(rs), dtype=np.int64)
    run_id[starts[1:]] = 1
    run_id = np.cumsum(run_id)
    rank = np.empty(len(rs), dtype=np.int64)
    rank[rorder] = np.arange(len(rs)) - starts[run_id]
    pos = lo + rank
    ok = pos < hi
    out[ok] = frame_of_sorted[pos[ok]]
    return out


def _in_order(ekeys, idx, rkeys):
    """The usual case on one CPU: the first records are the first frames' records, in send
    order (maybe followed by records of later frames). Returns how many, or 0."""
    m = min(len(rkeys), len(idx))
    if not m or not np.array_equal(rkeys[:m], ekeys[idx[:m]]):
        return 0
    return m


def match(ekeys, present, rkeys):
    """The frame each record belongs to by key (-1: none of these frames has its key)."""
    idx = np.flatnonzero(present)
    m = _in_order(ekeys, idx, rkeys)
    if m:
        out = np.full(len(rkeys), -1, dtype=np.int64)
        out[:m] = idx[:m]
        return out
    return _rank_match(ekeys, idx, rkeys)


_SHAPE = ("frame_len", "dst_mac", "src_mac", "eth_proto")


def shape_keys(records):
    """What both parsers read first and agree on unless the frame is not the same: length,
    MACs, EtherType, and the metadata tag (a hash of them, for the second pairing pass)."""
    words = np.zeros(len(records), dtype=_U64)
    with np.errstate(over="ignore"):
        for name in _SHAPE:
            col = records[name]
            if col.ndim == 2:
                col = np.ascontiguousarray(col)
                v = np.zeros(len(records), dtype=_U64)
                for j in range(col.shape[1]):
                    v = (v << _U64(8)) | col[:, j].astype(_U64)
            else:
                v = col.astype(_U64)
            words = (words ^ v) * _U64(0x100000001B3) + _U64(0x9E3779B97F4A7C15)
        meta = (records["flags"] & rec.constants()["PL_F_VLAN_FROM_META"]) != 0
        tag = np.where(meta, (records["vlan_tpid"][:, 0].astype(_U64) << _U64(16))
                       | records["vlan_tci"][:, 0].astype(_U64) | _META_MARK, _U64(0))
        return (words ^ tag) * _U64(0x100000001B3)


def assign(expected, records, upcoming=None, recent_keys=None):
    """The frame each record belongs to (-1: none), exactly (module docstring): by key, then
    what is left on both sides by shape (the walker read other bytes than the kernel: a
    disagreement). A record whose key is known elsewhere is never paired by shape: a frame of
    the next batch (`upcoming`, an Expected already on its way) has it, or a frame of this batch
    that has its record already, or one of the previous batch (`recent_keys`, sorted): late.
    Returns (frame per record, the records' keys)."""
    ekeys, present = expected.keys, expected.present
    rkeys = record_keys(records)
    out = match(ekeys, present, rkeys)
    left = np.flatnonzero(out < 0)
    if not len(left):
        return out, rkeys
    free = present.copy()
    free[out[out >= 0]] = False
    fidx = np.flatnonzero(free)
    if not len(fidx):
        return out, rkeys
    lk = rkeys[left]
    known = _in_sorted(expected.present_keys(), lk)
    for other in (upcoming.present_keys() if upcoming is not None else None, recent_keys):
        if other is not None:
            known |= _in_sorted(other, lk)
    left = left[~known]
    if len(left):
        out[left] = _rank_match(shape_keys(expected.records), fidx,
                                shape_keys(_take(records, left)))
    return out, rkeys


def _in_sorted(sorted_keys, keys):
    """Membership of keys in a sorted uint64 array."""
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys


def judge(expected, records, sendable, upcoming=None, recent_keys=None):
    """Verdicts for one hook: `records` is everything the hook emitted while this batch's
    records were collected.

    upcoming: the next batch's Expected for this hook, when it is already on its way (its
    records may be among these: they are handed back in .carry). recent_keys: sorted keys of
    the previous batch's frames (a late record of one of them is the run's own: unmatched)."""
    n = len(expected.records)
    verdict = np.full(n, LOST, dtype=np.uint8)
    verdict[~sendable] = SKIPPED
    absent_ok = sendable & ~expected.present
    verdict[absent_ok] = EXPLAINED
    reason = expected.reason.copy()
    matched = np.zeros(n, dtype=rec.RECORD_DTYPE)
    up_keys = upcoming.present_keys() if upcoming is not None else None
    frame, rkeys = assign(expected, records, upcoming, recent_keys)
    hit = frame >= 0
    fi = frame[hit]
    got = _raw(records)[hit] if not hit.all() else _raw(records)
    _raw(matched)[fi] = got
    same = _same_rows(got.view(rec.RECORD_DTYPE), _raw(expected.records)[fi].view(rec.RECORD_DTYPE))
    verdict[fi] = np.where(same, np.where(expected.reason[fi] > 0, EXPLAINED, AGREE), DISAGREE)
    diffs = {}
    bad = fi[~same]
    for i in bad[:50]:   # names for the first few: enough to read, cheap to compute
        diffs[int(i)] = rec.compare_fields(matched[i], expected.records[i], ignore=IGNORED_FIELDS)
    foreign = unmatched = 0
    carry = records[:0]
    if not hit.all():
        miss = ~hit
        mk = rkeys[miss]
        nxt = _in_sorted(up_keys, mk) if up_keys is not None else np.zeros(len(mk), bool)
        own = _in_sorted(expected.present_keys(), mk)
        if recent_keys is not None:
            own |= _in_sorted(recent_keys, mk)
        own &= ~nxt
        unmatched = int(own.sum())
        foreign = int((~nxt & ~own).sum())
        carry = _take(records, np.flatnonzero(miss)[nxt])
    return HookResult(verdict, reason, matched, foreign, unmatched, diffs, carry)
