/* sipcm.h: layout shared by the kernel program and Python (sipcm/capture/ring.py mirrors
 * struct sipcm_rec with a numpy dtype; sipcm/capture/program.py mirrors the counter enum).
 * Change both sides together: tests/unit/capture/test_ring.py checks the mirror. */
#ifndef SIPCM_H
#define SIPCM_H

/* Direction codes (sipcm/capture/records.py DIR_*). */
#define SIPCM_DIR_INGRESS 1
#define SIPCM_DIR_EGRESS 2

/* Per-CPU counters, indexes into the `counters` array. Names in Python: lower case without
 * the CNT_ prefix, in this order. */
enum sipcm_counter {
    CNT_SEEN = 0,          /* every packet the programs ran on */
    CNT_SELECTED,          /* packets chosen for copying */
    CNT_COPIED,            /* records written to the ring */
    CNT_TRUNCATED,         /* copied, but longer than the snap length */
    CNT_RING_FULL_LOST,    /* selected, ring output failed (ring full) */
    CNT_LOAD_FAILED,       /* selected, packet bytes could not be loaded */
    CNT_VXLAN_INNER,       /* selected because the VXLAN inner frame is SIP */
    CNT_FRAG_FIRST,        /* selected first fragments remembered for their followers */
    CNT_FRAG_MATCHED,      /* non-first fragments selected (their first fragment was SIP) */
    CNT_FRAG_UNMATCHED,    /* non-first fragments left alone (no selected first fragment) */
    CNT_HEURISTIC,         /* selected by the payload prefix check (not by port) */
    CNT_SHORT,             /* a header ran past the end of the frame */
    CNT_MAX
};

/* Record header written before the packet bytes in each ring record. 24 bytes. */
struct sipcm_rec {
    __u64 ts_ns;      /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
    __u32 origlen;    /* packet length (XDP: frame length; TC: skb->len) */
    __u32 caplen;     /* bytes following this header */
    __u32 ifindex;
    __u8 direction;   /* SIPCM_DIR_* */
    __u8 pad[3];
};

/* Config array indexes (runtime switches set from Python). */
#define CFG_HEURISTIC 0
#define CFG_MAX 4

/* Key of the first-fragment table: a later fragment is copied when its (family, src, dst,
 * id, proto) matches a first fragment that was selected. */
struct sipcm_frag_key {
    __u8 saddr[16];
    __u8 daddr[16];
    __u32 id;
    __u8 family;
    __u8 proto;
    __u8 pad[2];
};

#endif
