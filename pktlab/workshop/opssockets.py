"""pktlabd's ops for the socket end (lessons 08 and 09: the belt, conntrack, the verifier's
reference tracking, TIME_WAIT, the firewall checker): each op takes (session, Args, blob) and
returns (a JSON-able result, a blob), like pktlab.workshop.ops. Registered in ops.OPS.
"""

OPS = {}

# the longest each op may take, in seconds (Limits.wall; default 30)
WALL = {}
