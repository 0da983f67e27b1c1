"""The four hooks at the socket end, attached to a lab as one owned resource.

    cg = lab.cgroup()
    with SocketHooks(lab, cg, SOCKET_HOOKS) as sh:       # before the server starts
        ... start the lab's server in cg ...
        sh.attach_socket(server.pid, server.fd)          # the socket filter, on its socket
        ... real traffic ...
        sh.drain()     # {"cgroup-ingress": ndarray of records, ...}; sh.lost()

Where each hook sits and what it sees (DESIGN.md, "Hooks"; its parse entered there):
    cgroup-ingress  CGROUP_SKB ingress on the lab's cgroup v2      from the IP header (net)
    socket-filter   SO_ATTACH_BPF on the server's socket           from the transport header (l4)
    sk-skb          SK_SKB stream verdict on a sockhash; SOCK_OPS  the payload only (payload)
                    on the cgroup puts each accepted socket there
    recv            syscall tracepoints + sock:sock_recv_length    the bytes the app got (payload)

recv is global, like the kprobe hook: it records only threads of the lab's dut namespace (its
netns cookie, tested in the kernel). The others see only the lab's own sockets by where they
attach. A hook's program is leased from the compile cache (pktlab.kernel.bpf) like the packet
hooks', except sk-skb's: its sockhash holds sockets, so its program and map are made for the
hook set and freed with it (map_ids() names the map, so a test can prove it is gone).
"""

import ctypes
import errno
import os

from . import bpf
from .sockattach import (CgroupAttachment, SockmapAttachment, SocketFilterAttachment,
                         TracepointAttachment, insert_socket)
from ..errors import EnvironmentProblem, LabError
from ..owned import Owned

SOCKET_HOOKS = ("cgroup-ingress", "socket-filter", "sk-skb", "recv")
#: hook -> (what it sees: the belt's "view", where the walk enters: walker.ENTRIES)
VIEWS = {"cgroup-ingress": ("l3", "net"), "socket-filter": ("l4", "l4"),
         "sk-skb": ("payload", "payload"), "recv": ("app", "payload")}
#: how each hook attaches, in words (the doctor's and the belt's "via")
VIA = {"cgroup-ingress": "cgroup_skb ingress on the lab's cgroup v2",
       "socket-filter": "SO_ATTACH_BPF on the server's socket (pidfd_getfd)",
       "sk-skb": "sk_skb stream verdict on a sockhash (sock_ops adds accepted sockets)",
       "recv": "tracepoints recvfrom/read/recvmsg + sock:sock_recv_length, lab netns only"}
#: hook -> (source, main function, bcc program type)
PROGRAMS = {
    "cgroup-ingress": ("cgroup_ingress.bpf.c", "pktlab_cgroup_ingress", "CGROUP_SKB"),
    "socket-filter": ("socket_filter.bpf.c", "pktlab_socket_filter", "SOCKET_FILTER"),
    "sk-skb": ("sk_skb.bpf.c", "pktlab_sk_skb", "SK_SKB"),
    "recv": ("recv.bpf.c", "pktlab_recv_exit", "TRACEPOINT"),
}
#: the recv hook's tracepoints: (category:event, function)
RECV_TRACEPOINTS = (
    ("syscalls:sys_enter_recvfrom", "pktlab_recv_enter_recvfrom"),
    ("syscalls:sys_enter_read", "pktlab_recv_enter_read"),
    ("syscalls:sys_enter_recvmsg", "pktlab_recv_enter_recvmsg"),
    ("sock:sock_recv_length", "pktlab_recv_sock"),
    ("syscalls:sys_exit_recvfrom", "pktlab_recv_exit"),
    ("syscalls:sys_exit_read", "pktlab_recv_exit"),
    ("syscalls:sys_exit_recvmsg", "pktlab_recv_exit"),
)
#: the tracepoint fields recv.bpf.c reads: define -> (category/event, field, size)
RECV_FIELDS = {
    "PL_TP_RECVFROM_UBUF": ("syscalls/sys_enter_recvfrom", "ubuf", 8),
    "PL_TP_RECVFROM_SIZE": ("syscalls/sys_enter_recvfrom", "size", 8),
    "PL_TP_READ_BUF": ("syscalls/sys_enter_read", "buf", 8),
    "PL_TP_READ_COUNT": ("syscalls/sys_enter_read", "count", 8),
    "PL_TP_RECVMSG_MSG": ("syscalls/sys_enter_recvmsg", "msg", 8),
    "PL_TP_SOCK_PROTOCOL": ("sock/sock_recv_length", "protocol", 2),
    "PL_TP_EXIT_RET": ("syscalls/sys_exit_recvfrom", "ret", 8),
}
TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


