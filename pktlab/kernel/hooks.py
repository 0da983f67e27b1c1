"""The four hook points, attached to a lab as one owned resource.

    with Lab() as lab, HookSet(lab, ["xdp", "tc-ingress", "tc-egress", "kprobe"]) as hooks:
        ... inject frames ...
        records = hooks.drain()      # {"xdp": ndarray of records, ...}
        hooks.lost()                 # {"xdp": 0, ...}: records refused because a hook's ring was full

Where each hook sits (DESIGN.md, "Hooks"):
    tc-egress   src veth, clsact egress         the packet leaving
    xdp         dut veth, generic (or native)   the raw frame, before the stack
    tc-ingress  dut veth, clsact ingress        the skb, after the stack untagged VLANs
    kprobe      __netif_receive_skb_core        by kprobe, else fentry, else raw tracepoint
"""

import errno
import functools
import os

from . import bpf
from .attach import TcAttachment, TracingAttachment, XdpAttachment
from ..errors import BPFError, LabError, PktlabError
from ..owned import Owned

HOOKS = ("xdp", "tc-ingress", "tc-egress", "kprobe")
#: the order a packet meets them on its way from src to dut
WIRE_ORDER = ("tc-egress", "kprobe", "xdp", "tc-ingress")
MECH_ORDER = ("kprobe", "fentry", "raw_tracepoint")


def parse_hooks(spec):
    """'xdp,tc-ingress' or a list -> a validated tuple, in HOOKS order."""
    if spec is None or spec == "all":
        return HOOKS
    names = [h.strip() for h in spec.split(",")] if isinstance(spec, str) else list(spec)
    from .sockhooks import SOCKET_HOOKS
    sock = [h for h in names if h in SOCKET_HOOKS]
    if sock:
        one = len(sock) == 1
        raise ValueError(f"hooks {spec!r}: {', '.join(sock)} "
                         f"{'is a socket-end hook: it sees' if one else 'are socket-end hooks: they see'}"
                         " only packets delivered to a socket, and a capture replayed into a "
                         "lab has no handshake and no socket to deliver to. Follow real "
                         f"traffic through them with `pktlab belt --hooks {','.join(sock)}`; "
                         f"here choose from {', '.join(HOOKS)}")
    bad = [h for h in names if h not in HOOKS]
    if bad or not names:
        raise ValueError(f"hooks {spec!r}: choose from {', '.join(HOOKS)} (comma-separated)")
    return tuple(h for h in HOOKS if h in names)


def _kprobe_unavailable_reason():
    """Why kprobes cannot work here, from what the kernel exposes, or None."""
    pmu = os.path.exists("/sys/bus/event_source/devices/kprobe")
    events = any(os.path.exists(p) for p in ("/sys/kernel/tracing/kprobe_events",
                                              "/sys/kernel/debug/tracing/kprobe_events"))
    if not pmu and not events:
        return ("kernel built without CONFIG_KPROBES (no kprobe PMU in "
                "/sys/bus/event_source/devices, no kprobe_events in tracefs)")
    return None


@functools.lru_cache(maxsize=1)
def choose_kprobe_mechanism():
    """Try kprobe, fentry, raw tracepoint in order; returns (mech, {mech: why not})."""
    why = {}
    for mech in MECH_ORDER:
        if mech == "kprobe":
            reason = _kprobe_unavailable_reason()
            if reason:
                why[mech] = reason
                continue
        try:
            prog = bpf.load_kprobe(mech)
        except BPFError as e:
            why[mech] = _load_reason(mech, e)
            continue
        except PktlabError as e:
            why[mech] = str(e)
            continue
        try:
            att = TracingAttachment(prog, mech)
            att.close()
        except LabError as e:
            why[mech] = f"attach refused: {e}"
            continue
        finally:
            if not prog.closed:
                bpf.release(prog)
        return mech, why
    return None, why


def _load_reason(mech, err):
    text = f"{err} {err.log}"
    if "Permission denied" in text or "EPERM" in text or "Operation not permitted" in text:
        return f"{mech} program load refused with EPERM"
    if mech == "fentry" and ("Invalid argument" in text or "not supported" in text.lower()):
        return "fentry not supported by this kernel (no BPF trampoline)"
    first = str(err).splitlines()[0]
    return f"{mech} load failed: {first}"


