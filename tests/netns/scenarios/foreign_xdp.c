/* A program that is not sipcm's: `sipcm detach` must leave it alone. No headers needed. */
struct xdp_md;

__attribute__((section("xdp"), used)) int other_xdp(struct xdp_md *ctx)
{
    return 2; /* XDP_PASS */
}

char _license[] __attribute__((section("license"), used)) = "GPL";
