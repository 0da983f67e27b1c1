// Drop UDP and TCP packets to port 53 (IPv4 and IPv6); count what was dropped per source port.
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/in.h>
#include <uapi/linux/udp.h>

BPF_HASH(dropped_from, u16, u64, 1024);
BPF_ARRAY(seen, u64, 4);

int drop53(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct udphdr ports;                // source and destination ports lead both headers
    int verdict = XDP_PASS;
    u32 l4 = 0;                         // the transport header's offset: a number
    u8 proto = 0;
    if ((void *)(eth + 1) > end)
        goto out;
    if (eth->h_proto == htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > end || ip->ihl < 5 || (ip->frag_off & htons(0x1fff)))
            goto out;
        proto = ip->protocol;
        l4 = sizeof(*eth) + ip->ihl * 4;
    } else if (eth->h_proto == htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > end)
            goto out;
        proto = ip6->nexthdr;
        l4 = sizeof(*eth) + sizeof(*ip6);
    } else {
        goto out;
    }
    if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
        goto out;
    if (bpf_xdp_load_bytes(ctx, l4, &ports, sizeof(ports)) < 0)
        goto out;
    u32 k = proto == IPPROTO_UDP ? 1 : 2;
    u64 *n = seen.lookup(&k);
    if (n)
        *n += 1;
    if (ports.dest == htons(53)) {
        u16 sport = ntohs(ports.source);
        u64 one = 1, *c = dropped_from.lookup(&sport);
        if (c)
            *c += 1;
        else
            dropped_from.update(&sport, &one);
        verdict = XDP_DROP;
    }
out:
    return verdict;
}
