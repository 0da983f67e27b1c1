// Counts by (protocol, destination port) and by frame size class: struct keys and values,
// per-CPU values, an array.
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/in.h>
#include <uapi/linux/udp.h>

struct flow { u8 proto; u16 dport; };
struct tally { u64 packets; u64 bytes; };

BPF_HASH(by_flow, struct flow, struct tally, 256);
BPF_PERCPU_ARRAY(by_size, struct tally, 4);
BPF_ARRAY(last_len, u32, 16);

int shapes(struct __sk_buff *skb)
{
    struct flow f = {};
    struct tally zero = {}, *t;
    struct udphdr ports = {};
    u8 ihl_byte = 0, proto = 0;
    u32 size = skb->len < 128 ? 0 : skb->len < 512 ? 1 : skb->len < 1024 ? 2 : 3;
    u32 slot = 0;
    if (bpf_skb_load_bytes(skb, ETH_HLEN, &ihl_byte, 1) == 0 &&
        bpf_skb_load_bytes(skb, ETH_HLEN + 9, &proto, 1) == 0 &&
        bpf_skb_load_bytes(skb, ETH_HLEN + (ihl_byte & 0x0f) * 4, &ports, sizeof(ports)) == 0 &&
        skb->protocol == htons(ETH_P_IP)) {
        f.proto = proto;
        f.dport = ntohs(ports.dest);
        t = by_flow.lookup_or_try_init(&f, &zero);
        if (t) {
            t->packets += 1;
            t->bytes += skb->len;
        }
    }
    t = by_size.lookup(&size);
    if (t) {
        t->packets += 1;
        t->bytes += skb->len;
    }
    u32 *last = last_len.lookup(&slot);
    if (last)
        *last = skb->len;
    return TC_ACT_OK;
}
