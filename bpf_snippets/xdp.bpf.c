/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* xdp.bpf.c - the pktlab parse at XDP: the raw frame, before the kernel built an skb. */
#include <uapi/linux/bpf.h>
#include "pktlab_common.h"

BPF_RINGBUF_OUTPUT(events, PL_RINGBUF_PAGES);
/* lost[0]: records the ring buffer had no room for (per CPU; Python sums). Never silent. */
BPF_PERCPU_ARRAY(lost, __u64, 1);
/* seen[status]: packets parsed, by status. */
BPF_PERCPU_ARRAY(seen, __u64, PL_ST__COUNT);

int pktlab_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 key = 0;
	__u64 *cnt;
#ifdef PL_NO_RECORD
	struct pl_record rec;
	struct pl_record *r = &rec;
#else
	struct pl_record *r = events.ringbuf_reserve(sizeof(*r));

	if (!r) {
		cnt = lost.lookup(&key);
		if (cnt)
			*cnt += 1;
		goto out;
	}
#endif
	pl_zero(r);
	r->ifindex = ctx->ingress_ifindex;
#ifndef PL_NO_RECORD
	/* the timestamp and the fingerprint only matter to a record */
	r->ts_ns = bpf_ktime_get_ns();
	r->fingerprint = pl_fingerprint(data, data_end, data_end - data);
#endif
	r->hook = PL_HOOK_XDP;
	r->frame_len = data_end - data;
	pl_parse(data, data_end, r);
	key = r->status;
	cnt = seen.lookup(&key);
	if (cnt)
		*cnt += 1;
#ifndef PL_NO_RECORD
	/* NO_WAKEUP: pktlab's reader polls the ring positions itself (pktlab/ringbuf.py). */
	events.ringbuf_submit(r, BPF_RB_NO_WAKEUP);
out:
#endif
#ifdef PL_REWRITE_TTL
	/* lesson 03: the record above is the frame as it arrived; now rewrite it as a router
	 * would, TTL - 1, and update the IPv4 header checksum incrementally (RFC 1624). */
	{
		/* data and data_end are read again from ctx: keeping the old pointers alive to
		 * here would make every parse path a different verifier state (no pruning). */
		void *d = (void *)(long)ctx->data, *d_end = (void *)(long)ctx->data_end;
		struct pl_ethhdr *eth = d;
		struct pl_iphdr *iph = (void *)(eth + 1);

		if ((void *)(iph + 1) <= d_end && eth->proto == bpf_htons(PL_ETH_P_IP) &&
		    iph->ttl > 1) {
			__u32 sum = (~bpf_ntohs(iph->check)) & 0xffff;

			sum += (~((__u32)iph->ttl << 8 | iph->protocol)) & 0xffff;
			iph->ttl -= 1;
			sum += (__u32)iph->ttl << 8 | iph->protocol;
			sum = (sum & 0xffff) + (sum >> 16);
			sum = (sum & 0xffff) + (sum >> 16);
			iph->check = bpf_htons(~sum & 0xffff);
		}
	}
#endif
	return XDP_PASS;
}
