/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * conntrack.bpf.c - a TC ingress firewall with the policy "only TCP that belongs to a
 * connection", kept two ways: in a connection-tracking map of our own, keyed by 5-tuple, or
 * by asking the kernel's socket table (lesson 09, `pktlab conntrack`).
 *
 * Two entry points share every map (one object, loaded twice):
 *   conntrack_server  clsact ingress of the server's interface: drop TCP no socket would take
 *   conntrack_client  clsact ingress of the client's interface: replies only (drop when no
 *                     socket would take it, or when the one that would is a listener)
 *
 * The policy is config[CT_CFG_POLICY] (conntrack.h), set by Python before the traffic:
 *   none         count, pass
 *   hash         a client SYN arriving at the server inserts the flow's 5-tuple into ct_hash;
 *                every other packet, both ways, must find it. A full HASH map refuses the
 *                insert (-E2BIG): that flow's SYN is dropped, so new flows are refused.
 *   lru_hash     the same with ct_lru: the insert always succeeds, by evicting the least
 *                recently used entry, which may belong to a live flow. That flow's next
 *                packet finds nothing and is dropped: the flow breaks.
 *   sk_lookup    bpf_sk_lookup_tcp: the socket the stack would deliver the packet to. It
 *                returns full sockets only, so a FIN for a socket in TIME_WAIT (a timewait
 *                mini-socket) finds nothing and is dropped: the close never completes.
 *   skc_lookup   bpf_skc_lookup_tcp: any socket, time-wait and request sockets included
 *                (bpf_sk_fullsock() is NULL for them). The fix for the trap above.
 *
 * Evictions are counted where they show: a non-SYN packet of a flow with no entry. Only the
 * client's SYN inserts, the server answers only a SYN that passed, and entries are never
 * deleted here, so a flow that sends anything but a SYN once had an entry: a miss is an entry
 * that was evicted while its flow was alive. Distinct flows are counted through the `evicted`
 * set (a miss inserts the flow there once).
 *
 * Compiled with -DCT_MAX_ENTRIES=N (both conntrack maps) and -DCT_EVICTED_ENTRIES=N.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include "pktlab_parse.h"
#include "conntrack.h"

#if !defined(CT_MAX_ENTRIES) || !defined(CT_EVICTED_ENTRIES)
#error "compile with -DCT_MAX_ENTRIES=N -DCT_EVICTED_ENTRIES=N (pktlab/sockets/conntrack.py)"
#endif

/* Ethernet + the longest IPv4 header + the longest TCP header: what must be linear. */
#define CT_HEADERS_MAX (14 + 60 + 60)
#define CT_TCP_SYN 0x02
#define CT_TCP_ACK 0x10
#define CT_EEXIST 17

BPF_ARRAY(config, __u32, CT_NCFG);
BPF_PERCPU_ARRAY(counters, __u64, CT_NSIDES * CT_NCOUNTERS);
/* The state of the socket each lookup found, per side. */
BPF_PERCPU_ARRAY(states, __u64, CT_NSIDES * CT_NSTATES);
/* errno (positive) of each failed insert -> how many. */
BPF_HASH(insert_errno, __u32, __u64, 64);
BPF_HASH(ct_hash, struct ct_key, struct ct_val, CT_MAX_ENTRIES);
BPF_TABLE("lru_hash", struct ct_key, struct ct_val, ct_lru, CT_MAX_ENTRIES);
BPF_HASH(evicted, struct ct_key, __u8, CT_EVICTED_ENTRIES);

static __always_inline void ct_count(__u32 side, __u32 what)
{
	__u32 k = side * CT_NCOUNTERS + what;
	__u64 *v = counters.lookup(&k);

	/* the verifier insists on the NULL check even for an index inside the array */
	if (v)
		*v += 1;
}

static __always_inline void ct_state(__u32 side, __u32 state)
{
	__u32 k = side * CT_NSTATES + (state & (CT_NSTATES - 1));
	__u64 *v = states.lookup(&k);

	if (v)
		*v += 1;
}

static __always_inline struct ct_val *ct_find(__u32 policy, struct ct_key *k)
{
	if (policy == CT_POLICY_HASH)
		return ct_hash.lookup(k);
	return ct_lru.lookup(k);
}

