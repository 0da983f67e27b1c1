// Drop every TCP frame (IPv4 protocol or IPv6 next header 6, untagged); count the drops.
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/in.h>
#include <uapi/linux/pkt_cls.h>

BPF_ARRAY(dropped, u64, 1);

int drop_tcp_tc(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    int verdict = TC_ACT_OK;
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
        verdict = TC_ACT_SHOT;
    }
out:
    return verdict;
}
