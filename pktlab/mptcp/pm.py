"""MPTCP in a lab's namespace: is it on (net.mptcp.enabled), and the in-kernel path manager's
limits and endpoints, set through netlink.

    require_mptcp(lab)                       # EnvironmentProblem with the fix when it is off
    set_limits(ns, subflows=1, add_addr_accepted=1)
    add_endpoint(ns, "10.201.0.2", ifindex, SIGNAL)
    show(ns)                                 # {"limits": {...}, "endpoints": [...]}
    flush_endpoints(ns)

net.mptcp.enabled is per network namespace (each starts with 1 on a kernel built with
CONFIG_MPTCP); with 0, socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP) fails with ENOPROTOOPT.
A kernel without CONFIG_MPTCP has no /proc/sys/net/mptcp at all.

Netlink: pyroute2 speaks the `mptcp_pm` generic netlink family (pyroute2.MPTCP). Its socket
has no netns= argument, so it is made, and used, inside the namespace (netns.enter), on
pktlab's netlink thread where asyncio would be in the way (nl.call). Where this pyroute2 has
no MPTCP, `ip mptcp` does the same. Two traps, handled here: the endpoint's interface index
(IF_IDX) is declared raw bytes in pyroute2 0.9, so it goes packed as a signed 32-bit number
(an int raises TypeError); and the limits count the *additional* subflows (N paths: N - 1).
"""

import errno
import os
import struct

from ..errors import EnvironmentProblem, LabError
from ..lab import netns, nl

SIGNAL, SUBFLOW, BACKUP, FULLMESH = 1, 2, 4, 8
FLAG_NAMES = {SIGNAL: "signal", SUBFLOW: "subflow", BACKUP: "backup", FULLMESH: "fullmesh"}
ENABLED = "net.mptcp.enabled"


def enabled(ns):
    """net.mptcp.enabled in namespace `ns`: 1, 0, or None when the kernel has no MPTCP."""
    try:
        with netns.enter(ns):
            with open("/proc/sys/net/mptcp/enabled") as f:
                return int(f.read().strip())
    except FileNotFoundError:
        return None


def enable_fix(ns):
    """The command that turns MPTCP on in namespace `ns`."""
    return f"ip netns exec {ns} sysctl -w {ENABLED}=1"


def why_not(lab):
    """Why MPTCP cannot run in `lab` (one line with the fix), or None when it can."""
    for side in ("src", "dut"):
        ns = lab.ns(side)
        on = enabled(ns)
        if on is None:
            return ("MPTCP: this kernel has no MPTCP (no /proc/sys/net/mptcp); it needs "
                    "CONFIG_MPTCP=y (every major distribution kernel since 5.6 has it)")
        if on != 1:
            return (f"MPTCP is disabled in lab {lab.name}'s {side} namespace ({ENABLED} = "
                    f"{on}): socket(IPPROTO_MPTCP) fails there with ENOPROTOOPT; turn it on "
                    f"with `{enable_fix(ns)}` (the setting is per namespace)")
    return None


def require_mptcp(lab):
    why = why_not(lab)
    if why:
        raise EnvironmentProblem(why)


def _pyroute2_mptcp():
    try:
        from pyroute2 import MPTCP
        return MPTCP
    except ImportError:
        return None


def _in_ns(ns, fn):
    """fn(MPTCP socket) inside namespace `ns`, on a thread where pyroute2 works."""
    def work():
        MPTCP = _pyroute2_mptcp()
        with netns.enter(ns):
            m = MPTCP()         # the generic netlink socket belongs to the namespace it is made in
            try:
                return fn(m)
            finally:
                m.close()
    return nl.call(work)


def _netlink_error(ns, what, e):
    code = getattr(e, "code", None) or errno.EIO
    return LabError(code, f"MPTCP {what} in namespace {ns}: {os.strerror(code)}; see "
                          f"`ip netns exec {ns} ip mptcp endpoint show`")


