"""sockets: the socket end of the packet's road: firewalls that ask the socket table, real
TCP flows to test them with, and the belt that follows one request to the application.

Lives here: the connection-tracking firewall of lesson 09 and `pktlab conntrack` (conntrack:
the TC program bpf_snippets/conntrack.bpf.c and its policies, attached on both sides of a
lab, its counters read back; experiment: every policy side by side, a fresh lab each, and the
report; timewait: the TIME_WAIT trap of bpf_sk_lookup_tcp and its fix; plot: the bars;
leftovers: what a run must not leave behind, looked for), and the traffic they are measured
with (flows: an echo server in dut and a client in src making many concurrent flows, child
processes that die with their owner).

Also the whole belt of lesson 08 and `pktlab belt` (belt: one real request through every hook,
tc-egress to recv, in the kernel's order, with ns timestamps; expect: each hook's expected
record, computed by the walker at the hook's entry from the frame captured leaving src, and
the verdicts; apps: the real servers (http, tcp echo, udp echo) in dut in the lab's cgroup and
the real client in src, as children that die with their owner, running children.py, plain
Python; capture: the AF_PACKET capture of what src sends).

May import: kernel, lab, packet and the base modules.

    from pktlab.sockets import run_conntrack, timewait_trap, plot_conntrack
    from pktlab.sockets import Belt, run_belt, format_belt
"""

from .belt import KERNEL_ORDER, Belt, format_belt, run_belt
from .conntrack import ConntrackFirewall, policies
from .experiment import VARIANTS
from .experiment import check as check_conntrack
from .experiment import format_text as format_conntrack
from .experiment import run as run_conntrack
from .flows import EchoServer, run_client
from .plot import plot_conntrack
from .timewait import close_through, format_timewait, timewait_trap

# the room's front door: what code outside the room uses
__all__ = ["Belt", "KERNEL_ORDER", "format_belt", "run_belt", "ConntrackFirewall", "EchoServer", "VARIANTS", "check_conntrack", "close_through",
           "format_conntrack", "format_timewait", "plot_conntrack", "policies", "run_client",
           "run_conntrack", "timewait_trap"]
