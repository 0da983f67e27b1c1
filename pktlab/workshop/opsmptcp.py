"""pktlabd's ops for sock_ops and MPTCP (lesson 10), the bench (lesson 06) and what the doctor
and kprobe lesson ask of the kernel (lessons 00 and 04): each op takes (session, Args, blob) and
returns (a JSON-able result, a blob), like pktlab.workshop.ops. Registered in ops.OPS.
"""

OPS = {}

# the longest each op may take, in seconds (Limits.wall; default 30)
WALL = {}