def set_limits(ns, subflows, add_addr_accepted):
    """The path manager's limits: additional subflows, and ADD_ADDRs accepted."""
    if _pyroute2_mptcp() is None:
        netns.run(ns, ["ip", "mptcp", "limits", "set", "subflows", str(subflows),
                       "add_addr_accepted", str(add_addr_accepted)])
        return
    try:
        _in_ns(ns, lambda m: m.limits("set", subflows=subflows,
                                      add_addr_accepted=add_addr_accepted))
    except Exception as e:
        if type(e).__name__ != "NetlinkError":
            raise
        raise _netlink_error(ns, "limits", e) from None


def add_endpoint(ns, addr, ifindex, flags):
    """An endpoint: `addr` on interface `ifindex`, with flags (SIGNAL: announce it to the peer;
    SUBFLOW: open a subflow from it)."""
    if _pyroute2_mptcp() is None:
        with nl.IPRoute(netns=ns) as ipr:
            dev = ipr.get_links(ifindex)[0].get_attr("IFLA_IFNAME")
        kinds = [n for f, n in FLAG_NAMES.items() if flags & f]
        netns.run(ns, ["ip", "mptcp", "endpoint", "add", addr, "dev", dev, *kinds])
        return
    # IF_IDX: raw bytes in pyroute2 0.9 (an int raises TypeError): a packed s32
    try:
        _in_ns(ns, lambda m: m.endpoint("add", addr=addr, flags=flags,
                                        if_idx=struct.pack("=i", ifindex)))
    except Exception as e:
        if type(e).__name__ != "NetlinkError":
            raise
        raise _netlink_error(ns, f"endpoint {addr}", e) from None


def flush_endpoints(ns):
    if _pyroute2_mptcp() is None:
        netns.run(ns, ["ip", "mptcp", "endpoint", "flush"])
        return
    _in_ns(ns, lambda m: m.endpoint("flush"))


def show(ns):
    """{"limits": {"subflows", "add_addr_accepted"}, "endpoints": [{"addr", "id", "flags",
    "ifindex"}]}: what the path manager of namespace `ns` holds."""
    if _pyroute2_mptcp() is None:
        out = netns.run(ns, ["ip", "-j", "mptcp", "endpoint", "show"]).stdout
        lim = netns.run(ns, ["ip", "-j", "mptcp", "limits", "show"]).stdout
        import json
        lim = json.loads(lim or "{}")
        return {"limits": {"subflows": lim.get("subflows"),
                           "add_addr_accepted": lim.get("add_addr_accepted")},
                "endpoints": [{"addr": e.get("address"), "id": e.get("id"),
                               "flags": e.get("flags", []), "ifindex": None}
                              for e in json.loads(out or "[]")]}

    def read(m):
        lim = m.limits("show")[0]
        eps = []
        for msg in m.endpoint("show"):
            a = msg.get_attr("MPTCP_PM_ATTR_ADDR")
            flags = a.get_attr("MPTCP_PM_ADDR_ATTR_FLAGS") or 0
            idx = a.get_attr("MPTCP_PM_ADDR_ATTR_IF_IDX")
            if isinstance(idx, str):            # 'hex' decoded: '02:00:00:00'
                idx = struct.unpack("=i", bytes.fromhex(idx.replace(":", "")))[0]
            eps.append({"addr": a.get_attr("MPTCP_PM_ADDR_ATTR_ADDR4"),
                        "id": a.get_attr("MPTCP_PM_ADDR_ATTR_ID"),
                        "flags": [n for f, n in FLAG_NAMES.items() if flags & f],
                        "ifindex": idx})
        return {"limits": {"subflows": lim.get_attr("MPTCP_PM_ATTR_SUBFLOWS"),
                           "add_addr_accepted": lim.get_attr("MPTCP_PM_ATTR_RCV_ADD_ADDRS")},
                "endpoints": eps}
    return _in_ns(ns, read)
