"""pktlabd's ops for a learner's own programs (lesson 02's %%bpf and pl.program, the test runs,
the exercise checkers and assignments): each op takes (session, Args, blob) and returns (a
JSON-able result, a blob), like pktlab.workshop.ops. Registered in ops.OPS.

    program      the caller's C (its bytes) through the restricted learner loader
                 (pktlab.kernel.loader), or a program this connection holds (`id`), or
                 pktlab's own XDP program (`own`): the loader's Attempt as data; frames sent
                 after the C test-run one by one (BPF_PROG_TEST_RUN, no lab): each return
                 code, a watched map's changes frame by frame, the record each frame left in
                 the program's record ring (pktlab's transport), the maps at the end. `keep`:
                 the connection holds the program (an id) until `close` or the connection ends.
    program_lab  a held program in one of the caller's labs: attach (pktlab's hooks step
                 aside), detach (they come back), replay a capture through it (verdicts
                 counted by pktlab's wrapper), bounce frames off it (what came back to src);
                 in a throwaway lab of the caller's when no lab is named. A replay asked with
                 `progress` sends the program's maps as it goes (progress messages before the
                 answer, at most every PROGRESS_S): a notebook's live tables follow it.

Frames travel in the blob as [2-byte big-endian length][bytes], one after another (a corpus or
65,000 made-up flows, no list of lengths in the JSON). No program, map or fd leaves the daemon;
only a program this connection loaded is ever named by an id, only in a lab it holds.
"""

import contextlib
import struct
import time

from . import protocol as P

#: programs one connection holds at once
MAX_HELD = 16
#: a replay with progress: frames sent between two looks at the maps, and the least time
#: between two progress messages (each carries every map, as mapdump reads it)
PROGRESS_CHUNK = 64
PROGRESS_S = 0.25
#: frames one request test-runs at most (lesson 03's A5 fills a 65,536-entry map and more)
MAX_FRAMES = 70_000
#: frames one bounce sends at most
MAX_BOUNCE = 64
BOUNCE_SETTLE_S = 2.0     # every frame that bounces is back by then (generic XDP on a veth: µs)
HOOKS = ("xdp", "tc-ingress", "tc-egress")
WATCH_FRAMES = 5000       # frames whose watched map is read after each one
#: entries a watched map may change in, summed over one request's frames (each is kept in
#: root's session process until the answer goes: a program rewriting a 65,536-entry map on
#: every frame would otherwise keep 5,000 x 65,536 of them)
WATCH_CHANGES_MAX = 1 << 18
#: the bytes of maps (mappolicy.map_bytes) of the programs one connection holds at once
HELD_MAP_BYTES = 64 << 20
RING_SLOTS = 16           # the record ring of a program built with pktlab's transport


# frames in a blob ---------------------------------------------------------------------------
def pack(frames):
    """Frames -> the blob's frame section."""
    out = bytearray()
    for f in frames:
        f = bytes(f)
        if len(f) > 0xFFFF:
            raise ValueError(f"a frame of {len(f)} bytes; at most 65,535")
        out += struct.pack(">H", len(f)) + f
    return bytes(out)


def unpack(data, most=MAX_FRAMES):
    out, at = [], 0
    while at < len(data):
        if at + 2 > len(data):
            raise P.ProtocolError("frames: a length cut short")
        (n,) = struct.unpack_from(">H", data, at)
        at += 2
        if at + n > len(data):
            raise P.ProtocolError(f"frames: frame {len(out) + 1} announces {n} bytes, "
                                  f"{len(data) - at} left")
        out.append(data[at:at + n])
        at += n
        if len(out) > most:
            raise P.Refused(f"frames: more than {most:,} in one request")
    return out


