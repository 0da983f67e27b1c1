/* Assignment 2 (lesson 03): a one-port firewall at TC. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>

#define BLOCKED_PORT 80

int drop_port(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph;
	struct tcphdr tcp;
	int verdict = TC_ACT_OK;
	u32 hlen;

	if ((void *)(eth + 1) > data_end)
		goto out;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		goto out;
	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end)
		goto out;
	if (iph->protocol != IPPROTO_TCP)
		goto out;
	hlen = iph->ihl * 4;
	if (hlen < sizeof(*iph))		/* IHL below 5 is not a length */
		goto out;
	/* the TCP header starts hlen bytes in, a length known only now: a learner's program may
	 * not move a packet pointer by it (no CAP_PERFMON), so the helper copies it out */
	if (bpf_skb_load_bytes(skb, sizeof(*eth) + hlen, &tcp, sizeof(tcp)) < 0)
		goto out;
	if (tcp.dest == bpf_htons(BLOCKED_PORT))
		verdict = TC_ACT_SHOT;
out:
	return verdict;
}
