"""A path policy for MPTCP as an eBPF program configured from a map:
bpf_snippets/mptcp_policy.bpf.c at TC ingress of every dut path veth, refusing joins (MP_JOIN
SYNs) as the policy says.

    cfg = parse("no-path=2")                    # or "max-joins=1", "only-from=10.200.0.0/24",
                                                # several with commas; "none"
    with PathPolicy(lab, paths, cfg) as pol:
        ... a transfer ...
        pol.poll(); pol.joins                   # every MP_JOIN SYN: path, token, verdict, why
        pol.set(parse("max-joins=1"))           # a new policy, checked, into the map
        pol.bytes_per_path()

A policy is a dict {"no_path": [N...], "max_joins": K or None, "only_from": "A.B.C.D/L" or
None}; cfg_struct() turns it into the map's entry (struct pl_mp_cfg, mptcp_policy.h). What
makes no sense is refused before it reaches the map, with the reason and what to write
instead (check()): no subflow on path 1 (it carries the connection's first subflow, which is
not a join), on a path the lab does not have, a negative or absurd number of joins, a network
with host bits set or a mask that is not one.
"""

import ctypes
import functools
import ipaddress
import re
import socket
import struct

from .. import resources
from ..kernel import bpf
from ..kernel.attach import TcAttachment
from ..owned import Owned
from .lease import close_sink, open_sink

SOURCE = "mptcp_policy.bpf.c"
HEADER = "mptcp_policy.h"
FUNC = "pktlab_mptcp_policy"
WHY = {0: "allowed", 1: "no-path", 2: "max-joins", 3: "only-from"}
_DEFINE = re.compile(r"^[ \t]*#define[ \t]+PL_MP_(\w+)[ \t]+(0x[0-9a-fA-F]+|\d+)\b", re.M)


@functools.lru_cache(maxsize=None)
def defines():
    """Every numeric `#define PL_MP_*` of mptcp_policy.h, by name without the prefix."""
    with open(resources.snippet_path(HEADER)) as f:
        return {name: int(v, 0) for name, v in _DEFINE.findall(f.read())}


class Cfg(ctypes.Structure):
    """struct pl_mp_cfg."""
    _fields_ = [("no_path_mask", ctypes.c_uint32), ("max_joins", ctypes.c_uint32),
                ("from_net", ctypes.c_uint32), ("from_mask", ctypes.c_uint32)]


class JoinKey(ctypes.Structure):
    """struct pl_mp_join_key."""
    _fields_ = [("token", ctypes.c_uint32), ("saddr", ctypes.c_uint32),
                ("daddr", ctypes.c_uint32), ("sport", ctypes.c_uint16),
                ("dport", ctypes.c_uint16)]


class JoinEvent(ctypes.Structure):
    """struct pl_mp_join_ev."""
    _fields_ = [("ts_ns", ctypes.c_uint64), ("key", JoinKey), ("path", ctypes.c_uint32),
                ("verdict", ctypes.c_uint8), ("why", ctypes.c_uint8), ("again", ctypes.c_uint8),
                ("opt_len", ctypes.c_uint8), ("opt", ctypes.c_uint8 * 12),
                ("reserved", ctypes.c_uint32)]


class PathStat(ctypes.Structure):
    """struct pl_mp_path_stat."""
    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64),
                ("join_syns", ctypes.c_uint64), ("dropped", ctypes.c_uint64)]


NONE = {"no_path": [], "max_joins": None, "only_from": None}
SYNTAX = "none, no-path=N, max-joins=K, only-from=A.B.C.D/L, or several with commas"