# held programs --------------------------------------------------------------------------------
class Held:
    """A learner's program this connection holds, and where it is attached."""

    def __init__(self, pid, prog, hook):
        self.id, self.prog, self.hook = pid, prog, hook
        self.sl = self.att = None

    def attach(self, sl):
        from ..kernel import verdicts
        from ..replay import learner
        from .opssockets import SessionBelt
        if isinstance(sl, SessionBelt):        # its hooks are the belt's (its aside() refuses)
            raise P.Refused(f"lab {sl.name} holds a belt: no program of yours goes there; "
                            "open a lab for that")
        if verdicts.MAP not in self.prog.maps or verdicts.CONFIG not in self.prog.maps:
            raise P.Refused(f"program {self.id}: not loaded with pktlab's counting wrapper; "
                            "it test-runs, it does not attach")
        sl.detach()                            # pktlab's hooks step aside (sl.hooks kept)
        try:
            att = learner.attach(sl.lab, self.hook, self.prog.fd)
            try:
                verdicts.skip_source(self.prog, sl.lab.mac("src"))
            except BaseException:
                att.close()
                raise
        except BaseException:
            sl.attach(sl.hooks)
            raise
        self.sl, self.att = sl, att

    def detach(self):
        from ..kernel import verdicts
        from ..kernel.bpfobj import map_update
        import ctypes
        sl, att = self.sl, self.att
        self.sl = self.att = None
        if att is None:
            return
        try:
            att.close()
            if att in sl.lab._owned:
                sl.lab._owned.remove(att)
        finally:
            try:
                if not self.prog.closed:
                    map_update(self.prog.maps[verdicts.CONFIG].fd, ctypes.c_uint32(0), bytes(8))
            finally:
                if not sl.lab.closed:
                    sl.attach(sl.hooks)        # pktlab's hooks come back

    def close(self):
        try:
            if self.att is not None and not self.sl.lab.closed:
                self.detach()
        finally:
            self.prog.close()


def _held(s):
    """This connection's programs {id: Held} (they die with the session process: its fds)."""
    return s.__dict__.setdefault("_learner_programs", {})


def _one(s, pid):
    h = _held(s).get(pid) if isinstance(pid, str) else None
    if h is None or h.prog.closed:
        raise P.Refused(f"program {str(pid)[:40]!r}: no program of yours on this connection; "
                        "pktlabd acts only on programs it loaded for you")
    if h.sl is not None and h.sl.lab.closed:
        h.sl = h.att = None                   # its lab was closed under it
    return h


def _map_bytes(prog):
    """The kernel memory a program's maps asked for (as the learner loader counts it)."""
    from ..kernel.bpf import possible_cpus
    from ..kernel.mappolicy import map_bytes
    return sum(map_bytes(m.type_name, m.info.key_size, m.info.value_size, m.info.max_entries,
                         possible_cpus()) for m in prog.maps.values())


def _maps_info(prog):
    return {n: {"type": m.type_name, "key_size": m.info.key_size,
                "value_size": m.info.value_size, "max_entries": m.info.max_entries}
            for n, m in prog.maps.items()}


def _load(s, a, blob):
    """The caller's C from the blob, through the learner loader: (Attempt, program or None,
    hook, the rest of the blob)."""
    from .. import resources
    from ..kernel import bpf, loader, verifier
    from ..kernel.progload import LoadRequest
    from ..replay.learner import RUN_HOOKS
    n = a.int("source_len", None, 0, verifier.MAX_SOURCE_BYTES)
    if n is None or n > len(blob):
        raise ValueError("program: source_len must say how many of the bytes sent are the C "
                         "source")
    hook = a.str("hook", "xdp", HOOKS)
    func = a.str("func", max_len=128)
    if func is not None and not func.isidentifier():
        raise ValueError(f"program: func {func[:40]!r} is not a C name")
    label = a.str("name", "program.c", max_len=128)
    ring = a.bool("ring", False)
    defines = tuple(f[2:] for f in bpf.transport_cflags(slots=RING_SLOTS)) if ring else ()
    req = LoadRequest(blob[:n], label, RUN_HOOKS[hook][0], func,
                      (resources.snippets_dir(),), defines)
    with s.compile_slot():
        att, prog = loader.load(req)
    return att, prog, hook, blob[n:]


#: the session's own network namespace for test runs (an fd; None until the first)
_NETNS = [None]
CLONE_NEWNET = 0x40000000


