/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * drop_xdp.bpf.c - the bench's XDP drop point: count the frame, drop it.
 *
 * The floor of the XDP rung of the ladder: no parse, one per-CPU counter, XDP_DROP.
 * pktlab/bench.py reads count[0] (summed over CPUs) before and after a measured interval.
 * Per-CPU, so two CPUs counting at once never contend for one cache line: the rate is what we
 * measure, the counter must not be what limits it.
 *
 * Compiled with -DPL_VERDICT=XDP_TX the same program is the bench's traffic generator: in a
 * BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES and ctx.ingress_ifindex = the src veth, the
 * kernel turns XDP_TX into a redirect out of that veth, so every run puts one real frame on the
 * lab's wire, and count[0] is then the number of frames generated.
 */
#include <uapi/linux/bpf.h>

#ifndef PL_VERDICT
#define PL_VERDICT XDP_DROP
#endif

/* count[0]: frames seen here, per CPU. */
BPF_PERCPU_ARRAY(count, __u64, 1);

int pktlab_drop_xdp(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *cnt = count.lookup(&key);

	/* the verifier insists on the NULL check even for index 0 of a 1-entry array */
	if (cnt)
		*cnt += 1;
	return PL_VERDICT;
}
