/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * sk_skb.bpf.c - the pktlab parse at sk-skb: an SK_SKB stream verdict program on a sockhash
 * (pl_socks) holding the lab server's TCP sockets, and the SOCK_OPS program that puts each
 * accepted socket there.
 *
 * pktlab_sockops runs on the lab's cgroup v2 for every TCP event of its sockets;
 * BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB comes at the end of the handshake, in softirq, before
 * accept() returns: so every socket is in the map before the application can read a byte. (A
 * socket put in the map while its reader is already blocked in recv() is not woken: the data
 * goes to the psock's queue and the reader sleeps on, with the bytes in Recv-Q. Lesson 08.)
 *
 * pktlab_sk_skb runs when data reaches such a socket (the psock replaces sk_data_ready) and sees
 * the payload only: bpf_skb_load_bytes(skb, 0, ...) reads the first payload byte. No stream
 * parser is attached: every chunk TCP delivers is one verdict. The parse enters at
 * PL_ENTRY_PAYLOAD with IPPROTO_TCP: only TCP sockets reach the map (the sock_ops callback
 * that inserts them is TCP's). Returns SK_PASS, hand the data to the application (fail open);
 * SK_DROP would throw away bytes TCP has already acknowledged.
 */
#include <uapi/linux/bpf.h>
#include "pktlab_copy.h"
#include "pktlab_common.h"

#ifndef PL_SOCKS_MAX
#define PL_SOCKS_MAX 1024
#endif

PL_DECLARE_MAPS();
BPF_PERCPU_ARRAY(scratch, struct pl_kbuf, 1);
/* key: the socket's cookie (bpf_get_socket_cookie), which the kernel never reuses */
BPF_SOCKHASH(pl_socks, __u64, PL_SOCKS_MAX);

int pktlab_sockops(struct bpf_sock_ops *skops)
{
	__u64 key;

	if (skops->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
		key = bpf_get_socket_cookie(skops);
		pl_socks.sock_hash_update(skops, &key, BPF_NOEXIST);
	}
	return 1;
}

int pktlab_sk_skb(struct __sk_buff *skb)
{
	__u32 cpu = bpf_get_smp_processor_id(), key = 0, slot;
	struct pl_kbuf *buf = scratch.lookup(&key);
	struct pl_ctl *c = ctl.lookup(&cpu);
	struct pl_record *r;
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
	r->hook = PL_HOOK_SK_SKB;
	r->frame_len = skb->len;
	pl_parse_at(buf->b, buf->b + copy, r, PL_ENTRY_PAYLOAD, PL_IPPROTO_TCP);
	pl_count(c, r->status);
	pl_identify(r, buf->b, buf->b + copy, skb->len);
	pl_commit(c);
out:
	return SK_PASS;
}
