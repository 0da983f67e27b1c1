"""The sock-ops hook: bpf_snippets/sockops.bpf.c on the lab's cgroup v2, every callback of
every TCP socket there (MPTCP subflows included) as one event.

    with SockOps(lab, cgroup) as so:      # attach before the processes make their sockets
        ... traffic by processes in the cgroup ...
        so.poll()                         # read the ring (call it now and then: it is finite)
        so.events                         # [event dict] in arrival order
        so.counts()                       # {"RTT_CB": 412, ...}: exact, even if the ring filled
        so.lost()                         # events the ring had no room for

An event is a dict (to_dict): the callback (`op`) and its `args`, the socket (`cookie`, the
lab `side` from its netns cookie, `local`/`remote` as "ip:port", `state`), its RTT and
congestion window, and for an MPTCP subflow the connection's `token` (this side's), the
`peer_token` (sha256 of the peer's key), the `subflow_id` and address ids. Ports come two
ways on purpose: `local_port` is host order, `remote_port_raw` is what the kernel hands a
sock_ops program (the big-endian port in the high half of a u32), and `remote_port` is it
read right (bswap32; ntohs() of it gives 0: see byte_order()).

The kernel structures' offsets come from the running kernel's BTF (btf_defines(), -D at
compile time). The program is leased from the compile cache (pktlab.kernel.bpf): re-attaching
does not recompile; its ring's callback is opened once per program and delivers to whichever
SockOps holds it.
"""

import ctypes
import hashlib
import socket
import struct

from ..errors import EnvironmentProblem
from ..kernel import bpf
from ..kernel.sockattach import CgroupAttachment
from ..owned import Owned
from .lease import close_sink, open_sink

SOURCE = "sockops.bpf.c"
FUNC = "pktlab_sockops"
#: the callbacks by number (enum bpf_sock_ops_op, uapi/linux/bpf.h), without BPF_SOCK_OPS_
OPS = ("VOID", "TIMEOUT_INIT", "RWND_INIT", "TCP_CONNECT_CB", "ACTIVE_ESTABLISHED_CB",
       "PASSIVE_ESTABLISHED_CB", "NEEDS_ECN", "BASE_RTT", "RTO_CB", "RETRANS_CB", "STATE_CB",
       "TCP_LISTEN_CB", "RTT_CB", "PARSE_HDR_OPT_CB", "HDR_OPT_LEN_CB", "WRITE_HDR_OPT_CB",
       "TSTAMP_SCHED_CB", "TSTAMP_SND_SW_CB", "TSTAMP_SND_HW_CB", "TSTAMP_ACK_CB",
       "TSTAMP_SENDMSG_CB")
#: TCP states by number (include/net/tcp_states.h)
STATES = ("?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
          "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV",
          "BOUND_INACTIVE")
#: MPTCP option subtypes (RFC 8684), by number
MPTCP_SUBTYPES = ("MP_CAPABLE", "MP_JOIN", "DSS", "ADD_ADDR", "REMOVE_ADDR", "MP_PRIO",
                  "MP_FAIL", "MP_FASTCLOSE", "MP_TCPRST")
#: what the program reads in kernel structures: -D name -> (BTF member path, bytes read)
BTF_FIELDS = {
    "OFF_MSK_TOKEN": ("mptcp_sock.token", 4),
    "OFF_MSK_REMOTE_KEY": ("mptcp_sock.remote_key", 8),
    "OFF_ICSK_ULP_DATA": ("inet_connection_sock.icsk_ulp_data", 8),
    "OFF_SF_SUBFLOW_ID": ("mptcp_subflow_context.subflow_id", 4),
    "OFF_SF_LOCAL_ID": ("mptcp_subflow_context.local_id", 2),
    "OFF_SF_REMOTE_ID": ("mptcp_subflow_context.remote_id", 1),
}
OPT_BYTES = 40


class Event(ctypes.Structure):
    """struct pl_sockops_ev (bpf_snippets/sockops.h), field by field."""
    _fields_ = [("ts_ns", ctypes.c_uint64), ("cookie", ctypes.c_uint64),
                ("netns", ctypes.c_uint64), ("remote_key", ctypes.c_uint64),
                ("op", ctypes.c_uint32), ("args", ctypes.c_uint32 * 4),
                ("family", ctypes.c_uint32), ("remote_ip4", ctypes.c_uint32),
                ("local_ip4", ctypes.c_uint32), ("remote_port", ctypes.c_uint32),
                ("local_port", ctypes.c_uint32), ("is_fullsock", ctypes.c_uint32),
                ("state", ctypes.c_uint32), ("srtt_us", ctypes.c_uint32),
                ("snd_cwnd", ctypes.c_uint32), ("total_retrans", ctypes.c_uint32),
                ("cb_flags", ctypes.c_uint32), ("set_ret", ctypes.c_int32),
                ("skb_len", ctypes.c_uint32), ("skb_tcp_flags", ctypes.c_uint32),
                ("token", ctypes.c_uint32), ("subflow_id", ctypes.c_uint32),
                ("local_id", ctypes.c_int16), ("remote_id", ctypes.c_uint8),
                ("is_mptcp", ctypes.c_uint8), ("opt_len", ctypes.c_int32),
                ("opt", ctypes.c_uint8 * OPT_BYTES), ("reserved", ctypes.c_uint32)]


