/* Two programs in one file: `pktlab verify` needs --func to know which one to load.
 * answer() takes no context, so it is not a program; verdict() is a helper (static). */
#include <uapi/linux/bpf.h>

int answer(void)
{
	return 42;
}

static __always_inline int verdict(int drop)
{
	return drop ? XDP_DROP : XDP_PASS;
}

int pass_all(struct xdp_md *ctx)
{
	return verdict(0);
}

int drop_all(struct xdp_md *ctx)
{
	return verdict(1);
}
