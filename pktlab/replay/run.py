"""Replay frames through a lab's hooks and judge every record against the walker.

    result = replay("pcaps/mixed.pcap", hooks=["xdp", "tc-ingress"])
    result.summary()          # the JSON document of `pktlab replay --json`

Frames go out in batches; after each batch the record rings are drained until every expected
record has arrived (or nothing new came for a while: those are `lost`), then the whole batch is
judged at once (pktlab/compare.py). Only counts and the first disagreements are kept, so memory
stays flat however long the capture is.
"""

import itertools
import re
import time
from dataclasses import dataclass, field

import numpy as np

from ..kernel import bpf
from . import compare
from ..kernel.hooks import HOOKS, HookSet, parse_hooks
from ..lab.inject import Injector
from ..lab import Lab, leftovers
from ..owned import Owned

DEFAULT_BATCH = 2048
SETTLE_S = 0.25       # no new record for this long: what is missing is lost


@dataclass
class BatchResult:
    frames: list
    sendable: np.ndarray
    skip_reasons: dict
    walked: np.ndarray
    hooks: dict                       # hook -> compare.HookResult


@dataclass
class HookTotals:
    seen: int = 0
    agree: int = 0
    explained: int = 0
    disagree: int = 0
    lost: int = 0
    skipped: int = 0
    foreign: int = 0
    unmatched: int = 0
    ring_lost: int = 0
    reasons: dict = field(default_factory=dict)

    def add(self, res):
        c = res.counts()
        self.agree += c["agree"]
        self.explained += c["explained"]
        self.disagree += c["disagree"]
        self.lost += c["lost"]
        self.skipped += c["skipped"]
        self.seen += c["agree"] + c["explained"] + c["disagree"]
        self.foreign += res.foreign
        self.unmatched += res.unmatched
        codes = res.reason[res.verdict == compare.EXPLAINED]
        for code, n in zip(*np.unique(codes, return_counts=True)):
            text = compare.REASONS[int(code)]
            self.reasons[text] = self.reasons.get(text, 0) + int(n)


