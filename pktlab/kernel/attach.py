"""Attachments: each one removes exactly what it attached, in the mode it attached with.

    with XdpAttachment(lab.ns_dut, lab.if_dut, prog.fd, mode="generic"): ...
    with TcAttachment(lab.ns_dut, lab.if_dut, prog.fd, "ingress"): ...
    with TracingAttachment(prog, "raw_tracepoint"): ...

close() is safe to call twice (pktlab.owned.Owned, as libbpf-bootstrap's hook_created).
Before attaching, lab.check_interface(ifname, ns=ns) refuses an interface that is not a lab's
own, in that lab's namespace as pktlab made it (its netns cookie), unless allow_host=True.
The clsact qdisc is removed only when this process created it and no filter of ours is left on
it; a clsact someone else made stays.
"""

import errno
import os
import threading

from ..errors import LabError
from ..owned import Owned
from ..lab import check_interface

XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_MODES = {"generic": XDP_FLAGS_SKB_MODE, "native": XDP_FLAGS_DRV_MODE}

TC_PARENT = {"ingress": "ffff:fff2", "egress": "ffff:fff3"}
TC_PRIO = 0xC0DE & 0xFFFF  # a priority of our own, so we delete only our filter

_clsact_lock = threading.Lock()
_clsact_users = {}   # (ns, ifname) -> [set of our filter priorities, created_by_us]


def _netlink(ns):
    from ..lab.nl import IPRoute
    return IPRoute(netns=ns)


def _ifindex(ipr, ns, ifname):
    idx = ipr.link_lookup(ifname=ifname)
    if not idx:
        raise LabError(errno.ENODEV, f"interface {ifname} not found in namespace {ns}")
    return idx[0]


class Attachment(Owned):
    """Something attached (pktlab.owned.Owned): close() detaches it, once."""
    description = "attachment"

    @property
    def attached(self):
        return not self.closed

    def __repr__(self):
        return f"<{self.description}{'' if self.attached else ' (detached)'}>"


class XdpAttachment(Attachment):
    def __init__(self, ns, ifname, prog_fd, mode="generic", allow_host=False):
        from pyroute2.netlink.exceptions import NetlinkError
        if mode not in XDP_MODES:
            raise ValueError(f"XDP mode {mode!r}: use 'generic' or 'native'")
        check_interface(ifname, allow_host=allow_host, ns=ns)
        self.ns, self.ifname, self.mode = ns, ifname, mode
        self.flags = XDP_MODES[mode] | XDP_FLAGS_UPDATE_IF_NOEXIST
        self.description = f"XDP ({mode}) on {ns}/{ifname}"
        try:
            with _netlink(ns) as ipr:
                idx = _ifindex(ipr, ns, ifname)
                ipr.link("set", index=idx, xdp={"attrs": [("IFLA_XDP_FD", prog_fd),
                                                          ("IFLA_XDP_FLAGS", self.flags)]})
        except NetlinkError as e:
            hint = ("another XDP program is attached there; run `pktlab lab clean`"
                    if e.code == errno.EBUSY else
                    "the driver has no native XDP; use mode='generic'"
                    if e.code == errno.EOPNOTSUPP else "see `pktlab doctor`")
            raise LabError(e.code, f"attach XDP ({mode}) to {ifname}: {e.args[1] if len(e.args) > 1 else e}; {hint}") from e
        self._hold()

    def _release(self):
        from pyroute2.netlink.exceptions import NetlinkError
        from ..lab import netns
        if not netns.exists(self.ns):
            return
        try:
            with _netlink(self.ns) as ipr:
                idx = ipr.link_lookup(ifname=self.ifname)
                if idx:
                    # detach in the mode we attached with (fd -1), else the kernel says EINVAL
                    ipr.link("set", index=idx[0], xdp={"attrs": [
                        ("IFLA_XDP_FD", -1), ("IFLA_XDP_FLAGS", XDP_MODES[self.mode])]})
        except NetlinkError as e:
            if e.code != errno.ENODEV:
                raise LabError(e.code, f"detach {self.description}: {e}") from e