def btf_defines():
    """{-D name: offset} from the running kernel's BTF, checked for the sizes read."""
    from ..kernel.btf import vmlinux
    btf = vmlinux()
    out = {}
    for define, (path, size) in BTF_FIELDS.items():
        try:
            off, got = btf.offset(path)
        except KeyError as e:
            raise EnvironmentProblem(f"kernel BTF: {e}; the sock-ops hook reads MPTCP's "
                                     "connection and subflow structures (a kernel built with "
                                     "CONFIG_MPTCP=y has them)") from None
        if got != size:
            raise EnvironmentProblem(f"kernel BTF: {path} is {got} bytes, the sock-ops hook "
                                     f"reads {size}; please report this kernel")
        out[define] = off
    return out


def cflags():
    return tuple(f"-D{k}={v}" for k, v in sorted(btf_defines().items()))


def load():
    """Lease the sock-ops program (compiled once per process; bpf.release gives it back)."""
    return bpf.compile_program(SOURCE, FUNC, "SOCK_OPS", cflags())


def peer_token(remote_key):
    """The peer's token: the first 32 bits (big endian) of sha256 of its key (as be64)."""
    return int.from_bytes(hashlib.sha256(remote_key.to_bytes(8, "big")).digest()[:4], "big")


def bswap32(v):
    return struct.unpack("<I", struct.pack(">I", v))[0]


def byte_order(raw_remote_port, local_port):
    """The byte-order trap, spelled out: what a sock_ops program gets, and three readings."""
    return {"remote_port_raw": f"{raw_remote_port:#010x}",
            "ntohs(raw)": socket.ntohs(raw_remote_port & 0xFFFF),
            "ntohs(raw >> 16)": socket.ntohs(raw_remote_port >> 16),
            "bswap32(raw)": bswap32(raw_remote_port),
            "local_port": local_port}


def _ip(v):
    return socket.inet_ntoa(struct.pack("=I", v))


def to_dict(e, side_of=None):
    """One event (an Event) as a dict (see the module docstring)."""
    op = OPS[e.op] if e.op < len(OPS) else str(e.op)
    d = {"t_ns": e.ts_ns, "cookie": e.cookie,
         "side": (side_of or {}).get(e.netns, f"netns {e.netns:#x}"),
         "op": op, "args": list(e.args), "family": e.family,
         "local": f"{_ip(e.local_ip4)}:{e.local_port}",
         "remote": f"{_ip(e.remote_ip4)}:{bswap32(e.remote_port)}",
         "local_port": e.local_port, "remote_port_raw": e.remote_port,
         "remote_port": bswap32(e.remote_port), "fullsock": bool(e.is_fullsock),
         "state": STATES[e.state] if e.state < len(STATES) else str(e.state),
         "srtt_us": e.srtt_us >> 3, "cwnd": e.snd_cwnd, "total_retrans": e.total_retrans,
         "cb_flags": e.cb_flags, "set_ret": e.set_ret, "skb_len": e.skb_len,
         "mptcp": bool(e.is_mptcp)}
    if e.is_mptcp:
        d.update(token=e.token, peer_token=peer_token(e.remote_key) if e.remote_key else 0,
                 subflow_id=e.subflow_id, local_id=e.local_id, remote_id=e.remote_id)
    if e.opt_len > 2:
        o = bytes(e.opt[:min(e.opt_len, OPT_BYTES)])
        sub = o[2] >> 4
        d["mptcp_option"] = {"subtype": MPTCP_SUBTYPES[sub] if sub < len(MPTCP_SUBTYPES)
                             else sub, "len": e.opt_len, "hex": o.hex()}
    return d


class SockOps(Owned):
    """The sock-ops program attached to `cgroup` (the lab's), its events read into Python."""

    def __init__(self, lab, cgroup):
        self.lab, self.cgroup = lab, cgroup
        self.events = []
        self.side_of = {lab.state.cookie(s): s for s in ("src", "dut")}
        self.prog = load()
        self._hold()
        try:
            self._open_ring()
            self._base_counts, self._base_lost = self._read_counts(), self._read_lost()
            self.attachment = CgroupAttachment(self.prog.fd, cgroup, "sock_ops")
        except BaseException:
            self.close()
            raise

    def _open_ring(self):
        sides = self.side_of
        open_sink(self.prog, "events",
                  lambda data: to_dict(ctypes.cast(data, ctypes.POINTER(Event)).contents, sides),
                  self.events)

    def poll(self, timeout_ms=0):
        """Read what the ring holds into self.events; returns how many came."""
        if self.closed:
            return 0
        n = len(self.events)
        self.prog.bpf.ring_buffer_poll(timeout_ms)
        return len(self.events) - n

    def _read_counts(self):
        return {k.value: int(sum(v)) for k, v in self.prog.table("counts").items()}

    def _read_lost(self):
        return int(sum(self.prog.table("lost")[ctypes.c_uint32(0)]))

    def counts(self):
        """{callback name: how many}, exact (per-CPU counters, not the ring)."""
        now = self._read_counts() if not self.closed else self._final_counts
        out = {}
        for k, v in sorted(now.items()):
            n = v - self._base_counts.get(k, 0)
            if n:
                out[OPS[k] if k < len(OPS) else str(k)] = n
        return out

    def lost(self):
        if self.closed:
            return self._final_lost
        return self._read_lost() - self._base_lost

    def _release(self):
        try:
            if getattr(self, "attachment", None) is not None:
                self.attachment.close()
        finally:
            prog, self.prog = self.prog, None
            try:
                prog.bpf.ring_buffer_poll(0)
                self._final_counts, self._final_lost = {}, 0
                if hasattr(self, "_base_counts"):
                    self._final_counts = {k.value: int(sum(v))
                                          for k, v in prog.table("counts").items()}
                    self._final_lost = int(sum(prog.table("lost")[ctypes.c_uint32(0)]))
            finally:
                close_sink(prog, "events")
                bpf.release(prog)
