"""Lesson 08's answers (the checkers are in pktlab/lessons/exercises/ex08.py)."""

#: 1. the order one request meets the hooks: src's wire, dut's receive path, then the socket
ORDER = ["tc-egress", "kprobe", "xdp", "tc-ingress", "cgroup-ingress", "socket-filter",
         "sk-skb", "recv"]

#: 2. a field from the IP header: cgroup-ingress sees it, socket-filter starts after it
#: (also: src_ip, dst_ip, ip_tot_len, frag_id, ip_version, ip4_hdr_len, flags, eth_proto)
FIELD = "ttl"

#: 3. the end of the handshake, in softirq, before accept() returns: no read can come first.
#: TCP_CONNECT_CB and ACTIVE_ESTABLISHED_CB are the client's side (never the server's socket);
#: TCP_LISTEN_CB puts the *listener* in the map, and the socket accept() returns is not in it
#: (and the server's reads then hang)
OP = "BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB"
