/* Mistake: after pktlab's parser, the next header read unchecked. parse_ethhdr() checks the
 * Ethernet header and moves the cursor past it; what follows must be checked again. */
#include <uapi/linux/bpf.h>
#include "pktlab_parse.h"

int after_eth(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = PL_CURSOR(ctx);
	struct pl_ethhdr *eth;
	__u8 *next;

	if (parse_ethhdr(&nh, data_end, &eth) != PL_ETH_P_IP)
		return XDP_PASS;
	next = nh.pos;
	return *next == 0x45 ? XDP_PASS : XDP_DROP; /* the mistake: the byte after Ethernet, unchecked */
}