/* The flow's packet found no entry: count the packet, and the flow once. */
static __always_inline void ct_missed(__u32 side, struct ct_key *k)
{
	__u8 one = 1;
	int err;

	ct_count(side, CT_C_MISSED);
	/* insert() is BPF_NOEXIST: it succeeds once per flow */
	err = evicted.insert(k, &one);
	if (err == 0)
		ct_count(side, CT_C_EVICTED);
	else if (err != -CT_EEXIST)
		ct_count(side, CT_C_EVICTED_UNCOUNTED);
}

/* The 5-tuple map policies (hash, lru_hash). Returns the verdict. */
static __always_inline int ct_track(__u32 side, __u32 policy, struct ct_key *k, __u8 flags)
{
	struct ct_val fresh = {.packets = 1};
	struct ct_val *v;
	__u32 e;
	int err;

	v = ct_find(policy, k);
	if (v) {
		/* two CPUs may count one flow's packets at once */
		__sync_fetch_and_add(&v->packets, 1);
		return TC_ACT_OK;
	}
	if (side == CT_SIDE_CLIENT || (flags & (CT_TCP_SYN | CT_TCP_ACK)) != CT_TCP_SYN) {
		ct_missed(side, k);
		return TC_ACT_SHOT;
	}
	/* A client's SYN with no entry: a new flow. BPF_NOEXIST, so that a SYN racing another
	 * CPU's insert of the same flow fails with EEXIST instead of resetting its entry. */
	if (policy == CT_POLICY_HASH)
		err = ct_hash.insert(k, &fresh);
	else
		err = ct_lru.insert(k, &fresh);
	if (err == 0 || err == -CT_EEXIST) {
		ct_count(side, CT_C_INSERTED);
		return TC_ACT_OK;
	}
	ct_count(side, CT_C_INSERT_FAILED);
	e = -err;
	insert_errno.increment(e);
	return TC_ACT_SHOT;
}

/* The tuple bpf_sk_lookup_tcp wants: the packet's own view (saddr = the peer, daddr = us),
 * addresses and ports in network order. It must live on the stack: the helper's argument is
 * ARG_PTR_TO_MEM, and its size must be sizeof(tuple.ipv4) or sizeof(tuple.ipv6) exactly. */
static __always_inline void ct_tuple(struct bpf_sock_tuple *t, struct pl_iphdr *iph,
				     struct pl_tcphdr *th)
{
	__builtin_memcpy(&t->ipv4.saddr, iph->saddr, 4);
	__builtin_memcpy(&t->ipv4.daddr, iph->daddr, 4);
	t->ipv4.sport = th->source;
	t->ipv4.dport = th->dest;
}

/* A socket the lookup found, seen from a side: the verdict. Client side, replies only: a
 * listener would take the packet, but it is a new connection, not a reply. */
static __always_inline int ct_judge(__u32 side, __u32 state)
{
	ct_state(side, state);
	if (side == CT_SIDE_CLIENT && state == CT_TCP_LISTEN) {
		ct_count(side, CT_C_LISTENER);
		return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

/* sk_lookup: full sockets only (a time-wait or request socket is looked up, then dropped by
 * the helper itself: NULL, or the request's listener). */
static __always_inline int ct_sk_lookup(struct __sk_buff *skb, __u32 side, struct pl_iphdr *iph,
					struct pl_tcphdr *th)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	int verdict;

	ct_tuple(&t, iph, th);
	sk = bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	/* PTR_TO_SOCKET_OR_NULL: no field may be read before this check */
	if (!sk) {
		ct_count(side, CT_C_NO_SOCKET);
		return TC_ACT_SHOT;
	}
	verdict = ct_judge(side, sk->state);
	/* the lookup took a reference: a path that ends without bpf_sk_release() is refused at
	 * load ("Unreleased reference"), and releasing NULL is refused too (hence after the check) */
	bpf_sk_release(sk);
	return verdict;
}

/* skc_lookup: any socket. A time-wait mini-socket is a sock_common, not a full sock: only
 * sock_common's fields may be read (state is one), and bpf_sk_fullsock() says which it is. */
static __always_inline int ct_skc_lookup(struct __sk_buff *skb, __u32 side, struct pl_iphdr *iph,
					 struct pl_tcphdr *th)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *skc, *full;
	int verdict;

	ct_tuple(&t, iph, th);
	skc = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!skc) {
		ct_count(side, CT_C_NO_SOCKET);
		return TC_ACT_SHOT;
	}
	/* PTR_TO_SOCK_COMMON: reading sk->type or sk->mark here is refused ("invalid sock_common
	 * access"); state, family, addresses and ports are sock_common's own */
	verdict = ct_judge(side, skc->state);
	/* no reference of its own: `full` lives on skc's, and dies with it at the release */
	full = bpf_sk_fullsock(skc);
	if (!full)
		ct_count(side, CT_C_NOT_FULLSOCK);
	bpf_sk_release(skc);
	return verdict;
}

