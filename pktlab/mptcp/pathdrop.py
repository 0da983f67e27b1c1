"""A path black-holed for a while: bpf_snippets/mptcp_pathdrop.bpf.c at TC ingress and egress
of every dut path veth, a switch in a map (ctl[0], bit p = path p is dark).

    with PathSwitch(lab, paths) as sw:
        sw.dark(1)                     # path 1's TCP packets are dropped, both ways
        sw.dark()                      # every path works again
        sw.marks                       # [(t_ns, mask)]: when the switch moved (CLOCK_MONOTONIC)
        sw.stats()                     # {(path, "in"|"out"): {"packets", "bytes", "drops"}}

What it shows (the RTO demo): the subflow on the dark path retransmits on its retransmission
timeout, each time after twice as long (the sock-ops hook's RTO_CB carries the count and the
timeout), while MPTCP moves the data to the paths that still work.
"""

import ctypes
import time

from ..kernel import bpf
from ..kernel.attach import TcAttachment
from ..owned import Owned

SOURCE = "mptcp_pathdrop.bpf.c"
FUNC_IN, FUNC_OUT = "pktlab_pathdrop_in", "pktlab_pathdrop_out"


class PathSwitch(Owned):
    """The switch on every dut path veth, both directions (see the module docstring)."""

    def __init__(self, lab, paths):
        self.lab, self.paths = lab, paths
        self.marks = []
        self.attachments = []
        self.prog = bpf.compile_program(SOURCE, FUNC_IN, "SCHED_CLS")
        self._hold()
        try:
            b = self.prog.bpf
            out_fd = b.load_func(FUNC_OUT.encode(), b.SCHED_CLS).fd   # shares every map
            for name in ("paths", "stats"):
                self.prog.table(name).clear()
            self._write(0)
            table = self.prog.table("paths")
            for p in paths.numbers():
                table[ctypes.c_uint32(paths.ifindex(p, "dut"))] = ctypes.c_uint32(p)
                for fd, direction, fn in ((self.prog.fd, "ingress", FUNC_IN),
                                          (out_fd, "egress", FUNC_OUT)):
                    self.attachments.append(TcAttachment(lab.ns_dut, paths.ifname(p, "dut"),
                                                         fd, direction, name=fn))
        except BaseException:
            self.close()
            raise

    def _write(self, mask):
        self.prog.table("ctl")[ctypes.c_uint32(0)] = ctypes.c_uint32(mask)

    def dark(self, *numbers):
        """Make these paths dark (none: every path works)."""
        mask = 0
        for p in numbers:
            if p not in self.paths.numbers():
                raise ValueError(f"path {p}: this lab has paths 1..{self.paths.n}")
            mask |= 1 << p
        self._write(mask)
        self.marks.append((time.monotonic_ns(), mask))

    def stats(self):
        out = {}
        for k, v in self.prog.table("stats").items():
            p, d = divmod(k.value, 2)
            tot = {f: sum(getattr(x, f) for x in v) for f in ("packets", "bytes", "drops")}
            if tot["packets"]:
                out[(p, "in" if d == 0 else "out")] = tot
        return out

    def _release(self):
        errors = []
        while self.attachments:
            try:
                self.attachments.pop().close()
            except Exception as e:
                errors.append(e)
        try:
            self.final_stats = self.stats()
            self._write(0)
            self.prog.table("paths").clear()
        finally:
            bpf.release(self.prog)
        if errors:
            raise errors[0]
