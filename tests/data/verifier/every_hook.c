/* One small correct program per hook `pktlab verify` knows; choose one with --func.
 * Each returns its hook's "let it through" verdict. */
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>

int at_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

int at_tc(struct __sk_buff *skb)
{
	return skb->len > 0 ? TC_ACT_OK : TC_ACT_SHOT;
}

int at_cgroup(struct __sk_buff *skb)
{
	return 1; /* cgroup-ingress: 1 delivers, 0 drops */
}

int at_socket(struct __sk_buff *skb)
{
	return skb->len; /* socket filter: the bytes to keep */
}

int at_sk_skb(struct __sk_buff *skb)
{
	return SK_PASS;
}

int at_sock_ops(struct bpf_sock_ops *ops)
{
	return 1;
}