class HookSet(Owned):
    """Load, configure and attach a set of hooks on a lab; detach everything on close().

    no_record: count statuses only. slots: records per CPU ring (bpf.SLOTS_DEFAULT).
    precise_ts: ns timestamps (bpf_ktime_get_ns, a helper call per record) instead of jiffies;
    for when the order and spacing of one packet's records is the point (lesson 05, --step).
    """

    def __init__(self, lab, hooks=HOOKS, xdp_mode="generic", no_record=False, slots=None,
                 precise_ts=False):
        self.lab = lab
        self.hooks = parse_hooks(hooks)
        self.xdp_mode = xdp_mode
        self.no_record = no_record
        self.slots = slots
        self.precise_ts = precise_ts
        self.programs = {}
        self.attachments = {}
        self.via = {}            # hook -> how it is attached, in words
        self.kprobe_mech = None
        self.kprobe_why = {}

    def open(self):
        if self._held:
            return self
        if self.lab.closed:
            raise LabError(errno.ESHUTDOWN, "attach hooks: the lab is closed; open it first "
                                            "(`with Lab() as lab:`)")
        self._hold()
        self.lab.own(self)
        try:
            for hook in self.hooks:
                self._attach(hook)
        except BaseException:
            self.close()
            raise
        return self

    def _attach(self, hook):
        lab = self.lab
        kw = {"no_record": self.no_record, "slots": self.slots, "precise_ts": self.precise_ts}
        if hook == "kprobe":
            mech, why = choose_kprobe_mechanism()
            self.kprobe_mech, self.kprobe_why = mech, why
            if mech is None:
                raise LabError(errno.EOPNOTSUPP, "kprobe hook: no mechanism works here: " +
                               "; ".join(f"{m}: {w}" for m, w in why.items()))
            prog = self.programs[hook] = bpf.load_kprobe(mech, **kw)
            cfg = prog.table("config")
            leaf = cfg.Leaf(lab.ifindex("dut"), lab.netns_inode("dut"))
            cfg[cfg.Key(0)] = leaf
            self.attachments[hook] = TracingAttachment(prog, mech)
            self.via[hook] = mech
            return
        prog = self.programs[hook] = bpf.load(hook, **kw)
        if hook == "xdp":
            self.attachments[hook] = XdpAttachment(lab.ns_dut, lab.if_dut, prog.fd, self.xdp_mode)
            self.via[hook] = f"xdp-{self.xdp_mode}"
        elif hook == "tc-ingress":
            self.attachments[hook] = TcAttachment(lab.ns_dut, lab.if_dut, prog.fd, "ingress")
            self.via[hook] = "clsact ingress"
        elif hook == "tc-egress":
            self.attachments[hook] = TcAttachment(lab.ns_src, lab.if_src, prog.fd, "egress")
            self.via[hook] = "clsact egress"

    def drain(self):
        """Every record waiting in each hook's record rings: {hook: numpy array}."""
        return {h: p.ring().read() for h, p in self.programs.items()}

    def records(self):
        """Like drain(), as Record objects (pktlab.packet.record): handy in a notebook, slower in bulk."""
        from ..packet.record import record_from_bytes
        return {h: [record_from_bytes(r.tobytes()) for r in arr]
                for h, arr in self.drain().items()}

    def lost(self):
        return {h: p.lost() for h, p in self.programs.items()}

    def seen(self):
        return {h: p.seen() for h, p in self.programs.items()}

    def _release(self):
        """Detach in reverse order, then give the programs back."""
        errors = []
        for hook in reversed(list(self.attachments)):
            try:
                self.attachments.pop(hook).close()
            except BaseException as e:      # an interrupt too: the others still go first
                errors.append(e)
        for hook in list(self.programs):
            prog = self.programs.pop(hook)
            if not prog.closed:
                if self.kprobe_mech == "fentry" and hook == "kprobe":
                    prog.close()
                else:
                    bpf.release(prog)
        if errors:
            raise errors[0]
