/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * drop_tc.bpf.c - the bench's TC drop point (cls_bpf, direct action, clsact ingress): count the
 * skb, drop it (TC_ACT_SHOT).
 *
 * The same counter as drop_xdp.bpf.c, so the two rungs differ only in where they sit: XDP runs
 * before (generic) or instead of (native) the skb, TC after the stack made and classified one.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>

/* count[0]: skbs dropped here, per CPU. */
BPF_PERCPU_ARRAY(count, __u64, 1);

int pktlab_drop_tc(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *cnt = count.lookup(&key);

	/* the verifier insists on the NULL check even for index 0 of a 1-entry array */
	if (cnt)
		*cnt += 1;
	return TC_ACT_SHOT;
}