def parse_socket_hooks(spec):
    """'recv,sk-skb' or a list -> a tuple in SOCKET_HOOKS order; ValueError for others."""
    if spec is None or spec == "all":
        return SOCKET_HOOKS
    names = [h.strip() for h in spec.split(",")] if isinstance(spec, str) else list(spec)
    bad = [h for h in names if h not in SOCKET_HOOKS]
    if bad:
        raise ValueError(f"socket-end hooks {bad}: choose from {', '.join(SOCKET_HOOKS)}")
    return tuple(h for h in SOCKET_HOOKS if h in names)


def tracepoint_offsets():
    """{define: offset} of the fields recv.bpf.c reads, from the tracepoints' format files."""
    base = next((p for p in TRACEFS if os.path.isdir(os.path.join(p, "events"))), None)
    if base is None:
        raise EnvironmentProblem("tracefs is not mounted: the recv hook's tracepoints are "
                                 "there; mount -t tracefs tracefs /sys/kernel/tracing")
    formats, out = {}, {}
    for define, (event, name, size) in RECV_FIELDS.items():
        if event not in formats:
            try:
                with open(os.path.join(base, "events", event, "format")) as f:
                    formats[event] = f.read()
            except OSError as e:
                raise EnvironmentProblem(f"tracepoint {event}: {e.strerror}; this kernel lacks "
                                         "it (the recv hook needs syscall tracepoints, "
                                         "CONFIG_FTRACE_SYSCALLS)") from None
        out[define] = _field_offset(formats[event], event, name, size)
    return out


def _field_offset(fmt, event, name, size):
    for line in fmt.splitlines():
        line = line.strip()
        if not line.startswith("field:"):
            continue
        parts = dict(p.strip().split(":", 1) for p in line.rstrip(";").split(";") if ":" in p)
        decl = parts.get("field", "")
        if decl.replace("*", " ").split()[-1] == name:
            if int(parts["size"]) != size:
                raise EnvironmentProblem(f"tracepoint {event}: field {name} is {parts['size']} "
                                         f"bytes, the recv hook reads {size}")
            return int(parts["offset"])
    raise EnvironmentProblem(f"tracepoint {event}: no field {name}")


def load(hook, *, precise_ts=True, slots=None, text=None):
    """Load a socket-end hook's program (leased, but sk-skb's is its own: see the docstring).
    `text`: another version of its source (a lesson's variant), compiled and freed alike."""
    source, fn, ptype = PROGRAMS[hook]
    cflags = list(bpf.transport_cflags(slots=slots, precise_ts=precise_ts))
    if hook == "recv":
        from . import btf
        offs = {**btf.netns_offsets(), **tracepoint_offsets()}
        cflags += [f"-D{k}={v}" for k, v in sorted(offs.items())]
    if hook == "sk-skb":
        from .. import resources
        return bpf.Program(None if text else resources.snippet_path(source), fn, ptype, cflags,
                           text=text)
    if text is not None:
        return bpf.compile_program(None, fn, ptype, cflags, text=text)
    return bpf.compile_program(source, fn, ptype, cflags)


def map_id(fd):
    """The kernel's id of the map behind `fd` (from /proc/self/fdinfo)."""
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("map_id:"):
                return int(line.split()[1])
    raise LabError(errno.EBADF, f"fd {fd} is not a BPF map")


def map_exists(mid):
    """Does a BPF map with this id still exist?"""
    lib = bpf.bcc().libbcc.lib
    fd = lib.bpf_map_get_fd_by_id(ctypes.c_uint32(mid))
    if fd >= 0:
        os.close(fd)
        return True
    return False


