/*
 * The packed part of a record a Lane queues: one exchange's ids and times in
 * 49 bytes (one bytes object instead of five Python objects). Written by
 * sidecar/_http1scan.c, read by sidecar/_otlpspan.c and, for the times, by
 * sidecar/telemetry_record.py; both modules export LANE_PACKED_LAYOUT and
 * telemetry_record checks it against its own at import.
 */
#ifndef SIDETRACE_LANE_RECORD_H
#define SIDETRACE_LANE_RECORD_H

#define LANE_PACKED_LAYOUT \
    "<16s8s8sqqB trace_id span_id parent_id start_ns end_ns flags"

enum {
    LANE_TRACE_ID = 0,   /* 16 bytes */
    LANE_SPAN_ID = 16,   /* 8 bytes */
    LANE_PARENT_ID = 24, /* 8 bytes, zero without a parent */
    LANE_START_NS = 32,  /* int64, little-endian */
    LANE_END_NS = 40,    /* int64, little-endian */
    LANE_FLAGS = 48,     /* LANE_SAMPLED | LANE_HAS_PARENT */
    LANE_PACKED_SIZE = 49,
};
enum { LANE_SAMPLED = 1, LANE_HAS_PARENT = 2 };

static inline void
lane_put_i64(unsigned char *p, long long value)
{
    int i;
    for (i = 0; i < 8; i++)
        p[i] = (unsigned char)((unsigned long long)value >> (8 * i));
}

static inline unsigned long long
lane_get_u64(const unsigned char *p)
{
    unsigned long long value = 0;
    int i;
    for (i = 7; i >= 0; i--)
        value = value << 8 | p[i];
    return value;
}

#endif
