/* Assignment 1 (lesson 02): packets per IP protocol, counted at XDP. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>

BPF_ARRAY(proto_count, u64, 256);	/* index: the IPv4 protocol number; value: frames */

int count_protos(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph;
	u32 key;
	u64 *n;

	if ((void *)(eth + 1) > data_end)	/* the verifier wants the proof before eth->... */
		goto out;
	if (eth->h_proto != bpf_htons(ETH_P_IP))	/* big-endian on the wire */
		goto out;
	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end)	/* the fixed 20 bytes, no more */
		goto out;
	key = iph->protocol;
	n = proto_count.lookup(&key);
	if (n)				/* an array's lookup can still fail: the verifier asks */
		__sync_fetch_and_add(n, 1);
out:
	return XDP_PASS;
}
