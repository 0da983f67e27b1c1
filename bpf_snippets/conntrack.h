/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * conntrack.h - what conntrack.bpf.c shares with Python (pktlab/sockets/conntrack.py reads
 * every numeric `#define CT_*` of this file by name: the numbers are declared once, here).
 *
 * Rules, as for pktlab_record.h: fixed-width types, no implicit padding, numbers in HOST byte
 * order unless a field says otherwise.
 */
#ifndef PKTLAB_CONNTRACK_H
#define PKTLAB_CONNTRACK_H

/* The policy, config[CT_CFG_POLICY]: Python sets it before traffic flows. */
#define CT_POLICY_NONE 0        /* count only, pass everything */
#define CT_POLICY_HASH 1        /* 5-tuple map (BPF_MAP_TYPE_HASH): a full map refuses new flows */
#define CT_POLICY_LRU_HASH 2    /* 5-tuple map (BPF_MAP_TYPE_LRU_HASH): a full map evicts */
#define CT_POLICY_SK_LOOKUP 3   /* the socket table: bpf_sk_lookup_tcp (full sockets only) */
#define CT_POLICY_SKC_LOOKUP 4  /* the socket table: bpf_skc_lookup_tcp (time-wait and request
                                   sockets too) */
#define CT_CFG_POLICY 0
#define CT_NCFG 1

/* The side a program guards: its counters are counters[side * CT_NCOUNTERS + CT_C_*]. */
#define CT_SIDE_SERVER 0        /* ingress of the server's interface: TCP a socket would take */
#define CT_SIDE_CLIENT 1        /* ingress of the client's interface: replies only */
#define CT_NSIDES 2

/* Counters, per side (packets unless the name says flows). */
#define CT_C_TCP 0              /* IPv4 TCP packets seen */
#define CT_C_PASSED 1
#define CT_C_DROPPED 2
#define CT_C_INSERTED 3         /* SYNs whose 5-tuple went into the map */
#define CT_C_INSERT_FAILED 4    /* SYNs whose insert failed (the errno in insert_errno) */
#define CT_C_MISSED 5           /* non-SYN packets of a flow whose entry is gone */
#define CT_C_EVICTED 6          /* FLOWS: distinct flows counted in CT_C_MISSED */
#define CT_C_EVICTED_UNCOUNTED 7 /* misses of flows the `evicted` set had no room for */
#define CT_C_NO_SOCKET 8        /* the lookup found no socket */
#define CT_C_LISTENER 9         /* the lookup found a listener (dropped on the client side) */
#define CT_C_NOT_FULLSOCK 10    /* skc lookup: a time-wait or request socket (no full sock) */
#define CT_C_UNPARSED 11        /* not IPv4 TCP, or headers cut short: passed untouched */
#define CT_NCOUNTERS 12

/* Socket states as the kernel numbers them (include/net/tcp_states.h), for states[]. */
#define CT_TCP_TIME_WAIT 6
#define CT_TCP_LISTEN 10
#define CT_TCP_NEW_SYN_RECV 12
#define CT_NSTATES 16

/* A flow, in the direction client -> server. Addresses and ports in NETWORK byte order. */
struct ct_key {
	__u32 saddr;            /* the client */
	__u32 daddr;            /* the server */
	__u16 sport;
	__u16 dport;
	__u32 proto;            /* IPPROTO_TCP; 32 bits so the key has no padding to zero */
};

struct ct_val {
	__u64 packets;          /* packets of the flow that found their entry */
};

#endif
