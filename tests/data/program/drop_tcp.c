// Drop every TCP frame (IPv4 protocol or IPv6 next header 6, untagged); count the drops.
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/in.h>

BPF_ARRAY(dropped, u64, 1);

int drop_tcp(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    int verdict = XDP_PASS;
    u8 proto = 0;
    u32 zero = 0;
    if ((void *)(eth + 1) > data_end)
        goto out;
    if (eth->h_proto == htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > data_end)
            goto out;
        proto = ip->protocol;
    } else if (eth->h_proto == htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > data_end)
            goto out;
        proto = ip6->nexthdr;
    }
    if (proto == IPPROTO_TCP) {
        u64 *n = dropped.lookup(&zero);
        if (n)
            __sync_fetch_and_add(n, 1);
        verdict = XDP_DROP;
    }
out:
    return verdict;
}
