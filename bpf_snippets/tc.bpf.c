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

BPF_RINGBUF_OUTPUT(events, PL_RINGBUF_PAGES);
/* lost[0]: records the ring buffer had no room for (per CPU; Python sums). Never silent. */
BPF_PERCPU_ARRAY(lost, __u64, 1);
/* seen[status]: packets parsed, by status. */
BPF_PERCPU_ARRAY(seen, __u64, PL_ST__COUNT);

int pktlab_tc(struct __sk_buff *skb)
{
	void *data, *data_end;
	__u32 key = 0;
	__u64 *cnt;
#ifdef PL_NO_RECORD
	struct pl_record rec;
	struct pl_record *r = &rec;
#else
	struct pl_record *r;
#endif

	/* A paged skb shows only its linear part to direct access: pull the headers in first.
	 * (The pull invalidates packet pointers, so they are read after it.) */
	if (skb->data_end - skb->data < skb->len && skb->data_end - skb->data < PL_TC_LINEAR)
		bpf_skb_pull_data(skb, skb->len < PL_TC_LINEAR ? skb->len : PL_TC_LINEAR);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;

#ifndef PL_NO_RECORD
	r = events.ringbuf_reserve(sizeof(*r));
	if (!r) {
		cnt = lost.lookup(&key);
		if (cnt)
			*cnt += 1;
		goto out;
	}
#endif
	pl_zero(r);
	r->ifindex = skb->ifindex;
#ifndef PL_NO_RECORD
	/* the timestamp and the fingerprint only matter to a record */
	r->ts_ns = bpf_ktime_get_ns();
	r->fingerprint = pl_fingerprint(data, data_end, skb->len);
#endif
	r->hook = PL_HOOK;
	r->frame_len = skb->len;
	if (skb->vlan_present) {
		r->vlan_tpid[0] = bpf_ntohs(skb->vlan_proto);
		r->vlan_tci[0] = skb->vlan_tci;
		r->vlan_depth = 1;
		r->flags |= PL_F_VLAN_FROM_META;
	}
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
	return TC_ACT_OK;
}