def parse(text, paths=3):
    """A policy from its text (the CLI's --policy), checked for a lab of `paths` paths;
    ValueError saying what is wrong and what to write instead."""
    if isinstance(text, dict):
        return check(text, paths)
    text = str(text).strip()
    pol = {"no_path": [], "max_joins": None, "only_from": None}
    if text == "none":
        return pol
    for part in text.split(","):
        name, eq, val = part.strip().partition("=")
        if not eq or not val:
            raise ValueError(f"policy {text!r}: {part.strip()!r} is not a rule; use {SYNTAX}")
        if name == "no-path":
            pol["no_path"].append(_whole(val, f"policy {text!r}: no-path"))
        elif name == "max-joins":
            if pol["max_joins"] is not None:
                raise ValueError(f"policy {text!r}: max-joins given twice")
            pol["max_joins"] = _whole(val, f"policy {text!r}: max-joins")
        elif name == "only-from":
            pol["only_from"] = val
        else:
            raise ValueError(f"policy {text!r}: no rule {name!r}; use {SYNTAX}")
    return check(pol, paths)


def _joinable(paths):
    return "path 2" if paths == 2 else f"paths 2..{paths}"


def _whole(val, what):
    try:
        return int(val, 10)
    except ValueError:
        raise ValueError(f"{what}={val!r}: not a whole number") from None


def check(pol, paths=3):
    """The policy as given, if it makes sense for a lab of `paths` paths; else ValueError."""
    d = defines()
    for n in pol.get("no_path") or []:
        if n == 1:
            raise ValueError("no-path=1 makes no sense: path 1 carries the connection's first "
                             "subflow (MP_CAPABLE), which is not a join; the policy refuses "
                             f"joins, on {_joinable(paths)}")
        if not 2 <= n <= paths:
            raise ValueError(f"no-path={n}: this lab has paths 1..{paths}; a join can be "
                             f"refused on {_joinable(paths)}")
    k = pol.get("max_joins")
    if k is not None and not 0 <= k <= d["JOINS_MAX"]:
        raise ValueError(f"max-joins={k}: use 0..{d['JOINS_MAX']} (0: no join at all)")
    if pol.get("only_from"):
        try:
            ipaddress.IPv4Network(pol["only_from"], strict=True)
        except ValueError as e:
            raise ValueError(f"only-from={pol['only_from']}: {e}; write a network, e.g. "
                             "10.200.0.0/24") from None
    return {"no_path": sorted(set(pol.get("no_path") or [])), "max_joins": k,
            "only_from": pol.get("only_from") or None}


def text_of(pol):
    """The policy back as its text."""
    parts = [f"no-path={n}" for n in pol["no_path"]]
    if pol["max_joins"] is not None:
        parts.append(f"max-joins={pol['max_joins']}")
    if pol["only_from"]:
        parts.append(f"only-from={pol['only_from']}")
    return ",".join(parts) or "none"


def cfg_struct(pol):
    """The map entry (Cfg) of a checked policy."""
    mask = 0
    for n in pol["no_path"]:
        mask |= 1 << n
    net = m = 0
    if pol["only_from"]:
        nw = ipaddress.IPv4Network(pol["only_from"])
        net = struct.unpack("=I", nw.network_address.packed)[0]     # network order in memory
        m = struct.unpack("=I", nw.netmask.packed)[0]
    k = defines()["NO_LIMIT"] if pol["max_joins"] is None else pol["max_joins"]
    return Cfg(mask, k, net, m)


def check_entry(cfg, paths):
    """A raw map entry (Cfg) that makes no sense: the reason, or None. The program itself
    reads any entry safely; this is what pktlab refuses to write."""
    d = defines()
    if cfg.no_path_mask & 0b11:
        return ("no_path_mask has bit 0 or 1 set: there is no path 0, and path 1 carries the "
                "first subflow, which is not a join")
    if cfg.no_path_mask >> (paths + 1):
        return f"no_path_mask {cfg.no_path_mask:#x} names a path beyond {paths}"
    if cfg.max_joins != d["NO_LIMIT"] and cfg.max_joins > d["JOINS_MAX"]:
        return f"max_joins {cfg.max_joins}: above {d['JOINS_MAX']} and not NO_LIMIT"
    mask = struct.unpack(">I", struct.pack("=I", cfg.from_mask))[0]
    if mask and (mask | (mask - 1)) != 0xFFFFFFFF:
        return f"from_mask {socket.inet_ntoa(struct.pack('>I', mask))} is not a netmask"
    if cfg.from_net & ~cfg.from_mask & 0xFFFFFFFF:
        return "from_net has bits outside from_mask (host bits set)"
    return None


