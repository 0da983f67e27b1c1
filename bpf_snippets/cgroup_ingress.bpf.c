/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * cgroup_ingress.bpf.c - the pktlab parse at cgroup-ingress: a CGROUP_SKB program on
 * BPF_CGROUP_INET_INGRESS of the lab's cgroup v2 (pktlab/lab/cgroup.py).
 *
 * It runs from sk_filter_trim_cap() (tcp_filter, udp_queue_rcv_one_skb) once the packet has
 * found its socket, and only when that socket belongs to the cgroup: a socket belongs to the
 * cgroup its creator was in at socket(), which is why the lab's server joins the cgroup before
 * it makes its sockets. The kernel has pushed skb->data back to the network header: the
 * program sees the packet from the IP header (no Ethernet header: an explained difference),
 * and parses it entered at PL_ENTRY_NET with the EtherType the skb carries.
 *
 * The bytes are copied first (bpf_skb_load_bytes, pktlab_copy.h): locally generated TCP keeps
 * its payload in page fragments, which direct packet access cannot see and cgroup_skb cannot
 * pull. Returns 1, let it through (fail open); 0 would drop it.
 */
#include <uapi/linux/bpf.h>
#include "pktlab_copy.h"
#include "pktlab_common.h"

PL_DECLARE_MAPS();
BPF_PERCPU_ARRAY(scratch, struct pl_kbuf, 1);

int pktlab_cgroup_ingress(struct __sk_buff *skb)
{
	__u32 cpu = bpf_get_smp_processor_id(), key = 0, slot;
	struct pl_kbuf *buf = scratch.lookup(&key);
	struct pl_ctl *c = ctl.lookup(&cpu);
	struct pl_record *r;
	__u64 copy;

	if (!buf || !c)
		goto out;
	copy = PL_COPY_LEN(skb->len);
	/* the helper's size must be provably at least 1 */
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
	r->hook = PL_HOOK_CGROUP_INGRESS;
	r->frame_len = skb->len;
	pl_parse_at(buf->b, buf->b + copy, r, PL_ENTRY_NET, bpf_ntohs(skb->protocol));
	pl_count(c, r->status);
	pl_identify(r, buf->b, buf->b + copy, skb->len);
	pl_commit(c);
out:
	return 1;
}