def _off_host(fn, *args):
    """fn(*args) in a thread of its own that first enters a network namespace of the
    session's own (made at its first test run: only a lo, down; gone with the session). A test run happens in the calling
    thread's namespace (the skb's device is its lo), and in pktlabd's that is the host's: a
    learner's bpf_clone_redirect(skb, IFINDEX, ...) put their frame on the host's
    interfaces. (unshare(CLONE_NEWNET) moves the calling thread only.)"""
    import ctypes
    import os
    import threading
    out = {}

    def body():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if _NETNS[0] is not None:                          # this session's, made before
                if libc.setns(_NETNS[0], CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"test runs: setns: {os.strerror(e)}")
            else:
                if libc.unshare(CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"test runs: unshare(CLONE_NEWNET): {os.strerror(e)}")
                # kept for the session's next requests: one namespace per connection, not
                # one per request (a namespace's removal is slow work for the kernel)
                _NETNS[0] = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            out["value"] = fn(*args)
        except BaseException as e:                             # raised again by the caller
            out["error"] = e
    t = threading.Thread(target=body, name="pktlab-test-runs", daemon=True)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def _test_runs(prog, frames, watch, ring_ok):
    """Each frame test-run once, off the host's network (_off_host): (runs, changes, records
    blob, records missing)."""
    return _off_host(_test_runs_here, prog, frames, watch, ring_ok)


def _test_runs_here(prog, frames, watch, ring_ok):
    import numpy as np
    from ..errors import BPFError
    from ..kernel import mapdump
    from ..packet.record import RECORD_DTYPE
    runs, changes, missing, kept = [], [], {}, 0
    m = prog.maps.get(watch) if watch else None
    if watch and m is None:
        changes = None                         # the client says the map is missing
    before = mapdump.dump_map(m)[0] if m is not None else {}
    start = dict(before)
    recs = np.zeros(len(frames) if ring_ok else 0, dtype=RECORD_DTYPE)
    with contextlib.ExitStack() as stack:
        ring = stack.enter_context(_ring(prog)) if ring_ok else None
        if ring is not None:
            ring.read()
        for i, f in enumerate(frames):
            try:
                rc, ns = prog.test_run(f)
                runs.append([int(rc), int(ns)])
            except BPFError as e:
                runs.append([None, str(e)])
                if ring is not None:
                    missing[str(i)] = str(e)
                continue
            if ring is not None:
                got = ring.read()
                if len(got) != 1:
                    missing[str(i)] = f"{len(got)} records instead of one"
                else:
                    recs[i] = got[0]
            if m is not None:
                after = mapdump.dump_map(m)[0]
                changes.append([{k: v for k, v in after.items() if before.get(k) != v},
                                [k for k in before if k not in after]])
                before = after
                kept += len(changes[-1][0]) + len(changes[-1][1])
                if kept > WATCH_CHANGES_MAX:
                    raise P.Refused(f"program: map {watch} changed in more than "
                                    f"{WATCH_CHANGES_MAX:,} entries over the first {i + 1:,} "
                                    "frames, the most one request keeps; watch fewer frames")
    return runs, ({"before": start, "each": changes} if watch else None), \
        recs.tobytes(), missing


def _ring(prog):
    from ..errors import BPFError
    from ..kernel import bpf
    from ..kernel.ringbuf import RingReader
    from ..packet.record import RECORD_DTYPE
    if "ctl" not in prog.maps or "events" not in prog.maps:
        raise BPFError(f"{prog.func} has no record ring (maps ctl and events)")
    return contextlib.closing(RingReader(prog.maps["ctl"].fd, prog.maps["events"].fd,
                                         bpf.possible_cpus(), RING_SLOTS, RECORD_DTYPE))