class Replayer(Owned):
    """A lab with hooks attached and an injector: send batches, get verdicts."""

    def __init__(self, hooks=HOOKS, xdp_mode="generic", lab=None, mtu=1500, rewrite=None,
                 slots=None, precise_ts=False):
        self.hook_names = parse_hooks(hooks)
        self.slots = slots                   # records per CPU ring (None: bpf.SLOTS_DEFAULT)
        self.precise_ts = precise_ts         # ns timestamps instead of jiffies (HookSet)
        self.rewrite_opts = rewrite          # {"dst_mac": "auto"|MAC|None, "dst_ip4": ..., ...}
        self.rewriter = None
        self.xdp_mode = xdp_mode
        self._own_lab = lab is None
        self.lab = lab if lab is not None else Lab(mtu=mtu)
        self.hooks = None
        self.injector = None
        # records drained but not yet judged (carried over to the next batch), per hook, and
        # the keys of the last judged batch's frames (compare.judge)
        empty = np.empty(0, dtype=compare.rec.RECORD_DTYPE)
        self._pool = {h: empty for h in self.hook_names}
        self._recent = {}

    def open(self):
        if self._held:
            return self
        self._hold()            # from here, close() removes whatever the rest made
        try:
            if self._own_lab:
                self.lab.up()
            self.hooks = HookSet(self.lab, self.hook_names, xdp_mode=self.xdp_mode,
                                 slots=self.slots, precise_ts=self.precise_ts).open()
            self.injector = Injector(self.lab)
            if self.rewrite_opts:
                from ..packet.rewrite import for_lab
                self.rewriter = for_lab(self.lab, **self.rewrite_opts)
        except BaseException:
            self.close()
            raise
        return self

    def _release(self):
        # a lab of our own takes the hooks away itself (they are its own: HookSet.open), with
        # Ctrl-C and SIGTERM held until it is gone: an interrupt landing while a hook was taken
        # away used to leave the other hooks and the lab (and could land inside pyroute2)
        try:
            if self.injector is not None:
                self.injector.close()
        finally:
            if self._own_lab:
                self.lab.close()
            elif self.hooks is not None:
                self.hooks.close()

    @property
    def via(self):
        return dict(self.hooks.via)

    def prepare(self, frames):
        """Everything about a batch that needs no kernel: rewrite, walk, what each hook expects."""
        frames = [f if type(f) is bytes else bytes(f) for f in frames]
        if self.rewriter is not None:
            frames = [self.rewriter(f) for f in frames]
        tagged = compare._tagged(frames)
        sendable, reasons = self.injector.sendable(frames, tagged)
        walked = compare.walker_records(frames)
        expected = {h: compare.expected_for(h, frames, walked, sendable, tagged)
                    for h in self.hook_names}
        to_send = [f for f, ok in zip(frames, sendable) if ok] if reasons else frames
        return Prepared(frames, sendable, reasons, walked, expected, to_send)

    def send(self, prepared, pacer=None):
        if pacer is None:
            self.injector.send_many(prepared.to_send)
        else:
            for f in prepared.to_send:
                pacer.wait(len(f))
                self.injector.send(f)

    def finish(self, prepared, upcoming=None):
        """Collect the batch's records and judge them.

        upcoming: the next batch's Prepared when it is already being sent (its records may
        arrive while this batch's are collected: they are kept for it, see compare.judge)."""
        got = self._collect(prepared.expected)
        results = {}
        for h in self.hook_names:
            exp = prepared.expected[h]
            res = compare.judge(exp, got[h], prepared.sendable,
                                upcoming.expected[h] if upcoming is not None else None,
                                self._recent.get(h))
            self._pool[h] = res.carry
            self._recent[h] = exp.present_keys()
            results[h] = res
        return BatchResult(prepared.frames, prepared.sendable, prepared.reasons,
                           prepared.walked, results)

    def run_batch(self, frames, pacer=None):
        """prepare, send, finish: one batch, start to end."""
        prepared = self.prepare(frames)
        self.send(prepared, pacer)
        return self.finish(prepared)

    def _collect(self, expected):
        """Drain until every expected record is in (or nothing came for SETTLE_S), and return
        everything drained (with what the previous batch carried over): judge() decides which
        records are this batch's."""
        pool = self._pool
        want = {h: int(expected[h].present.sum()) for h in self.hook_names}

        def have(h):
            recs = pool[h]
            if not len(recs):
                return 0
            return int((compare.match(expected[h].keys, expected[h].present,
                                      compare.record_keys(recs)) >= 0).sum())

        count = {h: have(h) for h in self.hook_names}
        last_new = time.monotonic()
        while not all(count[h] >= want[h] for h in self.hook_names):
            new = False
            for h, arr in self.hooks.drain().items():
                if len(arr):
                    new = True
                    pool[h] = compare._concat(pool[h], arr) if len(pool[h]) else arr
                    count[h] = have(h)
            now = time.monotonic()
            if new:
                last_new = now
            elif now - last_new > SETTLE_S:
                break
            else:
                time.sleep(0.0002)
        got = dict(pool)
        for h in self.hook_names:
            pool[h] = pool[h][:0]
        return got

    def flush(self):
        """At the end: records no batch claimed, per hook, as (foreign, unmatched): a late
        record of the run's own frames is unmatched (it fails the run), the rest is the lab's
        own traffic."""
        pool = self._pool
        out = {}
        drained = self.hooks.drain()
        for h in self.hook_names:
            recs = pool[h]
            late = drained.get(h)
            if late is not None and len(late):
                recs = compare._concat(recs, late) if len(recs) else late
            recent = self._recent.get(h)
            own = (compare._in_sorted(recent, compare.record_keys(recs))
                   if recent is not None and len(recs) else np.zeros(len(recs), dtype=bool))
            out[h] = (int((~own).sum()), int(own.sum()))
            pool[h] = recs[:0]
        return out


@dataclass
class Prepared:
    frames: list
    sendable: np.ndarray
    reasons: dict
    walked: np.ndarray
    expected: dict
    to_send: list


