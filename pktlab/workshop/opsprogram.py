"""pktlabd's ops for a learner's own programs (lesson 02's %%bpf and pl.program, the test runs,
the exercise checkers and assignments): each op takes (session, Args, blob) and returns (a
JSON-able result, a blob), like pktlab.workshop.ops. Registered in ops.OPS.
"""

OPS = {}

# the longest each op may take, in seconds (Limits.wall; default 30)
WALL = {}
