"""The bench's own small programs (the drop programs, the generator's, the empty programs of
each type): compiled once per process and kept, with their per-CPU counters read as sums.
"""

import threading

from ..kernel import bpf


_held = {}
_held_lock = threading.Lock()


def _held_program(key):
    """The bench's own small programs (the drop programs, the generator, the empty programs),
    leased once per process and kept: bpf.release() + a second lease would run Program.reset(),
    which expects the parse programs' maps (lost, seen) that these do not have. Their counters
    are only ever read as differences, so they need no reset."""
    with _held_lock:
        prog = _held.get(key)
        if prog is None or prog.closed:
            if key[0] == "empty":
                prog = bpf.empty_program(key[1])
            else:
                source, fn, ptype, cflags = key[1:]
                prog = bpf.compile_program(source, fn, ptype, cflags)
            _held[key] = prog
        return prog


DROP_XDP = ("snippet", "drop_xdp.bpf.c", "pktlab_drop_xdp", "XDP", ())
DROP_TC = ("snippet", "drop_tc.bpf.c", "pktlab_drop_tc", "SCHED_CLS", ())
GEN_XDP = ("snippet", "drop_xdp.bpf.c", "pktlab_drop_xdp", "XDP", ("-DPL_VERDICT=XDP_TX",))


def _percpu_count(prog, name="count"):
    return sum(sum(v) for _, v in prog.table(name).items())