class _Sender:
    """Sends a prepared batch on its own thread: the kernel's work for each frame (the veth,
    every hook) runs inside send(), which releases the GIL, so it overlaps with walking the
    next batch and judging the previous one on the other CPU.

    Safe to interrupt at any moment (Ctrl-C arrives in the main thread, anywhere): ``thread``
    is set only once the thread has really started, wait() is safe in every state, and close()
    stops a paced send at once and waits for the thread, so the lab is never torn down under a
    send in progress. close() is safe twice."""

    def __init__(self, replayer, pacer):
        import threading
        self.rp, self.pacer = replayer, pacer
        self.thread = None          # a started thread, never one that start() did not finish
        self._starting = None       # the thread while start() runs (an interrupt may cut it)
        self.error = None
        self._stop = threading.Event()
        self._threading = threading

    def start(self, prepared):
        t = self._threading.Thread(target=self._run, args=(prepared,), name="pktlab-sender",
                                   daemon=True)
        self._starting = t
        t.start()
        self.thread, self._starting = t, None

    def _run(self, prepared):
        if self._stop.is_set():         # started after close(): the lab may be gone already
            return
        try:
            self.rp.send(prepared, self.pacer)
        except Cancelled:
            pass
        except BaseException as e:      # re-raised in the main thread by wait()
            self.error = e

    def wait(self):
        """Wait for the batch being sent; re-raise what went wrong in it."""
        if self._starting is not None:  # start() was cut short: nothing to wait for in order
            self.close()
            return
        t, self.thread = self.thread, None
        if t is not None:
            t.join()
        if self.error is not None:
            err, self.error = self.error, None
            raise err

    def close(self):
        """Stop: cancel a paced send, wait for the thread if it runs, forget its error (the
        caller is unwinding already)."""
        self._stop.set()
        if self.pacer is not None:
            self.pacer.cancel()
        for t in (self.thread, self._starting):
            # not alive: never started (it will see _stop if it ever does), or done
            if t is not None and t.is_alive():
                t.join()
        self.thread = self._starting = None
        self.error = None


class Cancelled(Exception):
    """A paced send stopped by Pacer.cancel() (the replay is being interrupted)."""


class Pacer:
    """Hold a send rate: wait() returns when the next frame is due (spins for the last 2 ms).

    By packets (pps) or by bits (mbps: each frame's due time follows from its length). A rate
    must be a finite number above 0; however slow, waiting is in slices (no sleep too long for
    the clock), and cancel() ends a wait at once (wait() raises Cancelled)."""

    LONGEST_SLEEP_S = 60.0

    def __init__(self, pps=None, mbps=None):
        import math
        import threading
        if (pps is None) == (mbps is None):
            raise ValueError("rate: give exactly one of pps or mbps")
        given = pps if pps is not None else mbps
        try:
            rate = float(given)
        except (TypeError, ValueError):
            raise ValueError(f"rate {given!r}: not a number") from None
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate {given}: must be positive and finite")
        self.interval = 1.0 / rate if pps is not None else None
        self.bit_time = 1.0 / (rate * 1e6) if mbps is not None else None
        self.next = None
        self._cancel = threading.Event()

    def cancel(self):
        self._cancel.set()

    def wait(self, nbytes=0):
        now = time.perf_counter()
        if self.next is None:
            self.next = now
        while True:
            delay = self.next - time.perf_counter()
            if delay <= 0.002:
                break
            if self._cancel.wait(min(delay - 0.002, self.LONGEST_SLEEP_S)):
                raise Cancelled()
        if self._cancel.is_set():
            raise Cancelled()
        while time.perf_counter() < self.next:
            pass
        self.next += self.interval if self.interval else nbytes * 8 * self.bit_time


