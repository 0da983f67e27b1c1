/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * mptcp_pathdrop.bpf.c - a switch that black-holes a path: at TC ingress and egress of every
 * dut path veth, the IPv4 TCP packets of the paths whose bit is set in ctl[0] are dropped
 * (ARP and everything else pass, so the neighbours stay known: only the transport loses its
 * packets, as on a link that went dark). Python flips the bit for a while under a live
 * transfer: the subflow on that path meets its retransmission timeout, again and again, each
 * time twice as long (the sock-ops hook sees every RTO_CB), while MPTCP moves the data to the
 * paths that still work.
 *
 *   paths:  dut ifindex -> path number
 *   ctl[0]: bit p set = path p is dark
 *   stats:  per CPU, per path * 2 + direction (0 ingress, 1 egress): packets, bytes, drops
 *
 * A packet it does not drop gets TC_ACT_UNSPEC, "no verdict": the next filter on the same
 * hook (the path policy) still sees it, and with none left the packet goes on. TC_ACT_OK
 * would end the filter chain there.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include "pktlab_parse.h"

#define PD_PATHS_MAX 7

struct pl_pd_stat {
	__u64 packets;
	__u64 bytes;
	__u64 drops;
};

BPF_HASH(paths, __u32, __u32, 16);
BPF_ARRAY(ctl, __u32, 1);
BPF_PERCPU_ARRAY(stats, struct pl_pd_stat, (PD_PATHS_MAX + 1) * 2);

static __always_inline int path_switch(struct __sk_buff *skb, __u32 dir)
{
	void *data_end = (void *)(long)skb->data_end;
	struct hdr_cursor nh = PL_CURSOR(skb);
	__u32 ifindex = skb->ifindex, zero = 0, *p, *mask, slot;
	struct pl_pd_stat *st;
	struct pl_ethhdr *eth;
	struct pl_iphdr *iph;
	__u32 ip_end;
	int verdict = TC_ACT_UNSPEC;

	p = paths.lookup(&ifindex);
	if (!p || *p > PD_PATHS_MAX)
		goto out;
	slot = *p * 2 + dir;
	st = stats.lookup(&slot);
	if (!st)
		goto out;
	st->packets++;
	st->bytes += skb->len;
	if (parse_ethhdr(&nh, data_end, &eth) != PL_ETH_P_IP ||
	    parse_iphdr(&nh, data_end, &iph, &ip_end) != PL_IPPROTO_TCP)
		goto out;
	mask = ctl.lookup(&zero);
	if (mask && (*mask >> *p) & 1) {
		st->drops++;
		verdict = TC_ACT_SHOT;
	}
out:
	return verdict;
}

int pktlab_pathdrop_in(struct __sk_buff *skb)
{
	return path_switch(skb, 0);
}

int pktlab_pathdrop_out(struct __sk_buff *skb)
{
	return path_switch(skb, 1);
}
