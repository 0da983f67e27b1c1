// Reads the EtherType without checking that the Ethernet header is there.
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>

BPF_ARRAY(arp, u64, 1);

int no_check(struct xdp_md *ctx)
{
    struct ethhdr *eth = (void *)(long)ctx->data;
    int verdict = XDP_PASS;
    if (eth->h_proto == htons(ETH_P_ARP))       // the mistake
        verdict = XDP_DROP;
    return verdict;
}