class SocketHooks(Owned):
    """Load and attach socket-end hooks on a lab and its cgroup; detach everything on close().

    The socket filter is attached later, to a socket (attach_socket): the server must exist.
    """

    def __init__(self, lab, cgroup, hooks=SOCKET_HOOKS, precise_ts=True, slots=None,
                 texts=None):
        self.lab, self.cgroup = lab, cgroup
        self.texts = dict(texts or {})     # hook -> a variant of its source
        self.hooks = parse_socket_hooks(hooks)
        self.precise_ts, self.slots = precise_ts, slots
        self.programs = {}
        self.attachments = []
        self.via = {}
        self.where = {}          # hook -> where exactly it is attached (paths, pids)
        self.sockmap_fd = None
        self._map_ids = []

    def open(self):
        if self._held:
            return self
        if self.lab.closed:
            raise LabError(errno.ESHUTDOWN, "attach socket-end hooks: the lab is closed")
        self._hold()
        self.lab.own(self)
        try:
            for hook in self.hooks:
                self._attach(hook)
        except BaseException:
            self.close()
            raise
        return self

    def _own(self, att):
        self.attachments.append(att)
        return att

    def _attach(self, hook):
        prog = self.programs[hook] = load(hook, precise_ts=self.precise_ts, slots=self.slots,
                                          text=self.texts.get(hook))
        self.via[hook] = VIA[hook]
        if hook == "cgroup-ingress":
            self._own(CgroupAttachment(prog.fd, self.cgroup, "inet_ingress"))
            self.where[hook] = f"cgroup {self.cgroup.path}"
        elif hook == "socket-filter":
            self.where[hook] = "no socket yet (attach_socket)"
        elif hook == "sk-skb":
            b = bpf.bcc()
            lib = b.libbcc.lib
            self.sockmap_fd = lib.bpf_table_fd(prog.bpf.module, b"pl_socks")
            if self.sockmap_fd < 0:
                raise LabError(errno.ENOENT, "sk-skb: the sockhash pl_socks is missing")
            self._map_ids.append(map_id(self.sockmap_fd))
            ops = prog.bpf.load_func(b"pktlab_sockops", b.BPF.SOCK_OPS)
            self._own(SockmapAttachment(prog.fd, self.sockmap_fd))
            self._own(CgroupAttachment(ops.fd, self.cgroup, "sock_ops"))
            self.where[hook] = (f"sockhash map id {self._map_ids[-1]}; sock_ops on cgroup "
                                f"{self.cgroup.path}")
        elif hook == "recv":
            cookie = self.lab.state.cookie("dut")
            if not cookie:
                raise LabError(errno.ENOENT, f"lab {self.lab.name}: no netns cookie recorded "
                                             "for dut; the recv hook filters on it")
            cfg = prog.table("config")
            cfg[cfg.Key(0)] = cfg.Leaf(cookie)
            for tp, fn in RECV_TRACEPOINTS:
                self._own(TracepointAttachment(prog.bpf, tp, fn))
            self.where[hook] = f"threads of netns cookie {cookie} ({self.lab.ns_dut})"

    def attach_socket(self, pid, fd):
        """The socket filter on process `pid`'s socket `fd` (a listener: its accepted sockets
        inherit it). Returns the attachment (closed with the hook set)."""
        if "socket-filter" not in self.programs:
            return None
        att = self._own(SocketFilterAttachment(self.programs["socket-filter"].fd, pid, fd,
                                               self.lab.state.cookie("dut")))
        self.where["socket-filter"] = f"process {pid}'s socket, fd {fd}"
        return att

    def insert_socket(self, pid, fd):
        """Put process `pid`'s socket `fd` in the sockhash by hand (lesson 08). Its cookie."""
        if self.sockmap_fd is None:
            raise LabError(errno.ENOENT, "no sk-skb hook in this hook set")
        return insert_socket(self.sockmap_fd, pid, fd)

    def map_ids(self):
        """Ids of the maps this hook set made for itself (the sockhash): gone after close()."""
        return list(self._map_ids)

    def drain(self):
        return {h: p.ring().read() for h, p in self.programs.items()}

    def lost(self):
        return {h: p.lost() for h, p in self.programs.items()}

    def _release(self):
        errors = []
        while self.attachments:
            try:
                self.attachments.pop().close()
            except Exception as e:
                errors.append(e)
        for hook in list(self.programs):
            prog = self.programs.pop(hook)
            if hook == "sk-skb":
                prog.close()            # the sockhash goes with it
            elif not prog.closed:
                if hook == "recv":
                    cfg = prog.table("config")
                    cfg[cfg.Key(0)] = cfg.Leaf(0)
                bpf.release(prog)
        self.sockmap_fd = None
        if errors:
            raise errors[0]
