/* Mistake: the packet is read past what was checked. The check covers the Ethernet
 * header only; the IPv4 TTL lies beyond it. */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>

int count_ttl(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (ip->ttl == 1) /* the mistake: ip + 1 was never checked against data_end */
		return XDP_DROP;
	return XDP_PASS;
}
