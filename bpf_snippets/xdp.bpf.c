/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* xdp.bpf.c - the pktlab parse at XDP: the raw frame, before the kernel built an skb. */
#include <uapi/linux/bpf.h>
#include "pktlab_common.h"

PL_DECLARE_MAPS();

int pktlab_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = PL_CURSOR(ctx);
	__u32 cpu = bpf_get_smp_processor_id();
	struct pl_ctl *c = ctl.lookup(&cpu);
	struct pl_record *r;
#ifdef PL_NO_RECORD
	/* Plain (not pl_zero) initialisation: the compiler may then drop every store that the
	 * status does not depend on. What stays is the walk itself, every header checked. */
	struct pl_record rec = {};
#else
	__u32 slot;
#endif

	if (!c)
		goto out;
#ifdef PL_NO_RECORD
	r = &rec;
#else
	if (pl_slot(c, cpu, &slot))
		goto out;
	r = events.lookup(&slot);
	if (!r) {
		pl_abort(c);
		goto out;
	}
	pl_begin(r);
#endif
	r->ifindex = ctx->ingress_ifindex;
	r->hook = PL_HOOK_XDP;
	r->frame_len = nh.len;
	pl_parse_cursor(nh, data_end, r, PL_ENTRY_ETH, 0);
	pl_count(c, r->status);
#ifndef PL_NO_RECORD
	/* Fresh packet pointers for the fingerprint: the parse's carry a different proven length
	 * on each of its exits, each a separate verifier state through the loop otherwise. */
	pl_barrier();
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	pl_identify(r, data, data_end, nh.len);
	pl_commit(c);
#endif
out:
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
