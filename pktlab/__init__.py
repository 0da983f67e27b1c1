"""pktlab: packet parsing, taken apart twice."""
