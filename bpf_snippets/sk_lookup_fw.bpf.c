/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * sk_lookup_fw.bpf.c - lesson 09: a firewall that asks the kernel's socket table.
 *
 * At TC ingress on the server: a TCP packet that no socket of this host would take is dropped
 * ("drop TCP no socket would take"). There is no connection-tracking map to fill up: the
 * socket table already knows every connection, and every listener.
 *
 * bpf_sk_lookup_tcp() finds the socket the stack would deliver the packet to and takes a
 * REFERENCE on it (or returns NULL). The verifier tracks that reference: every path from the
 * lookup to the program's end must give it back with bpf_sk_release(), the socket must not be
 * read after it was released, and NULL must be checked before anything is read or released.
 * Lesson 09's exercises break each rule once, on purpose, to read what the verifier says.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include "pktlab_parse.h"

int sk_lookup_fw(struct __sk_buff *skb)
{
	void *data_end = (void *)(long)skb->data_end;
	struct hdr_cursor nh = PL_CURSOR(skb);
	struct bpf_sock_tuple t = {};
	struct pl_ethhdr *eth;
	struct pl_iphdr *iph;
	struct pl_tcphdr *th;
	struct bpf_sock *sk;
	__u32 ip_end;
	int verdict = TC_ACT_OK;

	if (parse_ethhdr(&nh, data_end, &eth) != PL_ETH_P_IP)
		goto out;
	if (parse_iphdr(&nh, data_end, &iph, &ip_end) != PL_IPPROTO_TCP)
		goto out;
	if (parse_tcphdr(&nh, data_end, ip_end, &th) < 0)
		goto out;
	/* the packet's own view: the peer is the source, this host the destination */
	__builtin_memcpy(&t.ipv4.saddr, iph->saddr, 4);
	__builtin_memcpy(&t.ipv4.daddr, iph->daddr, 4);
	t.ipv4.sport = th->source;
	t.ipv4.dport = th->dest;

	sk = bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk) {
		verdict = TC_ACT_SHOT;          /* no socket would take it */
		goto out;
	}
	/* a listener takes only a SYN, or the last ACK of a handshake it answered */
	if (sk->state == BPF_TCP_LISTEN && !(th->flags & 0x02) && !(th->flags & 0x10))
		verdict = TC_ACT_SHOT;
	bpf_sk_release(sk);
out:
	return verdict;
}
