/* Mistake: a helper this program type cannot call. bpf_skb_load_bytes() works on an skb
 * (TC, socket filters); an XDP program reads its bytes directly. */
#include <uapi/linux/bpf.h>

int first_byte(struct xdp_md *ctx)
{
	__u8 b = 0;

	bpf_skb_load_bytes(ctx, 0, &b, 1); /* the mistake: not a helper XDP may call */
	return b == 0xff ? XDP_DROP : XDP_PASS;
}
