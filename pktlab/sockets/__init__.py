"""sockets: the socket end of the packet's road: firewalls that ask the socket table, and
real TCP flows to test them with.

Lives here: the connection-tracking firewall of lesson 09 and `pktlab conntrack` (conntrack:
the TC program bpf_snippets/conntrack.bpf.c and its policies, attached on both sides of a
lab, its counters read back; experiment: every policy side by side, a fresh lab each, and the
report; timewait: the TIME_WAIT trap of bpf_sk_lookup_tcp and its fix; plot: the bars;
leftovers: what a run must not leave behind, looked for), and the traffic they are measured
with (flows: an echo server in dut and a client in src making many concurrent flows, child
processes that die with their owner).

May import: kernel, lab, packet and the base modules.

    from pktlab.sockets import run_conntrack, timewait_trap, plot_conntrack
"""

from .conntrack import ConntrackFirewall, policies
from .experiment import VARIANTS
from .experiment import check as check_conntrack
from .experiment import format_text as format_conntrack
from .experiment import run as run_conntrack
from .flows import EchoServer, run_client
from .plot import plot_conntrack
from .timewait import close_through, format_timewait, timewait_trap

# the room's front door: what code outside the room uses
__all__ = ["ConntrackFirewall", "EchoServer", "VARIANTS", "check_conntrack", "close_through",
           "format_conntrack", "format_timewait", "plot_conntrack", "policies", "run_client",
           "run_conntrack", "timewait_trap"]
