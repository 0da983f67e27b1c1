/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * sockops.h - what sockops.bpf.c shares with Python (pktlab/mptcp/sockops.py mirrors struct
 * pl_sockops_ev field by field; tests/test_mptcp.py proves the two layouts match, by the
 * compiler's own layout of the struct).
 *
 * Rules, as for pktlab_record.h: fixed-width types, no implicit padding (the struct is a
 * multiple of 8 bytes, every field at its natural alignment). Byte order is written at each
 * field; where the kernel hands over an odd one (remote_port), it is kept as it came, raw,
 * because showing that trap is the point.
 */
#ifndef PKTLAB_SOCKOPS_H
#define PKTLAB_SOCKOPS_H

#define PL_SO_OPT_BYTES 40       /* the whole TCP option space: one MPTCP option fits */
#define PL_SO_MAX_OP 32          /* counters per callback, whatever a later kernel adds */

/* One record per sock_ops callback of a socket in the lab's cgroup. */
struct pl_sockops_ev {
	__u64 ts_ns;             /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 cookie;            /* bpf_get_socket_cookie(): one per TCP socket (= per subflow) */
	__u64 netns;             /* bpf_get_netns_cookie(): which side of the lab */
	__u64 remote_key;        /* mptcp_sock.remote_key (host order); the peer's token is the
	                            first 32 bits of sha256 of it (big endian) */
	__u32 op;                /* BPF_SOCK_OPS_*: the callback */
	__u32 args[4];           /* its arguments, as the kernel gave them */
	__u32 family;
	__u32 remote_ip4;        /* NETWORK order */
	__u32 local_ip4;         /* NETWORK order */
	__u32 remote_port;       /* the trap: the be16 port in the HIGH half of a u32 (so a naive
	                            ntohs() of it reads the low half, 0); raw as the kernel gave it */
	__u32 local_port;        /* HOST order: the plain number */
	__u32 is_fullsock;
	__u32 state;             /* TCP state (include/net/tcp_states.h) */
	__u32 srtt_us;           /* smoothed RTT in us, << 3 as the kernel keeps it */
	__u32 snd_cwnd;
	__u32 total_retrans;
	__u32 cb_flags;          /* bpf_sock_ops_cb_flags on entry, before this program set any */
	__s32 set_ret;           /* bpf_sock_ops_cb_flags_set()'s return, when called (else 0) */
	__u32 skb_len;
	__u32 skb_tcp_flags;
	__u32 token;             /* mptcp_sock.token: this side's token; 0 when not MPTCP */
	__u32 subflow_id;        /* mptcp_subflow_context.subflow_id: 1 the first, 2.. the joins */
	__s16 local_id;          /* mptcp_subflow_context.local_id: the address id (-1 not yet) */
	__u8 remote_id;          /* mptcp_subflow_context.remote_id */
	__u8 is_mptcp;           /* 1: bpf_skc_to_mptcp_sock() gave a connection */
	__s32 opt_len;           /* bpf_load_hdr_opt(kind 30): the option's length or -errno */
	__u8 opt[PL_SO_OPT_BYTES]; /* that MPTCP option, from the packet behind the callback */
	__u32 reserved;          /* to a multiple of 8 bytes, spelled out */
};

#endif
