/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * tc.bpf.c - the pktlab parse at TC (cls_bpf, direct action), on clsact ingress or egress.
 * Compiled once per direction: -DPL_HOOK=PL_HOOK_TC_INGRESS or PL_HOOK_TC_EGRESS.
 *
 * TC sees an skb, not the raw frame: on ingress the stack has already moved an outer VLAN tag
 * from the bytes into skb metadata (skb_vlan_untag in __netif_receive_skb_core). The program
 * records that tag from __sk_buff and says so (PL_F_VLAN_FROM_META); pktlab explains the
 * difference instead of calling it a disagreement.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include "pktlab_common.h"

#ifndef PL_HOOK
#define PL_HOOK PL_HOOK_TC_INGRESS
#endif
/* Bytes that must be in the linear part for direct packet access to see the headers. */
#define PL_TC_LINEAR 512

PL_DECLARE_MAPS();

int pktlab_tc(struct __sk_buff *skb)
{
	void *data, *data_end;
	__u32 cpu = bpf_get_smp_processor_id();
	struct pl_ctl *c;
	struct pl_record *r;
#ifdef PL_NO_RECORD
	/* Plain (not pl_zero) initialisation: the compiler may then drop every store that the
	 * status does not depend on. What stays is the walk itself, every header checked. */
	struct pl_record rec = {};
#else
	__u32 slot;
#endif

	/* A paged skb shows only its linear part to direct access: pull the headers in first.
	 * (The pull invalidates packet pointers, so they are read after it.) */
#ifndef PL_NO_PERFMON
	if (skb->data_end - skb->data < skb->len && skb->data_end - skb->data < PL_TC_LINEAR)
		bpf_skb_pull_data(skb, skb->len < PL_TC_LINEAR ? skb->len : PL_TC_LINEAR);
#else
	/* the same pull, asked without subtracting packet pointers: a linear part shorter than
	 * PL_TC_LINEAR is pulled to min(len, PL_TC_LINEAR), which is nothing when it holds the
	 * whole frame already */
	if ((void *)(long)skb->data + PL_TC_LINEAR > (void *)(long)skb->data_end)
		bpf_skb_pull_data(skb, skb->len < PL_TC_LINEAR ? skb->len : PL_TC_LINEAR);
#endif
	c = ctl.lookup(&cpu);
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
	r->ifindex = skb->ifindex;
	r->hook = PL_HOOK;
	r->frame_len = skb->len;
	if (skb->vlan_present) {
		r->vlan_tpid[0] = bpf_ntohs(skb->vlan_proto);
		r->vlan_tci[0] = skb->vlan_tci;
		r->vlan_depth = 1;
		r->flags |= PL_F_VLAN_FROM_META;
	}
	{
		struct hdr_cursor nh = PL_CURSOR(skb);

		pl_parse_cursor(nh, (void *)(long)skb->data_end, r, PL_ENTRY_ETH, 0);
	}
	pl_count(c, r->status);
#ifndef PL_NO_RECORD
	/* Fresh packet pointers for the fingerprint (see xdp.bpf.c). */
	pl_barrier();
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	pl_identify(r, data, data_end, skb->len);
	pl_commit(c);
#endif
out:
	return TC_ACT_OK;
}
