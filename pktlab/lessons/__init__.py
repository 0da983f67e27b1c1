"""lessons: what the lesson notebooks call, the one import of every notebook.

    from pktlab import lessons as pl

    pl.doctor_table()                     # what works here, and why
    frame = pl.frames("tcp-http.pcap")[3]
    pl.PacketView(frame)                  # layered hex view (pktlab/packet/views.py)
    lab = pl.open_lab(["xdp", "tc-ingress"])   # a live lab with hooks attached (or why not)
    lab.replay("vlan.pcap")               # the agreement table
    pl.PacketStepper("mixed.pcap", lab=lab)    # the widget
    pl.close_all()                        # the last cell of every notebook

This module is the room's front door, the `pl` API: it names what the room's modules hold.
Lives here:
    html         the stylesheet, tables, badges; HTML, NotHere (a reason, shown, and falsy), Text
    here         what works here: the doctor's report and tables, the hooks, in_lab_thread()
    pcaps        the capture directory, a capture's frames, what is in it
    casting      a header cast over a frame, field by field; the walker's layers
    source       the C the lessons show (bpf_snippets/)
    kernelviews  kprobe mechanisms, BTF offsets, xdp_md / __sk_buff, test runs of a capture
    results      ReplayView, BatchView, Belt: replays, batches and one packet at every hook;
                 Gaps: the time between hooks over many packets (LiveLab.gaps);
                 RequestBelt: one real request at every hook, the socket end included
    live         LiveLab, open_lab(), close_all(): a notebook's labs and widgets
    remote       RemoteLab: a learner's lab held by the workshop daemon (pktlabd) when the
                 kernel is not root; pl.open_lab chooses
    reaper       the process that removes a lab whose kernel died (python -m pktlab.lessons --reap)
    benchpanel   the bench in a notebook (lesson 06)
    sockend      lesson 08: LiveBelt, open_belt(): one real request through every hook, the
                 socket end included; the L7 peek, the filter's inheritance, the late insert
    socketviews  lesson 09: a learner's program through the verifier explainer, the
                 connection-tracking firewalls on real flows, the TIME_WAIT trap
    mptcpviews   lesson 10: a real MPTCP transfer under a path policy (MptcpView: subflows,
                 connections by token, the sock_ops timeline, the byte-order trap, RTOs, plots),
                 the policy switcher widget
    plots        conveyor belt, agreement bars (ax=None, return the figure)
    program      a learner's own program: pl.program(source, hook=...) -> Program (verdict,
                 .test_run, .attach, .replay, .maps live tables, .close); programviews shows it
    magic        the %%bpf HOOK [FUNC] cell magic, registered by this import inside IPython
    widgets      the packet stepper, the hook chooser
    exercises    one module per lesson (ex00 ... ex10) with its checkers; lesson 03's demo
    reset        a learner's copy of lessons back as shipped (`pktlab lessons reset`)

Nothing happens at import: the doctor, bcc, scapy, ipywidgets and matplotlib are loaded on
first use. The one thing the import does: inside a running IPython (a notebook's kernel) it
registers the %%bpf cell magic (magic.register(); outside IPython it does nothing). Names
from the rest of pktlab that lessons need are re-exported lazily (module ``__getattr__``), so
the notebook's first cell stays one import.

Labs opened here are owned three times over, because a notebook is not a ``with`` block: the
last cell's close_all(), an atexit handler, and a reaper process for a kernel that dies (live).

A hook the doctor could not prove here is never attached: the lab opens with the hooks that work,
and every table says why the others are missing. Set ``PKTLAB_PRETEND_MISSING=kprobe`` (or
``xdp,tc-ingress``, or ``all``) to see a lesson as a learner without those hooks would.

May import: doctor, replay, bench, sockets, mptcp, kernel, lab, packet and the base modules. The room's modules
never import this one (it imports them).
"""

