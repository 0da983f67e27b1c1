"""lab: private network namespaces joined by a veth pair, and what runs inside them.

Lives here: network namespaces (netns) and netlink from any thread (nl); the lab itself (labs),
the proof that pktlab made it (state), its removal and the cleaning of stale labs (removal), the
attachment guard (guard); the lab's own cgroup v2, proven like its namespaces (cgroup); more
veth pairs between its namespaces, recorded like it (veths: the MPTCP paths); frame injection
(inject); child processes that die with their owner (spawn).

May import: packet and the base modules. Never kernel: programs are attached to a lab by
pktlab.kernel, the lab only knows its interfaces.

    from pktlab.lab import Lab
    with Lab() as lab: ...
"""

# the room's front door: what code outside the room uses
from .cgroup import (LabCgroup, cgroup2_mount, require_cgroup2,  # noqa: F401
                     v1_net_controllers)
from .guard import HOST_INTERFACES_REFUSED, check_interface  # noqa: F401
from .labs import DUT_IP4, DUT_IP6, SRC_IP4, SRC_IP6, Lab  # noqa: F401
from .removal import (clean_labs, clean_stale, describe_labs, lab_processes,  # noqa: F401
                      remove_lab)
from .veths import ExtraVeth  # noqa: F401
from .state import (DEFAULT_PREFIX, PREFIX_RE, STATE_DIR, LabState,  # noqa: F401
                    foreign_namespaces, is_stale, leftovers, list_labs)