static __always_inline int ct_filter(struct __sk_buff *skb, __u32 side)
{
	struct hdr_cursor nh;
	struct pl_ethhdr *eth;
	struct pl_iphdr *iph;
	struct pl_tcphdr *th;
	struct ct_key k = {};
	void *data_end;
	__u32 ip_end;
	__u32 cfg = CT_CFG_POLICY, policy;
	__u32 *p;
	int verdict = TC_ACT_OK;

	p = config.lookup(&cfg);
	if (!p)
		goto out;
	policy = *p;
	/* A paged skb shows only its linear part to direct access: pull the headers in first.
	 * The pull invalidates every packet pointer, so data and data_end are read after it. */
#ifndef PL_NO_PERFMON
	if (skb->data_end - skb->data < skb->len && skb->data_end - skb->data < CT_HEADERS_MAX)
		bpf_skb_pull_data(skb, skb->len < CT_HEADERS_MAX ? skb->len : CT_HEADERS_MAX);
#else
	/* the same pull without subtracting packet pointers (see tc.bpf.c) */
	if ((void *)(long)skb->data + CT_HEADERS_MAX > (void *)(long)skb->data_end)
		bpf_skb_pull_data(skb, skb->len < CT_HEADERS_MAX ? skb->len : CT_HEADERS_MAX);
#endif
	data_end = (void *)(long)skb->data_end;
	nh = (struct hdr_cursor)PL_CURSOR(skb);
	if (parse_ethhdr(&nh, data_end, &eth) != PL_ETH_P_IP ||
	    parse_iphdr(&nh, data_end, &iph, &ip_end) != PL_IPPROTO_TCP ||
	    (iph->frag & bpf_htons(0x1fff)) ||
	    parse_tcphdr(&nh, data_end, ip_end, &th) < 0) {
		/* fail open: not ours to judge (ARP, IPv6, a non-first fragment, a cut header) */
		ct_count(side, CT_C_UNPARSED);
		goto out;
	}
	ct_count(side, CT_C_TCP);
	if (policy == CT_POLICY_HASH || policy == CT_POLICY_LRU_HASH) {
		/* the key is always client -> server, so both sides find one entry per flow */
		if (side == CT_SIDE_SERVER) {
			__builtin_memcpy(&k.saddr, iph->saddr, 4);
			__builtin_memcpy(&k.daddr, iph->daddr, 4);
			k.sport = th->source;
			k.dport = th->dest;
		} else {
			__builtin_memcpy(&k.saddr, iph->daddr, 4);
			__builtin_memcpy(&k.daddr, iph->saddr, 4);
			k.sport = th->dest;
			k.dport = th->source;
		}
		k.proto = PL_IPPROTO_TCP;
		verdict = ct_track(side, policy, &k, th->flags);
	} else if (policy == CT_POLICY_SK_LOOKUP) {
		verdict = ct_sk_lookup(skb, side, iph, th);
	} else if (policy == CT_POLICY_SKC_LOOKUP) {
		verdict = ct_skc_lookup(skb, side, iph, th);
	}
	ct_count(side, verdict == TC_ACT_OK ? CT_C_PASSED : CT_C_DROPPED);
out:
	return verdict;
}

int conntrack_server(struct __sk_buff *skb)
{
	return ct_filter(skb, CT_SIDE_SERVER);
}

int conntrack_client(struct __sk_buff *skb)
{
	return ct_filter(skb, CT_SIDE_CLIENT);
}