def op_program(s, a, blob):
    """See the module docstring."""
    from ..kernel import mapdump
    pid = a.str("id", max_len=16)
    own = a.str("own", None, ("xdp", "tc-ingress", "tc-egress"))
    frames_len = a.int("frames_len", 0, 0, P.MAX_REQUEST_BLOB)
    watch = a.str("watch", max_len=64)
    dump = a.bool("maps", False)
    if own is not None:
        a.finish()
        return _own(s, own, blob)
    if pid is None:
        keep = a.bool("keep", False)
        att, prog, hook, rest = _load(s, a, blob)
        ring_ok = a.args.get("ring") is True
        close = False
    else:
        close = a.bool("close", False)
        h = _one(s, pid)
        prog, hook, rest, keep, att, ring_ok = h.prog, h.hook, blob, True, None, False
    a.finish()
    if frames_len != len(rest):
        raise P.ProtocolError(f"program: frames_len {frames_len}, {len(rest)} bytes sent after "
                              "the source")
    frames = unpack(rest)
    if watch and len(frames) > WATCH_FRAMES:
        raise P.Refused(f"program: a map watched frame by frame over at most {WATCH_FRAMES:,} "
                        "frames")
    doc = {"attempt": att.to_dict() if att is not None else None, "id": pid}
    if prog is None:
        return doc, b""
    held = _held(s)
    try:
        doc["func"], doc["prog_type"] = prog.func, prog.prog_type
        doc["maps_info"] = _maps_info(prog)
        # one learner's test runs one at a time, over all their connections (waited for):
        # root's CPU for them is the compile's, one learner's share (a test run cannot be
        # interrupted by the request's alarm, and 8 connections would run 8 at once)
        with s._uid_lock("testrun") if frames else contextlib.nullcontext():
            doc["runs"], doc["watch"], records, doc["missing"] = _test_runs(prog, frames, watch,
                                                                            ring_ok)
        if dump:
            doc["maps"], doc["info"] = mapdump.dump(prog)
        if keep and pid is None:
            if len(held) >= MAX_HELD:
                raise P.Refused(f"program: this connection holds {len(held)} programs, the "
                                f"most it may; close one first")
            have = sum(_map_bytes(x.prog) for x in held.values())
            if have + _map_bytes(prog) > HELD_MAP_BYTES:
                raise P.Refused(f"program: its maps take {_map_bytes(prog) / 2**20:.1f} MiB and "
                                f"this connection's programs hold {have / 2**20:.1f} MiB; it may "
                                f"hold {HELD_MAP_BYTES >> 20} MiB of maps: close one first")
            pid = f"p{s.__dict__.setdefault('_program_serial', [0])[0] + 1}"
            s.__dict__["_program_serial"][0] += 1
            held[pid] = Held(pid, prog, hook)
            doc["id"] = pid
    finally:
        if pid is None or pid not in held:
            prog.close()
        elif close:
            held.pop(pid).close()
            doc["closed"] = True
    return doc, records


def _own(s, hook, blob):
    """pktlab's own program of `hook` (compiled as the lab's hooks are) test-run on frames:
    each frame's record, and why a frame was refused."""
    from ..kernel import bpf
    frames = unpack(blob, most=10_000)
    recs, refused = bpf.parse_in_kernel(frames, hook)
    return {"refused": {str(k): str(v) for k, v in refused.items()}, "n": len(frames)}, \
        recs.tobytes()


