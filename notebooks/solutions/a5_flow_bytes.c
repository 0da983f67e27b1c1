/* Assignment 5 (lesson 03): bytes per flow at TC, in an LRU map. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>

struct flow {
	__u32 saddr;		/* as in the packet (network byte order) */
	__u32 daddr;
	__u16 sport;		/* network byte order */
	__u16 dport;
	__u8 proto;
	__u8 pad[3];		/* zero: every byte of a key counts */
};

/* a flow table meets new flows all the time: an LRU map makes room for them by dropping the
 * entry used least recently, where a plain hash would refuse them once full */
BPF_TABLE("lru_hash", struct flow, u64, flow_bytes, 1024);

int count_flows(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph;
	struct flow key = {};
	__u16 ports[2];
	u32 hlen;

	if ((void *)(eth + 1) > data_end)
		goto out;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		goto out;
	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end)
		goto out;
	if (iph->protocol != IPPROTO_TCP && iph->protocol != IPPROTO_UDP)
		goto out;
	hlen = iph->ihl * 4;
	if (hlen < sizeof(*iph))
		goto out;
	/* TCP and UDP both start with the two ports */
	if (bpf_skb_load_bytes(skb, sizeof(*eth) + hlen, ports, sizeof(ports)) < 0)
		goto out;
	key.saddr = iph->saddr;
	key.daddr = iph->daddr;
	key.sport = ports[0];
	key.dport = ports[1];
	key.proto = iph->protocol;
	u64 zero = 0, *bytes = flow_bytes.lookup_or_try_init(&key, &zero);
	if (bytes)
		__sync_fetch_and_add(bytes, skb->len);
out:
	return TC_ACT_OK;
}
