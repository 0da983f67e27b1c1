/* Mistake: a loop the verifier has to walk a million times. The verifier follows every
 * iteration of a bounded loop; past a million instructions it gives up. */
#include <uapi/linux/bpf.h>

int spin(struct xdp_md *ctx)
{
	__u32 sum = 0;

	for (__u32 i = 0; i < 1000000; i++) /* the mistake: far too many iterations */
		sum += bpf_get_prandom_u32() & 1;
	return sum & 1 ? XDP_DROP : XDP_PASS;
}