# in a lab -------------------------------------------------------------------------------------
def op_program_lab(s, a, blob):
    """A held program in one of the caller's labs (see the module docstring)."""
    from ..kernel import mapdump, verdicts
    from ..replay import learner
    h = _one(s, a.str("id", required=True, max_len=16))
    do = a.str("do", required=True, choices=("attach", "detach", "replay", "bounce"))
    name = a.str("lab")
    label = a.str("label", "capture.pcap")
    progress = a.bool("progress", False)
    a.finish()
    sl = s.mine(name) if name is not None else None
    if do == "attach":
        if sl is None:
            raise ValueError("program_lab: attach needs one of your labs (lab)")
        if h.sl is not sl:
            if h.att is not None:
                h.detach()
            h.attach(sl)
        return {"attached": sl.name}, b""
    if do == "detach":
        h.detach()
        return {"attached": None}, b""
    if do == "bounce":
        frames = unpack(blob, most=MAX_BOUNCE)
        if h.prog.prog_type != "XDP":
            raise P.Refused("program_lab: bounce takes an XDP program")
        if sl is not None:
            if h.sl is sl:
                h.detach()
            with sl.aside() as lab:
                back = bounce(lab, h.prog.fd, frames)
        else:
            with s.throwaway_lab() as made:
                back = bounce(made[0], h.prog.fd, frames)
        return {"back": [[len(x) for x in got] for got in back]}, \
            b"".join(b"".join(got) for got in back)
    if verdicts.MAP not in h.prog.maps:
        raise P.Refused(f"program {h.id}: not loaded with pktlab's counting wrapper")
    if len(blob) > s.limits.capture_bytes:
        raise P.Refused(f"capture {label}: {len(blob):,} bytes; at most "
                        f"{s.limits.capture_bytes:,}")
    path = s.new_files().write(label, blob, "capture.pcap")
    learner.check_capture(path, sl.lab.mtu if sl is not None else 1500)
    how = _progress(s, h) if progress else {}
    if sl is not None and h.sl is sl:
        doc = learner.replay_attached(h.prog, sl.lab, path, **how)
    elif sl is not None:
        before = h.sl
        if before is not None:
            h.detach()
        try:
            h.attach(sl)
            try:
                doc = learner.replay_attached(h.prog, sl.lab, path, **how)
            finally:
                h.detach()
        finally:
            if before is not None and not before.lab.closed:
                h.attach(before)
    else:
        with s.throwaway_lab() as made:
            lab = made[0]
            att = learner.attach(lab, h.hook, h.prog.fd)
            try:
                verdicts.skip_source(h.prog, lab.mac("src"))
                doc = learner.replay_attached(h.prog, lab, path, **how)
            finally:
                att.close()
        doc["leftovers"] = made[1]
    doc["lab"] = sl.name if sl is not None else "a throwaway lab"
    doc["maps"], doc["maps_info"] = mapdump.dump(h.prog, skip={verdicts.MAP, verdicts.CONFIG})
    return doc, b""


def _progress(s, h):
    """replay_attached's chunking for a replay with progress: after each PROGRESS_CHUNK
    frames, the maps sent to the client (no more often than every PROGRESS_S)."""
    from ..kernel import mapdump, verdicts
    last = [0.0]

    def on_chunk(sent):
        now = time.monotonic()
        if now - last[0] < PROGRESS_S:
            return
        last[0] = now
        maps, info = mapdump.dump(h.prog, skip={verdicts.MAP, verdicts.CONFIG})
        s.progress({"sent": sent, "maps": maps, "maps_info": info})
    return {"chunk": PROGRESS_CHUNK, "on_chunk": on_chunk}


def bounce(lab, fd, frames):
    """The XDP program `fd` attached (generic mode) on `lab`'s dut, `frames` sent from src one
    by one: for each, the frames that arrived back at src while it was the last one sent.
    The attachment is removed before this returns (also when something fails)."""
    import socket

    from ..kernel.attach import XdpAttachment
    from ..lab.inject import Injector
    from ..sockets.capture import FRAME_MAX, PACKET_OUTGOING, SrcCapture
    back = []
    att = lab.own(XdpAttachment(lab.ns_dut, lab.if_dut, fd, "generic"))
    try:
        with SrcCapture(lab) as cap, Injector(lab) as inj:
            for data in frames:
                inj.send(data)
                got, deadline, quiet = [], time.monotonic() + BOUNCE_SETTLE_S, None
                while time.monotonic() < deadline:
                    try:
                        pkt, addr = cap.sock.recvfrom(FRAME_MAX)
                    except (BlockingIOError, InterruptedError, socket.timeout):
                        if quiet is not None and time.monotonic() - quiet > 0.05:
                            break
                        time.sleep(0.002)
                        continue
                    if addr[2] != PACKET_OUTGOING:
                        got.append(pkt)
                        quiet = time.monotonic()
                    elif pkt == data and quiet is None:
                        quiet = time.monotonic()     # ours is out: now wait for it back
                back.append(got)
    finally:
        att.close()
        if att in lab._owned:
            lab._owned.remove(att)
    return back


OPS = {"program": op_program, "program_lab": op_program_lab}

# the longest each op may take, in seconds (Limits.wall; default 30)
WALL = {"program": 240, "program_lab": 240}
