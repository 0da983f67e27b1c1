"""lab: private network namespaces joined by a veth pair, and what runs inside them.

Lives here: network namespaces (netns) and netlink from any thread (nl), the lab itself with its
proof of ownership and stale-lab cleaning (labs), frame injection (inject), and child
processes that die with their owner (spawn).

May import: packet and the base modules. Never kernel: programs are attached to a lab by
pktlab.kernel, the lab only knows its interfaces.

    from pktlab.lab import Lab
    with Lab() as lab: ...
"""

from .labs import Lab, clean_stale, leftovers, list_labs  # noqa: F401  (the room's front door)
