/* Assignment 3 (lesson 07): VXLAN, a header pktlab's parser does not know, at XDP. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#define VXLAN_PORT 4789

struct vxlan_hdr {
	__u8 flags;		/* 0x08: the VNI is valid */
	__u8 reserved1[3];
	__u8 vni[3];		/* the VXLAN network identifier, most significant byte first */
	__u8 reserved2;
};

BPF_HASH(vxlan_ipv4, u32, u64, 1024);	/* key: the VNI; value: inner IPv4 frames */

int count_vxlan(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph;
	struct udphdr udp;
	struct vxlan_hdr vx;
	struct ethhdr inner;
	u32 off, vni;

	if ((void *)(eth + 1) > data_end)
		goto out;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		goto out;
	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end)
		goto out;
	if (iph->protocol != IPPROTO_UDP || iph->ihl < 5)
		goto out;
	/* from here every offset depends on the IHL: copy the headers out with the helper
	 * (a learner's program may not move a packet pointer by a run-time length) */
	off = sizeof(*eth) + iph->ihl * 4;
	if (bpf_xdp_load_bytes(ctx, off, &udp, sizeof(udp)) < 0)
		goto out;
	if (udp.dest != bpf_htons(VXLAN_PORT))
		goto out;
	off += sizeof(udp);
	if (bpf_xdp_load_bytes(ctx, off, &vx, sizeof(vx)) < 0)
		goto out;
	off += sizeof(vx);
	if (bpf_xdp_load_bytes(ctx, off, &inner, sizeof(inner)) < 0)
		goto out;
	if (inner.h_proto != bpf_htons(ETH_P_IP))
		goto out;
	vni = (u32)vx.vni[0] << 16 | (u32)vx.vni[1] << 8 | vx.vni[2];
	vxlan_ipv4.increment(vni);
out:
	return XDP_PASS;
}
