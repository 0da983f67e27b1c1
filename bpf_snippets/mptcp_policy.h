/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * mptcp_policy.h - what mptcp_policy.bpf.c shares with Python (pktlab/mptcp/policy.py mirrors
 * these structures and reads every numeric `#define PL_MP_*` of this file by name).
 *
 * Rules, as for pktlab_record.h: fixed-width types, no implicit padding; addresses, ports and
 * the token in NETWORK byte order, as on the wire, everything else in host order.
 */
#ifndef PKTLAB_MPTCP_POLICY_H
#define PKTLAB_MPTCP_POLICY_H

#define PL_MP_PATHS_MAX 7          /* paths a lab may have: bits 1..7 of no_path_mask */
#define PL_MP_NO_LIMIT 0xffffffff  /* max_joins: no limit */
#define PL_MP_JOINS_MAX 1024       /* joins remembered (their first verdict) */

/* Verdicts and reasons of a join (struct pl_mp_join_ev). */
#define PL_MP_PASS 0
#define PL_MP_DROP 1
#define PL_MP_WHY_ALLOWED 0
#define PL_MP_WHY_NO_PATH 1        /* the join arrived on a path the policy closes */
#define PL_MP_WHY_MAX_JOINS 2      /* its connection (token) has had its K joins */
#define PL_MP_WHY_NOT_FROM 3       /* its source address is outside the allowed network */

/* The policy: cfg[0], written by Python (checked there: an entry that makes no sense is
 * refused before it reaches the map). */
struct pl_mp_cfg {
	__u32 no_path_mask;        /* bit p (2..PL_MP_PATHS_MAX): refuse every join on path p */
	__u32 max_joins;           /* at most this many distinct joins per token; PL_MP_NO_LIMIT */
	__u32 from_net;            /* NETWORK order: joins only from from_net/from_mask... */
	__u32 from_mask;           /* ...NETWORK order; 0: from anywhere */
};

/* One join: the token it asks for and its 4-tuple. Its retransmitted SYNs are the same join. */
struct pl_mp_join_key {
	__u32 token;               /* NETWORK order, as in the MP_JOIN option */
	__u32 saddr;               /* NETWORK order */
	__u32 daddr;               /* NETWORK order */
	__u16 sport;               /* NETWORK order */
	__u16 dport;               /* NETWORK order */
};

/* One MP_JOIN SYN seen at dut ingress (the ring `joins_seen`). */
struct pl_mp_join_ev {
	__u64 ts_ns;               /* bpf_ktime_get_ns() */
	struct pl_mp_join_key key;
	__u32 path;                /* the path it arrived on */
	__u8 verdict;              /* PL_MP_PASS / PL_MP_DROP */
	__u8 why;                  /* PL_MP_WHY_* (the first SYN's, for a retransmission) */
	__u8 again;                /* 1: a SYN of a join seen before (a retransmitted SYN) */
	__u8 opt_len;              /* bytes of the option in opt[] */
	__u8 opt[12];              /* the MP_JOIN option: kind 30, len 12, subtype<<4|B, address
	                              id, token (4), nonce (4) */
	__u32 reserved;            /* to a multiple of 8 bytes, spelled out */
};

/* Per path, what arrived at dut: every packet, and the IPv4 TCP ones (bytes: skb->len, the
 * frame with its Ethernet header). */
struct pl_mp_path_stat {
	__u64 packets;
	__u64 bytes;
	__u64 join_syns;           /* MP_JOIN SYNs (retransmissions included) */
	__u64 dropped;             /* of those, dropped by the policy */
};

#endif