# the front door: besides __all__, the names pl.* has always offered (pl.esc, pl.NotHere,
# pl.ReplayView...), imported from the modules that hold them
from .benchpanel import bench_chart, bench_panel, bench_text, run_bench
from .casting import cast_table, layers_table
from .exercises.ex03 import xdp_rewrite_demo
from .here import (BELT_ORDER, HOOKS, PRETEND_ENV, SOCKET_HOOKS, WIRE_ORDER, doctor,
                   doctor_table, hook_available, hooks_table, in_lab_thread, why_not)
from .html import CSS, HTML, NotHere, Text, badge, esc, table
from .kernelviews import (btf_members, btf_offset, btf_offsets_table, ctx_table, mechanism_table,
                          test_run_table)
from .live import LAB_PREFIX, LiveLab, close_all, register_widget
from .pcaps import (CAPTURE_ENV, capture_info, capture_path, captures, frames, instructor_capture,
                    pcaps_dir, read)
from .program import Program, last_program, program
from .remote import RemoteLab, open_lab
from .results import BatchView, Belt, Gaps, ReplayView, RequestBelt
from .sockend import LiveBelt, open_belt
from .mptcpviews import (MptcpView, PolicySwitcher, mptcp_available, mptcp_run,
                         policy_switcher, sockops_offsets)
from .socketviews import conntrack, timewait, verify
from .source import extract_function, show_source

__all__ = [
    "doctor", "doctor_table", "hook_available", "why_not", "hooks_table", "pcaps_dir",
    "capture_path", "captures", "read", "frames", "walk", "walk_record", "cast_table",
    "layers_table", "open_lab", "LiveLab", "close_all", "show_source", "mechanism_table",
    "btf_offsets_table", "btf_offset", "test_run_table", "capture_info", "ctx_table",
    "xdp_rewrite_demo", "instructor_capture", "bench_panel", "run_bench", "bench_chart",
    "bench_text", "HOOKS", "WIRE_ORDER", "LAB_PREFIX", "verify", "conntrack", "timewait",
    "mptcp_run", "policy_switcher", "mptcp_available", "MptcpView", "PolicySwitcher",
    "sockops_offsets",
    "open_belt", "LiveBelt", "RequestBelt", "BELT_ORDER", "SOCKET_HOOKS", "btf_members",
    "program", "Program", "last_program",
]

# Lazy re-exports: name -> (module, attribute), modules by the name lessons know them by
_MODULES = {"headers": "packet.headers", "record": "packet.record", "compare": "replay.compare",
            "bpf": "kernel.bpf", "btf": "kernel.btf", "exercises": "lessons.exercises",
            "plots": "lessons.plots", "widgets": "lessons.widgets", "views": "packet.views",
            "bench": "bench", "capture": "packet.capture", "walker": "packet.walker",
            "hooks": "kernel.hooks", "replay": "replay"}
_LAZY = {
    "PacketView": ("views", "PacketView"),
    "SideBySide": ("views", "SideBySide"),
    "side_by_side": ("views", "side_by_side"),
    "PacketStepper": ("widgets", "PacketStepper"),
    "HookChooser": ("widgets", "HookChooser"),
    "BenchPanel": ("bench", "BenchPanel"),
    "plot_bench": ("bench", "plot"),
    "conveyor_belt": ("plots", "conveyor_belt"),
    "belt_views": ("plots", "belt_views"),
    "agreement_plot": ("plots", "agreement"),
    "walk": ("views", "walk"),
    "walk_record": ("walker", "walk_record"),
}


def __getattr__(name):
    import importlib
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(f"pktlab.{_MODULES[mod]}"), attr)
    if name in _MODULES:
        return importlib.import_module(f"pktlab.{_MODULES[name]}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(__all__) | set(_LAZY) | set(_MODULES))


def _register_magic():
    # %%bpf in a notebook: only where IPython already runs (nothing is imported for it)
    from .magic import register
    register()


_register_magic()
