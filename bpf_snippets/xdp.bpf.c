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
	return XDP_PASS;
}