@dataclass
class ReplayResult:
    source: str
    hooks: tuple
    via: dict
    packets: int = 0
    sent: int = 0
    totals: dict = field(default_factory=dict)
    elapsed_s: float = 0.0
    leftovers: list = field(default_factory=list)
    lab: str = None                                      # the lab's name (its namespaces' prefix)
    problems: list = field(default_factory=list)
    disagreements: list = field(default_factory=list)   # first few, with field names
    requested_pps: float = None
    hook_pps: dict = field(default_factory=dict)         # rate measured by hook timestamps
    hook_clock: str = "ns"                               # the hooks' timestamp resolution
    kprobe_why: dict = field(default_factory=dict)
    rewrite: dict = None
    skipped_reasons: dict = field(default_factory=dict)  # why frames were not sent -> count

    @property
    def pps(self):
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def ok(self):
        return all(t.disagree == 0 and t.lost == 0 and t.ring_lost == 0 and t.unmatched == 0
                   for t in self.totals.values())

    def summary(self):
        return {
            "source": self.source,
            "packets": self.packets,
            "sent": self.sent,
            "hooks": {h: {"seen": t.seen, "agree": t.agree, "explained": t.explained,
                          "disagree": t.disagree, "lost": t.lost,
                          "skipped": t.skipped, "foreign": t.foreign,
                          # records of this run's frames that no frame took (late, or
                          # doubled): they fail the run like lost records
                          "unmatched": t.unmatched,
                          # records the hook's ring refused (their frames are `lost`
                          # above, unless the record was the lab's own traffic)
                          "ring_buffer_lost": t.ring_lost, "via": self.via.get(h),
                          "explained_reasons": t.reasons,
                          "measured_pps": self.hook_pps.get(h)}
                      for h, t in self.totals.items()},
            "elapsed_s": round(self.elapsed_s, 4),
            "pps": round(self.pps, 1),
            "requested_pps": self.requested_pps,
            "hook_clock": self.hook_clock,
            "leftovers": self.leftovers,
            "lab": self.lab,
            "problems": self.problems,
            "disagreements": self.disagreements,
            "kprobe_not_used": self.kprobe_why,
            "rewrite": self.rewrite,
            "skipped_reasons": self.skipped_reasons,
        }


#: capture problems a replay lists word for word (a damaged file can have one per frame)
MAX_PROBLEMS = 50


def _is_path(source):
    return isinstance(source, (str, bytes)) or hasattr(source, "__fspath__")


def _frames_from(source, problems, limit):
    """The frames' bytes, at most `limit` of them. A path is read leniently: its problems go
    to `problems` as messages, each once however many times the file is read (--loop), and at
    most MAX_PROBLEMS of them (then one line saying that more were left out)."""
    if _is_path(source):
        from ..packet.capture import read_frames
        seen = set(problems)

        def on_error(problem):
            msg = problem.message() if hasattr(problem, "message") else str(problem)
            if msg in seen or len(problems) > MAX_PROBLEMS:
                return
            seen.add(msg)
            problems.append(msg if len(problems) < MAX_PROBLEMS else
                            "further capture problems are not listed (`pktlab cast FILE` "
                            "lists them all)")
        it = read_frames(source, on_error=on_error, data_only=True)
    else:
        it = (bytes(f) for f in source)
    return itertools.islice(it, limit) if limit is not None else it


class _HookRate:
    """First and last timestamp seen at a hook: the rate it really saw.

    resolution_ns: the hooks' clock tick (1 for ns timestamps, 1e9/HZ for jiffies); a span
    shorter than 100 ticks gives no rate (the tick alone would be more than 1% of it)."""

    def __init__(self, resolution_ns=1):
        self.resolution_ns = resolution_ns
        self.first = None
        self.last = None
        self.n = 0

    def add(self, matched, verdict):
        ts = matched["ts_ns"][verdict <= compare.DISAGREE]
        ts = ts[ts > 0]
        if len(ts):
            lo, hi = int(ts.min()), int(ts.max())
            self.first = lo if self.first is None else min(self.first, lo)
            self.last = hi if self.last is None else max(self.last, hi)
            self.n += len(ts)

    def pps(self):
        if self.n < 2 or self.last - self.first < 100 * self.resolution_ns:
            return None
        return round((self.n - 1) / ((self.last - self.first) / 1e9), 1)


def ring_slots_for(batch=DEFAULT_BATCH):
    """Records per CPU ring for a replay in batches of `batch`: two batches are in flight (one
    sent, one judged), plus records carried over: room for four."""
    return max(bpf.SLOTS_DEFAULT, 1 << (4 * int(batch) - 1).bit_length())


def _check_counts(**counts):
    """loop and batch at least 1; limit None (every frame) or at least 1 (0 is not 'all')."""
    for name, v in counts.items():
        if v is None and name == "limit":
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} {v!r}: must be a whole number, at least 1")


