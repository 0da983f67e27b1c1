/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * socket_filter.bpf.c - the pktlab parse at socket-filter: a SOCKET_FILTER program attached to
 * the receiving socket with setsockopt(SOL_SOCKET, SO_ATTACH_BPF) (pktlab/kernel/sockhooks.py
 * reaches the server's socket with pidfd_getfd(2)).
 *
 * It runs from sk_filter_trim_cap() right after the cgroup ingress programs, on the socket the
 * packet was delivered to; a filter on a listening socket is copied to every socket accept()
 * returns (sk_clone), so one attach covers every connection. skb->data is the transport
 * header here, and this program type may not read skb->data at all: the bytes come through
 * bpf_skb_load_bytes() (offsets from the transport header), into a copy (pktlab_copy.h), and
 * the parse enters at PL_ENTRY_L4 with the IP protocol, read from the IP header behind it
 * (bpf_skb_load_bytes_relative from BPF_HDR_START_NET).
 *
 * The return value is how many bytes to keep, counted from the transport header: skb->len
 * keeps everything (fail open), 0 drops the packet (TCP would retransmit it).
 */
#include <uapi/linux/bpf.h>
#include "pktlab_copy.h"
#include "pktlab_common.h"

PL_DECLARE_MAPS();
BPF_PERCPU_ARRAY(scratch, struct pl_kbuf, 1);

/* The transport protocol, from the network header (0 when it cannot be read). IPv6: the
 * first next header (the lab's traffic carries no extension headers). */
static __always_inline int pl_l4_proto(struct __sk_buff *skb)
{
	__u8 ip[10] = {};

	if (bpf_skb_load_bytes_relative(skb, 0, ip, sizeof(ip), BPF_HDR_START_NET) < 0)
		return 0;
	if ((ip[0] >> 4) == 4)
		return ip[9];
	if ((ip[0] >> 4) == 6)
		return ip[6];
	return 0;
}

int pktlab_socket_filter(struct __sk_buff *skb)
{
	__u32 cpu = bpf_get_smp_processor_id(), key = 0, slot;
	struct pl_kbuf *buf = scratch.lookup(&key);
	struct pl_ctl *c = ctl.lookup(&cpu);
	struct pl_record *r;
	int proto = pl_l4_proto(skb);
	__u64 copy;

	if (!buf || !c)
		goto out;
	copy = PL_COPY_LEN(skb->len);
	if (copy < 1 || bpf_skb_load_bytes(skb, 0, buf->b, copy) < 0)
		goto out;
	if (pl_slot(c, cpu, &slot))
		goto out;
	r = events.lookup(&slot);
	if (!r) {
		pl_abort(c);
		goto out;
	}
	pl_begin(r);
	r->ifindex = skb->ifindex;
	r->hook = PL_HOOK_SOCKET_FILTER;
	r->frame_len = skb->len;
	pl_parse_at(buf->b, buf->b + copy, r, PL_ENTRY_L4, proto);
	pl_count(c, r->status);
	pl_identify(r, buf->b, buf->b + copy, skb->len);
	pl_commit(c);
out:
	return skb->len;
}
