// Reads the EtherType without checking that the Ethernet header is there.
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>

int no_check(struct xdp_md *ctx)
{
    struct ethhdr *eth = (void *)(long)ctx->data;
    if (eth->h_proto == htons(ETH_P_ARP))      // the mistake
        return XDP_DROP;
    return XDP_PASS;
}