class TcAttachment(Attachment):
    """A cls_bpf direct-action filter on the clsact qdisc (ingress or egress)."""

    def __init__(self, ns, ifname, prog_fd, direction, name="pktlab", allow_host=False):
        from pyroute2.netlink.exceptions import NetlinkError
        if direction not in TC_PARENT:
            raise ValueError(f"TC direction {direction!r}: use 'ingress' or 'egress'")
        check_interface(ifname, allow_host=allow_host, ns=ns)
        self.ns, self.ifname, self.direction = ns, ifname, direction
        self.description = f"TC {direction} filter on {ns}/{ifname}"
        self._key = (ns, ifname)
        with _clsact_lock:
            try:
                with _netlink(ns) as ipr:
                    idx = _ifindex(ipr, ns, ifname)
                    entry = _clsact_users.get(self._key)
                    if entry is None:
                        created = False
                        try:
                            ipr.tc("add", "clsact", idx)
                            created = True
                        except NetlinkError as e:
                            if e.code != errno.EEXIST:
                                raise
                        entry = _clsact_users[self._key] = [set(), created]
                    # a free priority of our own, so that several pktlab filters on one
                    # interface never replace one another
                    self.prio = next(p for p in range(TC_PRIO, TC_PRIO + 1000) if p not in entry[0])
                    ipr.tc("add-filter", "bpf", idx, ":1", fd=prog_fd, name=name,
                           parent=TC_PARENT[direction], classid=1, direct_action=True,
                           prio=self.prio)
                    entry[0].add(self.prio)
            except NetlinkError as e:
                if self._key in _clsact_users and not _clsact_users[self._key][0]:
                    self._drop_qdisc_locked()
                raise LabError(e.code, f"attach {self.description}: {e}") from e
        self._hold()

    def _drop_qdisc_locked(self):
        from pyroute2.netlink.exceptions import NetlinkError
        from ..lab import netns
        entry = _clsact_users.pop(self._key, None)
        if not entry or not entry[1] or not netns.exists(self.ns):
            return
        try:
            with _netlink(self.ns) as ipr:
                idx = ipr.link_lookup(ifname=self.ifname)
                if idx:
                    ipr.tc("del", "clsact", idx[0])
        except NetlinkError as e:
            if e.code not in (errno.ENODEV, errno.ENOENT, errno.EINVAL):
                raise

    def _release(self):
        from pyroute2.netlink.exceptions import NetlinkError
        from ..lab import netns
        with _clsact_lock:
            entry = _clsact_users.get(self._key)
            try:
                if netns.exists(self.ns):
                    with _netlink(self.ns) as ipr:
                        idx = ipr.link_lookup(ifname=self.ifname)
                        if idx:
                            ipr.tc("del-filter", "bpf", idx[0], ":1",
                                   parent=TC_PARENT[self.direction], prio=self.prio)
            except NetlinkError as e:
                if e.code not in (errno.ENODEV, errno.ENOENT, errno.EINVAL):
                    raise LabError(e.code, f"detach {self.description}: {e}") from e
            finally:
                if entry is not None:
                    entry[0].discard(self.prio)
                    if not entry[0]:
                        self._drop_qdisc_locked()


class TracingAttachment(Attachment):
    """The kprobe hook's program on the receive path, by kprobe, fentry or raw tracepoint."""

    def __init__(self, prog, mech):
        from .bpf import KPROBE_FUNCTION, KPROBE_TRACEPOINT
        self.prog, self.mech = prog, mech
        b = prog.bpf
        fn = prog.fn_name.encode()
        try:
            if mech == "kprobe":
                b.attach_kprobe(event=KPROBE_FUNCTION.encode(), fn_name=fn)
                self.description = f"kprobe on {KPROBE_FUNCTION}"
            elif mech == "raw_tracepoint":
                b.attach_raw_tracepoint(tp=KPROBE_TRACEPOINT.encode(), fn_name=fn)
                self.description = f"raw tracepoint {KPROBE_TRACEPOINT}"
            elif mech == "fentry":
                # bcc attaches kfunc__ programs itself when it loads them
                self.description = f"fentry on {KPROBE_FUNCTION}"
            else:
                raise ValueError(f"tracing mechanism {mech!r}: kprobe, fentry or raw_tracepoint")
        except Exception as e:
            if isinstance(e, ValueError):
                raise
            raise LabError(errno.EINVAL, f"attach the kprobe hook by {mech}: {e}") from e
        self._hold()

    def _release(self):
        from .bpf import KPROBE_FUNCTION, KPROBE_TRACEPOINT
        b = self.prog.bpf
        if self.mech == "kprobe":
            b.detach_kprobe(event=KPROBE_FUNCTION.encode())
        elif self.mech == "raw_tracepoint":
            # bcc's detach_raw_tracepoint closes the fd, then forgets it: a Ctrl-C between the
            # two left it remembered, and bcc's atexit cleanup closed it again ("Exception
            # ignored ... os.close: Bad file descriptor" after the run's one line, or a reused
            # fd number closed). Forgotten first, then closed: at worst the fd waits for exit
            fd = b.raw_tracepoint_fds.pop(KPROBE_TRACEPOINT.encode(), None)
            if fd is not None:
                os.close(fd)
        elif self.mech == "fentry":
            # the link lives as long as the program object: drop it with the program
            self.prog.close()