def replay(source, hooks=HOOKS, *, pps=None, mbps=None, loop=1, limit=None, batch=DEFAULT_BATCH,
           xdp_mode="generic", lab=None, progress=None, keep_disagreements=20, mtu=1500,
           rewrite=None, precise_ts=None):
    """Inject a capture (a path, or an iterable of frames) into a lab and judge every record.

    progress: optional callable(frames_done) called after each batch.
    precise_ts: the hooks' timestamps in ns (bpf_ktime_get_ns, a helper call per record) or in
    jiffies; None: ns when the rate is paced (the hooks' own rate is then measured to the ns),
    jiffies at top speed (where the helper call would cost throughput).
    """
    hook_names = parse_hooks(hooks)
    problems = []
    label = str(source) if _is_path(source) else "<frames>"
    _check_counts(loop=loop, limit=limit, batch=batch)
    pacer = Pacer(pps=pps, mbps=mbps) if (pps is not None or mbps is not None) else None
    if _is_path(source):
        # bad input is refused before any lab is built: a file with no readable frame (not a
        # capture, compressed, empty, only refused link types...) says why in one line
        from ..errors import CaptureError
        from ..packet.survey import survey
        checked = survey(source, limit=limit, mtu=lab.mtu if lab is not None else mtu)
        if checked.frames == 0:
            raise CaptureError(checked.refusal(need_sendable=False))
    if precise_ts is None:
        precise_ts = pacer is not None
    slots = ring_slots_for(batch)
    with Replayer(hook_names, xdp_mode=xdp_mode, lab=lab, mtu=mtu, rewrite=rewrite,
                  slots=slots, precise_ts=precise_ts) as rp:
        result = ReplayResult(label, hook_names, rp.via,
                              requested_pps=pps if pps else (f"{mbps} Mbit/s" if mbps else None),
                              kprobe_why=dict(rp.hooks.kprobe_why))
        result.totals = {h: HookTotals() for h in hook_names}
        tick = 1 if precise_ts else 1_000_000_000 // bpf.kernel_hz()
        result.hook_clock = "ns" if precise_ts else f"jiffies ({tick / 1e6:g} ms)"
        rates = {h: _HookRate(tick) for h in hook_names}
        t0 = time.perf_counter()
        base = 0
        sender = _Sender(rp, pacer)

        def batches():
            for _ in range(loop):
                frames = _frames_from(source, problems, limit)
                while True:
                    chunk = list(itertools.islice(frames, batch))
                    if not chunk:
                        break
                    yield chunk

        def account(prepared, upcoming=None):
            nonlocal base
            br = rp.finish(prepared, upcoming)
            result.packets += len(prepared.frames)
            result.sent += int(br.sendable.sum())
            for why in br.skip_reasons.values():
                # "3070 bytes: larger than ..." -> one line per reason, whatever the length
                why = re.sub(r"^\d+ bytes: ", "", str(why))
                result.skipped_reasons[why] = result.skipped_reasons.get(why, 0) + 1
            for h, res in br.hooks.items():
                result.totals[h].add(res)
                rates[h].add(res.matched, res.verdict)
                if len(result.disagreements) < keep_disagreements:
                    for i, names in res.diffs.items():
                        result.disagreements.append(
                            {"frame": base + i + 1, "hook": h, "fields": names})
            base += len(prepared.frames)
            if progress:
                progress(result.packets)

        in_flight = None
        try:
            for chunk in batches():
                prepared = rp.prepare(chunk)          # overlaps with the previous send
                sender.wait()
                sender.start(prepared)
                if in_flight is not None:
                    account(in_flight, prepared)      # overlaps with this send
                in_flight = prepared
            sender.wait()
            if in_flight is not None:
                account(in_flight)
            for h, (foreign, unmatched) in rp.flush().items():
                result.totals[h].foreign += foreign
                result.totals[h].unmatched += unmatched
        finally:
            sender.close()        # at once, in every state (an interrupt may come anywhere)
        result.elapsed_s = time.perf_counter() - t0
        for h, n in rp.hooks.lost().items():
            result.totals[h].ring_lost = n
        result.hook_pps = {h: r.pps() for h, r in rates.items()}
        if rp.rewriter is not None:
            result.rewrite = rp.rewriter.summary()
        name = rp.lab.name
        own = lab is None
    if own:
        result.leftovers = leftovers(name)
    result.lab = name
    result.problems = problems
    return result
