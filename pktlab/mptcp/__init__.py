"""mptcp: TCP-BPF sock_ops and MPTCP subflows under an eBPF path policy (lesson 10, `pktlab
mptcp`).

Lives here: the multi-path lab (paths: paths 2 and 3 as extra veth pairs of the lab, and
MPTCP's limits and endpoints; pm: net.mptcp.enabled and the in-kernel path manager through
netlink); the two ends of a real MPTCP transfer (ends: the child script, standard library
only; peers: the server in dut and the client in src, in the lab's cgroup, dying with their
owner); the sock-ops hook (sockops: bpf_snippets/sockops.bpf.c on the lab's cgroup, every
callback with its arguments, the MPTCP token and subflow id read at offsets from the running
kernel's BTF; timeline: the events grouped by connection and subflow, the byte-order trap,
the RTO series); the path policy (policy: bpf_snippets/mptcp_policy.bpf.c at dut ingress,
configured from a map, nonsense refused) and the path switch of the RTO demo (pathdrop:
bpf_snippets/mptcp_pathdrop.bpf.c); one transfer under a policy, measured (run); the plots
(plot); leased programs' rings (lease).

May import: kernel, lab, packet and the base modules.

    from pktlab.mptcp import run_mptcp, check, format_text
    res = run_mptcp(paths=2, policy="no-path=2")
    res.doc["subflows"]          # {"established": 1, "refused": 1}
"""

from .paths import PATHS, Paths, addrs, check_paths
from .plot import plot_bytes, plot_timeline
from .pm import enabled as mptcp_enabled
from .pm import why_not as why_mptcp_not
from .policy import PathPolicy, check_entry, parse as parse_policy, text_of as policy_text
from .run import MptcpRun, check, format_text, ok, prove_sockops, run_mptcp
from .sockops import SockOps, byte_order, peer_token
from .timeline import group, rto_series
from .timeline import text as timeline_text

# the room's front door: what code outside the room uses
__all__ = ["PATHS", "Paths", "addrs", "check_paths", "plot_bytes", "plot_timeline",
           "mptcp_enabled", "why_mptcp_not", "PathPolicy", "check_entry", "parse_policy",
           "policy_text", "MptcpRun", "check", "format_text", "ok", "prove_sockops",
           "run_mptcp", "SockOps", "byte_order", "peer_token", "group", "rto_series",
           "timeline_text"]
