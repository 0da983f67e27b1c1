/* Mistake: a name the compiler does not know. IPPROTO_UDP comes from <uapi/linux/in.h>,
 * which this file does not include. The macro below spans two lines on purpose. */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>

#define PAST(p, end) \
	((void *)((p) + 1) > (void *)(end))

int udp_only(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if (PAST(ip, data_end))
		return XDP_PASS;
	return ip->protocol == IPPROTO_UDP ? XDP_PASS : XDP_DROP; /* the mistake: not declared */
}