def _ip(v):
    return socket.inet_ntoa(struct.pack("=I", v))


def join_dict(e, path_of=None):
    k = e.key
    opt = bytes(e.opt[:e.opt_len])
    return {"t_ns": e.ts_ns, "path": e.path, "token": int.from_bytes(opt[4:8], "big"),
            "saddr": _ip(k.saddr), "daddr": _ip(k.daddr), "sport": socket.ntohs(k.sport),
            "dport": socket.ntohs(k.dport), "verdict": "drop" if e.verdict else "pass",
            "why": WHY.get(e.why, str(e.why)), "again": bool(e.again), "option": opt.hex(),
            "address_id": opt[3] if len(opt) > 3 else None}


class PathPolicy(Owned):
    """The policy program on every dut path veth's ingress (see the module docstring)."""

    def __init__(self, lab, paths, pol=None):
        self.lab, self.paths = lab, paths
        self.joins = []
        self.prog = bpf.compile_program(SOURCE, FUNC, "SCHED_CLS")
        self.attachments = []
        self._hold()
        try:
            for name in ("joins", "per_token", "paths", "stats"):
                self.prog.table(name).clear()
            self.set(parse(pol or "none", paths.n))
            open_sink(self.prog, "joins_seen",
                      lambda data: join_dict(ctypes.cast(data, ctypes.POINTER(JoinEvent)).contents),
                      self.joins)
            table = self.prog.table("paths")
            for p in paths.numbers():
                table[ctypes.c_uint32(paths.ifindex(p, "dut"))] = ctypes.c_uint32(p)
                self.attachments.append(TcAttachment(lab.ns_dut, paths.ifname(p, "dut"),
                                                     self.prog.fd, "ingress", name=FUNC))
        except BaseException:
            self.close()
            raise

    def set(self, pol):
        """Put policy `pol` (a checked dict, or text) in the map; joins already seen keep the
        verdict they got."""
        pol = parse(pol, self.paths.n)
        self.write(cfg_struct(pol))
        self.policy = pol

    def write(self, cfg):
        """Write a raw map entry: refused (ValueError, before the map) when it makes no sense."""
        why = check_entry(cfg, self.paths.n)
        if why:
            raise ValueError(f"policy map entry refused: {why}; write a policy with "
                             f"PathPolicy.set() ({SYNTAX})")
        self.prog.table("cfg")[ctypes.c_uint32(0)] = cfg

    def poll(self, timeout_ms=0):
        if not self.closed:
            self.prog.bpf.ring_buffer_poll(timeout_ms)

    def stats(self):
        """{path: {"packets", "bytes", "join_syns", "dropped"}} into dut, summed over CPUs."""
        out = {}
        for k, v in self.prog.table("stats").items():
            tot = {f: sum(getattr(x, f) for x in v)
                   for f in ("packets", "bytes", "join_syns", "dropped")}
            if 1 <= k.value <= self.paths.n:
                out[k.value] = tot
        return out

    def _release(self):
        errors = []
        while self.attachments:
            try:
                self.attachments.pop().close()
            except Exception as e:
                errors.append(e)
        try:
            self.prog.bpf.ring_buffer_poll(0)
            self.final_stats = self.stats()
        finally:
            close_sink(self.prog, "joins_seen")
            self.prog.table("paths").clear()
            bpf.release(self.prog)
        if errors:
            raise errors[0]


def refused_joins(joins):
    """{(token, saddr, sport, daddr, dport): [join SYN dicts]} of the joins refused (their
    first SYN's verdict was drop), each with its SYNs in order."""
    out = {}
    for j in joins:
        key = (j["token"], j["saddr"], j["sport"], j["daddr"], j["dport"])
        out.setdefault(key, []).append(j)
    return {k: v for k, v in out.items() if v[0]["verdict"] == "drop"}


def distinct_joins(joins):
    seen = {}
    for j in joins:
        seen.setdefault((j["token"], j["saddr"], j["sport"], j["daddr"], j["dport"]), j)
    return list(seen.values())

