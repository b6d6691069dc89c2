/* OTLP ExportTraceServiceRequest bytes -> the `spans` table's columns, in one pass.
 *
 * The compiled twin of tracestore/otlp_columns.TraceColumns.add, which stays the
 * reference: the same columns, truncation, clamping and type codes, and the same
 * verdict on bad input as protobuf's own (upb) parser: wrong wire types are unknown
 * fields, groups are skipped, strings must be UTF-8, nesting stops at depth 100,
 * singular sub-messages seen twice are merged. Anything malformed raises
 * DecodeError for the whole request and leaves no rows behind.
 *
 * The columns are Python lists built here (what both store backends take), one
 * list per column in SPAN_COLUMNS order; repeated short strings share one object
 * per request. Or, for the server's INSERT, each column's ClickHouse Native bytes
 * written as the values are read (see "Native batches"). Array and kvlist attribute values (rare) are turned into their
 * JSON text by a Python callback, so that text is protobuf's own.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 100
#define NS 1000000000ULL

enum {
    C_TS, C_START, C_DURATION, C_TRACE_ID, C_SPAN_ID, C_PARENT, C_TRACE_STATE, C_FLAGS,
    C_SERVICE, C_SPAN_NAME, C_KIND, C_STATUS_CODE, C_STATUS_MESSAGE, C_SCOPE_NAME,
    C_SCOPE_VERSION, C_ATTR_KEYS, C_ATTR_TYPES, C_ATTR_VALUES, C_RES_KEYS, C_RES_TYPES,
    C_RES_VALUES, C_EV_TIMES, C_EV_NAMES, C_EV_ATTRS, C_EV_DROPPED, C_LN_TRACE, C_LN_SPAN,
    C_LN_STATE, C_LN_ATTRS, C_LN_DROPPED, C_LN_FLAGS, C_DROPPED_ATTRS, C_DROPPED_EVENTS,
    C_DROPPED_LINKS, C_RES_DROPPED, C_SCOPE_ATTRS, C_RES_SCHEMA, C_SCOPE_SCHEMA, NCOLUMNS
};

static PyObject *DecodeError;   /* tracestore.otlp_columns.DecodeError, set by init() */
static PyObject *ComplexValue;  /* callable(code, bytes) -> str for array/kvlist values */
static PyObject *TypeCodes[9];  /* small ints 0..8 */
static PyObject *StrTrue, *StrFalse, *StrEmpty;

/* ---- wire format ------------------------------------------------------------------ */

typedef struct {
    const uint8_t *p, *end;
} Cur;

typedef struct {
    uint32_t field;
    int wt;
    uint64_t v;          /* varint / fixed value */
    const uint8_t *data; /* length-delimited payload */
    size_t len;
} Field;

typedef struct {
    const char *error;
    const uint8_t *base;
    const uint8_t *at;
} Err;

static int fail(Err *e, const uint8_t *at, const char *message) {
    if (!e->error) {
        e->error = message;
        e->at = at;
    }
    return -1;
}

static int read_long_varint(Cur *c, uint64_t *out, Err *e) {
    uint64_t v = 0;
    const uint8_t *p = c->p;
    for (int shift = 0; shift < 70; shift += 7) {
        if (p >= c->end) return fail(e, p, "truncated varint");
        uint8_t b = *p++;
        if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            c->p = p;
            *out = v;
            return 0;
        }
    }
    return fail(e, c->p, "varint longer than 10 bytes");
}

/* Most varints (tags, lengths, small ints) are one byte. */
static inline int read_varint(Cur *c, uint64_t *out, Err *e) {
    if (c->p < c->end && *c->p < 0x80) {
        *out = *c->p++;
        return 0;
    }
    return read_long_varint(c, out, e);
}

static int read_tag(Cur *c, uint32_t *field, int *wt, Err *e) {
    uint64_t tag;
    const uint8_t *at = c->p;
    if (read_varint(c, &tag, e) < 0) return -1;
    if (tag > UINT32_MAX || (tag >> 3) == 0) return fail(e, at, "invalid field number");
    *field = (uint32_t)(tag >> 3);
    *wt = (int)(tag & 7);
    return 0;
}

static int skip_group(Cur *c, uint32_t group, int depth, Err *e);

/* Read one field's value (wire types 0, 1, 2, 5); skip groups (3) whole. */
static int read_value(Cur *c, Field *f, int depth, Err *e) {
    switch (f->wt) {
    case 0:
        return read_varint(c, &f->v, e);
    case 1:
        if (c->end - c->p < 8) return fail(e, c->p, "truncated fixed64");
        memcpy(&f->v, c->p, 8); /* little-endian hosts only (x86-64, aarch64) */
        c->p += 8;
        return 0;
    case 5: {
        uint32_t v;
        if (c->end - c->p < 4) return fail(e, c->p, "truncated fixed32");
        memcpy(&v, c->p, 4);
        f->v = v;
        c->p += 4;
        return 0;
    }
    case 2: {
        uint64_t len;
        if (read_varint(c, &len, e) < 0) return -1;
        if (len > (uint64_t)(c->end - c->p)) return fail(e, c->p, "length past the end");
        f->data = c->p;
        f->len = (size_t)len;
        c->p += len;
        return 0;
    }
    case 3:
        return skip_group(c, f->field, depth - 1, e);
    default:
        return fail(e, c->p, "invalid wire type");
    }
}

static int skip_group(Cur *c, uint32_t group, int depth, Err *e) {
    if (depth < 0) return fail(e, c->p, "nested too deeply");
    for (;;) {
        Field f;
        if (c->p >= c->end) return fail(e, c->p, "unterminated group");
        if (read_tag(c, &f.field, &f.wt, e) < 0) return -1;
        if (f.wt == 4) {
            if (f.field != group) return fail(e, c->p, "mismatched end of group");
            return 0;
        }
        if (read_value(c, &f, depth, e) < 0) return -1;
    }
}

/* Next field of a message, groups skipped: 1 a field, 0 the end, -1 an error. */
static __attribute__((noinline)) int next_field_slow(Cur *c, Field *f, int depth, Err *e) {
    for (;;) {
        if (c->p >= c->end) return 0;
        if (read_tag(c, &f->field, &f->wt, e) < 0) return -1;
        if (f->wt == 4) return fail(e, c->p, "end of group outside a group");
        if (read_value(c, f, depth, e) < 0) return -1;
        if (f->wt != 3) return 1;
    }
}

/* next_field, with the common fields read inline: a one-byte tag, then a one-byte
 * varint or length, or a fixed64 (times). Anything else takes the general path. */
static inline __attribute__((always_inline)) int next_field(Cur *c, Field *f, int depth,
                                                            Err *e) {
    const uint8_t *p = c->p;
    if (p >= c->end) return 0;
    uint8_t tag = p[0];
    if (tag >= 0x80 || tag < 8) return next_field_slow(c, f, depth, e);
    size_t left = (size_t)(c->end - p) - 1;
    switch (tag & 7) {
    case 0:
        if (left < 1 || p[1] >= 0x80) break;
        f->v = p[1];
        c->p = p + 2;
        break;
    case 1:
        if (left < 8) break;
        memcpy(&f->v, p + 1, 8); /* little-endian hosts only (x86-64, aarch64) */
        c->p = p + 9;
        break;
    case 2:
        if (left < 1 || p[1] >= 0x80 || p[1] > left - 1) break;
        f->data = p + 2;
        f->len = p[1];
        c->p = p + 2 + p[1];
        break;
    default:
        return next_field_slow(c, f, depth, e);
    }
    if (c->p == p) return next_field_slow(c, f, depth, e);
    f->field = tag >> 3;
    f->wt = tag & 7;
    return 1;
}

/* ---- UTF-8 ------------------------------------------------------------------------- */

/* Validate UTF-8 as protobuf does (no overlongs, no surrogates, <= U+10FFFF); count
 * code points. Returns -1 on bad UTF-8. *ascii tells whether every byte was < 0x80. */
static Py_ssize_t utf8_length(const uint8_t *s, size_t n, int *ascii) {
    size_t i = 0;
    Py_ssize_t count = 0;
    *ascii = 1;
    while (i < n) {
        uint64_t w;
        if (n - i >= 8 && (memcpy(&w, s + i, 8), !(w & 0x8080808080808080ULL))) {
            i += 8; /* eight ASCII bytes */
            count += 8;
            continue;
        }
        uint8_t b = s[i];
        if (b < 0x80) {
            i++;
            count++;
            continue;
        }
        *ascii = 0;
        size_t need;
        uint32_t cp;
        if (b >= 0xc2 && b <= 0xdf) {
            need = 1;
            cp = b & 0x1f;
        } else if (b >= 0xe0 && b <= 0xef) {
            need = 2;
            cp = b & 0x0f;
        } else if (b >= 0xf0 && b <= 0xf4) {
            need = 3;
            cp = b & 0x07;
        } else {
            return -1;
        }
        if (n - i - 1 < need) return -1;
        for (size_t k = 1; k <= need; k++) {
            uint8_t t = s[i + k];
            if ((t & 0xc0) != 0x80) return -1;
            cp = (cp << 6) | (t & 0x3f);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return -1;
        i += need + 1;
        count++;
    }
    return count;
}

/* Byte offset of the first `chars` code points of valid UTF-8. */
static size_t utf8_prefix(const uint8_t *s, size_t n, Py_ssize_t chars) {
    size_t i = 0;
    while (i < n && chars > 0) {
        i++;
        while (i < n && (s[i] & 0xc0) == 0x80) i++;
        chars--;
    }
    return i;
}

/* ---- the per-request context -------------------------------------------------------- */

#define CACHE_SLOTS 1024
#define CACHE_MAX_LEN 96

typedef struct {
    const uint8_t *s;
    size_t n;
    uint64_t hash;
    PyObject *str;
} CacheSlot;

#define BATCH_SLOTS (1 << 16)
#define BATCH_CACHE "tracestore._otlpdecode.cache"

/* Strings shared across the requests of one batch (owned by a capsule). */
typedef struct {
    CacheSlot slots[BATCH_SLOTS];
} BatchCache;

static void batch_cache_free(PyObject *capsule) {
    BatchCache *cache = PyCapsule_GetPointer(capsule, BATCH_CACHE);
    if (!cache) return;
    for (size_t i = 0; i < BATCH_SLOTS; i++) Py_XDECREF(cache->slots[i].str);
    PyMem_Free(cache);
}

static PyObject *new_cache(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
    BatchCache *cache = PyMem_Calloc(1, sizeof(BatchCache));
    if (!cache) return PyErr_NoMemory();
    PyObject *capsule = PyCapsule_New(cache, BATCH_CACHE, batch_cache_free);
    if (!capsule) PyMem_Free(cache);
    return capsule;
}

typedef struct {
    Err err;
    BatchCache *batch;
    PyObject *cols[NCOLUMNS];
    struct Native *nat; /* a Native batch: write there instead of cols */
    PyObject *empty; /* one shared empty list for rows without values */
    uint64_t lo, hi;
    Py_ssize_t limit;
    long truncated, clamped;
    int validate_only;        /* check the request, count bad spans, build nothing */
    int check_time;           /* (validating) count far start times as bad */
    uint64_t max_time;        /* (validating) later times, kinds or codes are bad values */
    int32_t max_kind, max_status;
    long spans, bad_ids, bad_values, bad_times;
    int overflow; /* (Native) a value its column's type cannot hold: OverflowError */
    CacheSlot cache[CACHE_SLOTS];
} Ctx;

static PyObject *new_str(const uint8_t *s, size_t n, int ascii) {
    if (n == 0) {
        Py_INCREF(StrEmpty);
        return StrEmpty;
    }
    if (ascii) {
        PyObject *o = PyUnicode_New((Py_ssize_t)n, 127);
        if (o) memcpy(PyUnicode_DATA(o), s, n);
        return o;
    }
    return PyUnicode_DecodeUTF8((const char *)s, (Py_ssize_t)n, "strict");
}

/* Look `s` up in an open-addressing table of strs; add it if there is room. With
 * `own_key` the key is the str's own (ASCII) data, so the table may outlive `s`. */
static PyObject *cache_get(CacheSlot *slots, size_t mask, const uint8_t *s, size_t n, int ascii,
                           int own_key) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ULL;
    size_t slot = (size_t)(h ^ (h >> 29)) & mask;
    for (int probe = 0; probe < 8; probe++) {
        CacheSlot *c = &slots[(slot + probe) & mask];
        if (c->str == NULL) {
            PyObject *o = new_str(s, n, ascii);
            if (!o) return NULL;
            c->s = own_key ? (const uint8_t *)PyUnicode_DATA(o) : s;
            c->n = n;
            c->hash = h;
            c->str = o;
            Py_INCREF(o);
            return o;
        }
        if (c->hash == h && c->n == n && memcmp(c->s, s, n) == 0) {
            Py_INCREF(c->str);
            return c->str;
        }
    }
    return new_str(s, n, ascii);
}

/* A str for valid UTF-8, shared with equal short strings seen before: in this batch
 * (ASCII, when the caller keeps a batch cache), else in this request. */
static PyObject *cached_str(Ctx *x, const uint8_t *s, size_t n, int ascii) {
    if (n == 0 || n > CACHE_MAX_LEN) return new_str(s, n, ascii);
    if (ascii && x->batch) return cache_get(x->batch->slots, BATCH_SLOTS - 1, s, n, 1, 1);
    return cache_get(x->cache, CACHE_SLOTS - 1, s, n, ascii, 0);
}

static int check_utf8(Ctx *x, const Field *f) {
    int ascii;
    if (utf8_length(f->data, f->len, &ascii) < 0)
        return fail(&x->err, f->data, "string field had bad UTF-8");
    return 0;
}

/* The whole-string str of a validated UTF-8 field (last occurrence wins). */
typedef struct {
    const uint8_t *s;
    size_t n;
    int ascii;
} Str;

static int take_str(Ctx *x, const Field *f, Str *out) {
    int ascii;
    if (utf8_length(f->data, f->len, &ascii) < 0)
        return fail(&x->err, f->data, "string field had bad UTF-8");
    out->s = f->data;
    out->n = f->len;
    out->ascii = ascii;
    return 0;
}

static PyObject *str_of(Ctx *x, const Str *s) { return cached_str(x, s->s, s->n, s->ascii); }

static PyObject *hex_of(const uint8_t *s, size_t n) {
    static const char digits[] = "0123456789abcdef";
    PyObject *o = PyUnicode_New((Py_ssize_t)(2 * n), 127);
    if (!o) return NULL;
    char *out = PyUnicode_DATA(o);
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[s[i] >> 4];
        out[2 * i + 1] = digits[s[i] & 15];
    }
    return o;
}

/* A new list for one row's values. It only ever holds str and int, so it can never be
 * part of a reference cycle: untracked, the garbage collector skips the millions of
 * them a batch holds (as CPython does for tuples of atoms). */
static PyObject *row_list(void) {
    PyObject *list = PyList_New(0);
    if (list) PyObject_GC_UnTrack(list);
    return list;
}

/* Append and steal the reference. */
static int append(PyObject *list, PyObject *item) {
    if (!item) return -1;
    int r = PyList_Append(list, item);
    Py_DECREF(item);
    return r;
}

static int append_n(PyObject *list, PyObject *item, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (PyList_Append(list, item) < 0) return -1;
    return 0;
}

/* ---- text buffer (JSON) --------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
    int fixed; /* p is not ours (a bytes object's storage): it never grows */
} Buf;

/* Room for `n` more bytes, counted as written: where to write them, or NULL. The
 * common case (room left) is inline; growing is not. */
/* Room for at least `cap` bytes in all. */
static int buf_reserve(Buf *b, size_t cap) {
    if (cap <= b->cap) return 0;
    char *p = PyMem_Realloc(b->p, cap);
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static __attribute__((noinline)) char *buf_grow_slow(Buf *b, size_t n) {
    if (b->fixed) {
        PyErr_SetString(PyExc_SystemError, "a fixed-size buffer was sized wrong");
        return NULL;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n) cap *= 2;
    if (buf_reserve(b, cap) < 0) return NULL;
    b->n += n;
    return b->p + b->n - n;
}

static inline char *buf_grow(Buf *b, size_t n) {
    if (__builtin_expect(b->n + n > b->cap, 0)) return buf_grow_slow(b, n);
    b->n += n;
    return b->p + b->n - n;
}

static inline int buf_put(Buf *b, const void *s, size_t n) {
    if (n == 0) return 0;
    char *at = buf_grow(b, n);
    if (!at) return -1;
    memcpy(at, s, n);
    return 0;
}

/* A JSON string as json.dumps(ensure_ascii=False) writes it. */
static int buf_json_str(Buf *b, const uint8_t *s, size_t n) {
    if (buf_put(b, "\"", 1) < 0) return -1;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        if (buf_put(b, s + run, i - run) < 0) return -1;
        run = i + 1;
        char esc[8];
        const char *e = NULL;
        switch (c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            e = esc;
        }
        if (buf_put(b, e, strlen(e)) < 0) return -1;
    }
    if (buf_put(b, s + run, n - run) < 0) return -1;
    return buf_put(b, "\"", 1);
}

/* ---- ClickHouse Native types (see encode_column and Native below) ------------------ */

enum { N_U8 = 1, N_U16, N_U32, N_U64, N_I8, N_I16, N_I32, N_I64, N_F64, N_STRING, N_LC_STRING };
#define N_ARRAY 0x100
#define LC_ADDITIONAL_KEYS (1ULL << 9)
#define LC_UPDATE_DICTIONARY (1ULL << 10)

static int put_u64(Buf *b, uint64_t v) {
    return buf_put(b, &v, 8); /* little-endian hosts only, as the decoder */
}

static inline int put_uint(Buf *b, uint64_t v, int width) {
    char *at = buf_grow(b, (size_t)width);
    if (!at) return -1;
    switch (width) { /* fixed sizes: a store each, not a call to memcpy */
    case 1: *at = (char)v; break;
    case 2: { uint16_t w = (uint16_t)v; memcpy(at, &w, 2); break; }
    case 4: { uint32_t w = (uint32_t)v; memcpy(at, &w, 4); break; }
    default: memcpy(at, &v, 8); /* little-endian hosts only, as the decoder */
    }
    return 0;
}

/* A LowCardinality(String) block's header for `nkeys` new keys (every block carries
 * its own dictionary): the width of its key indices, or -1. */
static int put_lc_header(Buf *b, uint64_t nkeys) {
    static const int key_widths[] = {1, 2, 4, 8};
    uint64_t key_type = nkeys < 256 ? 0 : nkeys < 65536 ? 1 : nkeys < (1ULL << 32) ? 2 : 3;
    if (put_u64(b, LC_ADDITIONAL_KEYS | LC_UPDATE_DICTIONARY | key_type) < 0 ||
        put_u64(b, nkeys) < 0)
        return -1;
    return key_widths[key_type];
}

static __attribute__((noinline)) int put_long_varint(Buf *b, uint64_t v) {
    uint8_t out[10];
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return buf_put(b, out, n);
}

static inline int put_varint(Buf *b, uint64_t v) {
    if (v >= 0x80) return put_long_varint(b, v);
    char *at = buf_grow(b, 1);
    if (!at) return -1;
    *at = (char)v;
    return 0;
}


/* ---- Native batches -----------------------------------------------------------------
 *
 * With a Native batch (new_native) as `into`, decode_traces writes each value straight
 * into its column's buffer in the layout encode_column gives the lists (native_column
 * returns it), so a batch holds no Python object per value and nothing walks it again
 * before the INSERT. Strings of LowCardinality columns go to a per-column dictionary in
 * first-seen order, as the driver's; fixed-width values are checked against the width.
 */

typedef struct {
    uint64_t hash;
    size_t off, n;  /* the key's bytes in NCol.keys */
    uint32_t index; /* key index + 1; 0: an empty slot */
} LCSlot;

typedef struct {
    int code;       /* N_* | N_ARRAY */
    int width;      /* unsigned scalars: bytes a value */
    Buf data;       /* fixed width: the values; String: varint length + bytes; LC: u32 keys */
    Buf offsets;    /* arrays: each row's end (u64) */
    uint64_t items; /* values in data */
    Buf keys;       /* LowCardinality: the dictionary, varint length + bytes */
    LCSlot *slots;
    size_t nslots, nkeys;
    int taken; /* handed out by native_column(..., take=True) and freed */
    int used;  /* a value other than its type's default (0, '') was written */
    const uint8_t *last; /* LowCardinality: the last key's bytes in this request */
    size_t last_n;
    uint32_t last_key;
} NCol;

typedef struct Native {
    NCol cols[NCOLUMNS];
    uint64_t rows;
    int taken; /* a column was handed out and freed: no more rows */
} Native;

/* What the decoder writes to each column: an unsigned int, a string, an id as hex; in
 * capitals, an array of those. */
static const char NATIVE_SHAPE[NCOLUMNS + 1] = "iiihhhsissiisssSISSISISSIHHSSIIiiiisss";

/* A dictionary key's hash, eight bytes at a time. */
static uint64_t key_hash(const uint8_t *s, size_t n) {
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15ULL, w;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    w = 0;
    if (n) memcpy(&w, s, n);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ULL;
    return h ^ (h >> 29);
}

static int nat_uint(Ctx *x, NCol *c, uint64_t v);
static int nat_str(NCol *c, const uint8_t *s, size_t n);

static int lc_grow(NCol *c) {
    size_t n = c->nslots ? 2 * c->nslots : 256;
    LCSlot *slots = PyMem_Calloc(n, sizeof(LCSlot));
    if (!slots) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < c->nslots; i++) {
        const LCSlot *old = &c->slots[i];
        if (!old->index) continue;
        size_t j = (size_t)(old->hash ^ (old->hash >> 29)) & (n - 1);
        while (slots[j].index) j = (j + 1) & (n - 1);
        slots[j] = *old;
    }
    PyMem_Free(c->slots);
    c->slots = slots;
    c->nslots = n;
    return 0;
}

static int nat_str(NCol *c, const uint8_t *s, size_t n) {
    if (!s) s = (const uint8_t *)"";
    c->items++;
    c->used |= n != 0;
    if ((c->code & 0xff) != N_LC_STRING)
        return put_varint(&c->data, n) < 0 || buf_put(&c->data, s, n) < 0 ? -1 : 0;
    if (s == c->last && n == c->last_n) /* a resource's or scope's value, row after row */
        return buf_put(&c->data, &c->last_key, sizeof c->last_key);
    if (2 * (c->nkeys + 1) > c->nslots && lc_grow(c) < 0) return -1;
    uint64_t h = key_hash(s, n);
    size_t mask = c->nslots - 1, j = (size_t)(h ^ (h >> 29)) & mask;
    for (;; j = (j + 1) & mask) {
        LCSlot *slot = &c->slots[j];
        if (!slot->index) {
            if (put_varint(&c->keys, n) < 0) return -1;
            slot->off = c->keys.n;
            if (buf_put(&c->keys, s, n) < 0) return -1;
            slot->hash = h;
            slot->n = n;
            slot->index = (uint32_t)++c->nkeys;
            break;
        }
        if (slot->hash == h && slot->n == n && memcmp(c->keys.p + slot->off, s, n) == 0) break;
    }
    uint32_t key = c->slots[j].index - 1;
    c->last = s;
    c->last_n = n;
    c->last_key = key;
    return buf_put(&c->data, &key, sizeof key);
}

static int nat_uint(Ctx *x, NCol *c, uint64_t v) {
    if (c->width < 8 && v >> (8 * c->width)) {
        x->overflow = 1;
        return fail(&x->err, x->err.base, "a value does not fit its column's type");
    }
    c->items++;
    c->used |= v != 0;
    return put_uint(&c->data, v, c->width);
}

static int nat_hex(NCol *c, const uint8_t *s, size_t n) {
    static const char digits[] = "0123456789abcdef";
    c->items++;
    c->used |= n != 0;
    if (put_varint(&c->data, 2 * (uint64_t)n) < 0) return -1;
    char *out = n ? buf_grow(&c->data, 2 * n) : NULL;
    if (n && !out) return -1;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[s[i] >> 4];
        out[2 * i + 1] = digits[s[i] & 15];
    }
    return 0;
}

/* An array column's row ends here. */
static int nat_row(NCol *c) { return put_u64(&c->offsets, c->items); }

static void ncol_clear(NCol *c) {
    PyMem_Free(c->data.p);
    PyMem_Free(c->offsets.p);
    PyMem_Free(c->keys.p);
    PyMem_Free(c->slots);
    memset(c, 0, sizeof *c);
}

/* The column's Native bytes: encode_column's for the same values, written once, straight
 * into the bytes object (sized exactly, so the Buf over it never grows). */
static PyObject *ncol_bytes(const NCol *c) {
    int lc = (c->code & 0xff) == N_LC_STRING;
    size_t size = (lc ? 8 : c->data.n) + ((c->code & N_ARRAY) ? c->offsets.n : 0);
    if (lc && c->items) {
        int width = c->nkeys < 256 ? 1 : c->nkeys < 65536 ? 2 : c->nkeys < (1ULL << 32) ? 4 : 8;
        size += 16 + c->keys.n + 8 + (size_t)width * c->items;
    }
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (!bytes) return NULL;
    Buf out = {PyBytes_AS_STRING(bytes), 0, size, 1};
    int r = lc ? put_u64(&out, 1) : 0;
    if (r == 0 && (c->code & N_ARRAY)) r = buf_put(&out, c->offsets.p, c->offsets.n);
    if (r == 0 && !lc) r = buf_put(&out, c->data.p, c->data.n);
    if (r == 0 && lc && c->items) {
        int width = put_lc_header(&out, c->nkeys);
        r = width < 0 || buf_put(&out, c->keys.p, c->keys.n) < 0 || put_u64(&out, c->items) < 0
                ? -1
                : 0;
        const uint8_t *keys = (const uint8_t *)c->data.p;
        char *at = r == 0 ? buf_grow(&out, (size_t)width * c->items) : NULL;
        for (uint64_t i = 0; at && i < c->items; i++, at += width) {
            uint32_t key;
            memcpy(&key, keys + 4 * i, 4);
            uint64_t wide = key;
            memcpy(at, &wide, (size_t)width); /* little-endian hosts only, as the decoder */
        }
    }
    if (r == 0 && out.n != size) {
        PyErr_SetString(PyExc_SystemError, "a Native column was sized wrong");
        r = -1;
    }
    if (r < 0) Py_CLEAR(bytes);
    return bytes;
}

/* Where a request started writing, to leave no rows behind when it fails. */
typedef struct {
    size_t data, offsets;
    uint64_t items;
    int used;
} NMark;

#define NATIVE_CAPSULE "tracestore._otlpdecode.native"

/* Each column's data and offsets bytes in the last batch whose columns were taken: a
 * new batch reserves as much at once instead of growing (and copying) its way there.
 * Memory reserved and not written is never touched. Per process, under the GIL. */
static size_t native_reserve[NCOLUMNS][2];


static void native_release(Native *nat) {
    for (int i = 0; i < NCOLUMNS; i++) ncol_clear(&nat->cols[i]);
    PyMem_Free(nat);
}

static void native_free(PyObject *capsule) {
    Native *nat = PyCapsule_GetPointer(capsule, NATIVE_CAPSULE);
    if (nat) native_release(nat);
}

/* ---- AnyValue and KeyValue -------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t n;
} Chunk;

typedef struct {
    int code;            /* the stored type code; 8 = string_value_strindex */
    const uint8_t *s;    /* string / bytes */
    size_t n;
    int ascii;
    uint64_t v;          /* bool, int, double bits */
    Chunk *chunks;       /* array / kvlist: the message's occurrences, merged */
    size_t nchunks, capchunks;
} Any;

static void any_reset(Any *a) {
    a->code = 0;
    a->nchunks = 0;
}

static int add_chunk(Any *a, const Field *f) {
    if (a->nchunks == a->capchunks) {
        size_t cap = a->capchunks ? 2 * a->capchunks : 2;
        Chunk *c = PyMem_Realloc(a->chunks, cap * sizeof(Chunk));
        if (!c) {
            PyErr_NoMemory();
            return -1;
        }
        a->chunks = c;
        a->capchunks = cap;
    }
    a->chunks[a->nchunks].p = f->data;
    a->chunks[a->nchunks].n = f->len;
    a->nchunks++;
    return 0;
}

static int parse_anyvalue(Ctx *x, const uint8_t *p, size_t n, Any *a, int depth);

/* Validate the nested messages of array / kvlist values (their text comes from Python). */
static int check_values(Ctx *x, const uint8_t *p, size_t n, int kv, int depth) {
    if (depth < 0) return fail(&x->err, p, "nested too deeply");
    Cur c = {p, p + n};
    Field f;
    int r;
    while ((r = next_field(&c, &f, depth, &x->err)) > 0) {
        if (f.field != 1 || f.wt != 2) continue;
        if (!kv) {
            Any tmp = {0};
            int rr = parse_anyvalue(x, f.data, f.len, &tmp, depth - 1);
            PyMem_Free(tmp.chunks);
            if (rr < 0) return -1;
            continue;
        }
        /* KeyValue */
        if (depth - 1 < 0) return fail(&x->err, f.data, "nested too deeply");
        Cur k = {f.data, f.data + f.len};
        Field g;
        int rk;
        while ((rk = next_field(&k, &g, depth - 1, &x->err)) > 0) {
            if (g.wt != 2) continue;
            if (g.field == 1 && check_utf8(x, &g) < 0) return -1;
            if (g.field == 2) {
                Any tmp = {0};
                int rr = parse_anyvalue(x, g.data, g.len, &tmp, depth - 2);
                PyMem_Free(tmp.chunks);
                if (rr < 0) return -1;
            }
        }
        if (rk < 0) return -1;
    }
    return r;
}

/* Merge one AnyValue occurrence into `a` (oneof: the last member wins; a message
 * member seen again right after itself is merged). */
static int parse_anyvalue(Ctx *x, const uint8_t *p, size_t n, Any *a, int depth) {
    if (depth < 0) return fail(&x->err, p, "nested too deeply");
    Cur c = {p, p + n};
    Field f;
    int r;
    while ((r = next_field(&c, &f, depth, &x->err)) > 0) {
        switch (f.field) {
        case 1:
        case 7:
            if (f.wt != 2) break;
            if (f.field == 1) {
                Str st;
                if (take_str(x, &f, &st) < 0) return -1;
                a->ascii = st.ascii;
            }
            a->code = f.field == 1 ? 1 : 5;
            a->s = f.data;
            a->n = f.len;
            a->nchunks = 0;
            break;
        case 2:
        case 3:
        case 8:
            if (f.wt != 0) break;
            a->code = f.field == 2 ? 2 : f.field == 3 ? 3 : 8;
            a->v = f.v;
            a->nchunks = 0;
            break;
        case 4:
            if (f.wt != 1) break;
            a->code = 4;
            a->v = f.v;
            a->nchunks = 0;
            break;
        case 5:
        case 6: {
            if (f.wt != 2) break;
            int code = f.field == 5 ? 6 : 7;
            if (check_values(x, f.data, f.len, code == 7, depth - 1) < 0) return -1;
            if (a->code != code) a->nchunks = 0;
            a->code = code;
            if (add_chunk(a, &f) < 0) return -1;
            break;
        }
        default:
            break;
        }
    }
    return r;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of `n` bytes into `out`, which has room for 4 * ((n + 2) / 3). */
static void base64_into(char *out, const uint8_t *s, size_t n) {
    size_t i = 0, j = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        out[j++] = B64[v >> 18];
        out[j++] = B64[(v >> 12) & 63];
        out[j++] = B64[(v >> 6) & 63];
        out[j++] = B64[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        out[j++] = B64[v >> 18];
        out[j++] = B64[(v >> 12) & 63];
        out[j++] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
        out[j++] = '=';
    }
}

/* The array or kvlist value's text, from the Python callback, appended to `tmp`. */
static int complex_text(const Any *a, Buf *tmp) {
    size_t total = 0;
    for (size_t i = 0; i < a->nchunks; i++) total += a->chunks[i].n;
    PyObject *data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (!data) return -1;
    char *out = PyBytes_AS_STRING(data);
    for (size_t i = 0; i < a->nchunks; i++) {
        memcpy(out, a->chunks[i].p, a->chunks[i].n);
        out += a->chunks[i].n;
    }
    PyObject *text = PyObject_CallFunction(ComplexValue, "iO", a->code, data);
    Py_DECREF(data);
    if (!text) return -1;
    int r = -1;
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "the complex-value callback must return str");
    } else {
        Py_ssize_t n;
        const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n);
        r = utf8 ? buf_put(tmp, utf8, (size_t)n) : -1;
    }
    Py_DECREF(text);
    return r;
}

/* The stored text of a value as UTF-8, truncating long strings and bytes (and counting
 * them): `*s` points into the request, at a constant, or into `tmp` (which starts empty;
 * the caller frees it). */
static int any_bytes(Ctx *x, const Any *a, Buf *tmp, const uint8_t **s, size_t *n) {
    *s = (const uint8_t *)"";
    *n = 0;
    switch (a->code) {
    case 1:
        *s = a->s;
        *n = a->n;
        if ((Py_ssize_t)a->n > x->limit) {
            int ascii;
            Py_ssize_t chars = a->ascii ? (Py_ssize_t)a->n : utf8_length(a->s, a->n, &ascii);
            if (chars > x->limit) {
                x->truncated++;
                *n = a->ascii ? (size_t)x->limit : utf8_prefix(a->s, a->n, x->limit);
            }
        }
        return 0;
    case 2:
        *s = (const uint8_t *)(a->v ? "true" : "false");
        *n = a->v ? 4 : 5;
        return 0;
    case 3: {
        char text[24], *end = text + sizeof text, *p = end;
        int64_t v = (int64_t)a->v;
        uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
        do *--p = (char)('0' + u % 10);
        while (u /= 10);
        if (v < 0) *--p = '-';
        if (buf_put(tmp, p, (size_t)(end - p)) < 0) return -1;
        break;
    }
    case 4: {
        double d;
        memcpy(&d, &a->v, 8);
        char *text = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (!text) return -1;
        int r = buf_put(tmp, text, strlen(text));
        PyMem_Free(text);
        if (r < 0) return -1;
        break;
    }
    case 5: {
        size_t len = a->n;
        if ((Py_ssize_t)len > x->limit) {
            x->truncated++;
            len = (size_t)x->limit;
        }
        char *out = len ? buf_grow(tmp, 4 * ((len + 2) / 3)) : NULL;
        if (len && !out) return -1;
        if (len) base64_into(out, a->s, len);
        break;
    }
    case 6:
    case 7:
        if (complex_text(a, tmp) < 0) return -1;
        break;
    case 8:
        PyErr_SetString(DecodeError, "cannot decode ExportTraceServiceRequest: "
                                     "string_value_strindex attribute values are not supported");
        return -1;
    default:
        return 0;
    }
    *s = (const uint8_t *)(tmp->p ? tmp->p : "");
    *n = tmp->n;
    return 0;
}

/* The stored text of a value as a str (short ones shared, see cached_str). */
static PyObject *any_text(Ctx *x, const Any *a) {
    if (a->code == 2) return Py_NewRef(a->v ? StrTrue : StrFalse);
    Buf tmp = {0};
    const uint8_t *s;
    size_t n;
    PyObject *text = NULL;
    if (any_bytes(x, a, &tmp, &s, &n) == 0) {
        if (a->code == 1 || (a->code == 3 && x->batch)) /* (the request cache keeps `s`) */
            text = cached_str(x, s, n, a->code == 3 || a->ascii);
        else if (a->code == 6 || a->code == 7)
            text = PyUnicode_DecodeUTF8((const char *)s, (Py_ssize_t)n, "strict");
        else
            text = new_str(s, n, 1);
    }
    PyMem_Free(tmp.p);
    return text;
}

typedef struct {
    Str key;
    Any value;
} KV;

/* Parse one KeyValue (fields merged if repeated). */
static int parse_kv(Ctx *x, const uint8_t *p, size_t n, KV *kv, int depth) {
    if (depth < 0) return fail(&x->err, p, "nested too deeply");
    kv->key.s = NULL;
    kv->key.n = 0;
    kv->key.ascii = 1;
    any_reset(&kv->value);
    Cur c = {p, p + n};
    Field f;
    int r;
    while ((r = next_field(&c, &f, depth, &x->err)) > 0) {
        if (f.wt != 2) continue;
        if (f.field == 1) {
            if (take_str(x, &f, &kv->key) < 0) return -1;
        } else if (f.field == 2) {
            if (parse_anyvalue(x, f.data, f.len, &kv->value, depth - 1) < 0) return -1;
        }
    }
    return r;
}

/* Attribute lists as parallel key / type / value lists; in a Native batch, written to the
 * span's columns at once (`count` of them), or, for a resource, held to repeat per span. */
typedef struct {
    PyObject *keys, *types, *values;
    uint64_t count;
    Buf held; /* u64 key length, key, u8 type, u64 value length, value; and again */
} Parallel;

static int native_attr(Ctx *x, NCol *keys, KV *kv, uint64_t *count) {
    Buf tmp = {0};
    const uint8_t *s;
    size_t n;
    int r = any_bytes(x, &kv->value, &tmp, &s, &n);
    if (r == 0)
        r = nat_str(&keys[0], kv->key.s, kv->key.n) < 0 ||
                    nat_uint(x, &keys[1], (uint64_t)kv->value.code) < 0 ||
                    nat_str(&keys[2], s, n) < 0
                ? -1
                : 0;
    PyMem_Free(tmp.p);
    *count += 1;
    return r;
}

static int held_attr(Ctx *x, Buf *held, KV *kv) {
    Buf tmp = {0};
    const uint8_t *s;
    size_t n;
    uint8_t code = (uint8_t)kv->value.code;
    int r = any_bytes(x, &kv->value, &tmp, &s, &n);
    if (r == 0)
        r = put_u64(held, kv->key.n) < 0 || buf_put(held, kv->key.s, kv->key.n) < 0 ||
                    buf_put(held, &code, 1) < 0 || put_u64(held, n) < 0 || buf_put(held, s, n) < 0
                ? -1
                : 0;
    PyMem_Free(tmp.p);
    return r;
}

/* One row of the resource's attributes in the three columns from `keys` on. */
static int held_row(Ctx *x, const Buf *held, NCol *keys) {
    for (size_t at = 0; at < held->n;) {
        const uint8_t *key = (const uint8_t *)held->p + at + 8;
        uint64_t kn, vn;
        memcpy(&kn, key - 8, 8);
        uint8_t code = key[kn];
        memcpy(&vn, key + kn + 1, 8);
        const uint8_t *value = key + kn + 9;
        if (nat_str(&keys[0], key, kn) < 0 || nat_uint(x, &keys[1], code) < 0 ||
            nat_str(&keys[2], value, vn) < 0)
            return -1;
        at += 8 + kn + 1 + 8 + vn;
    }
    return nat_row(&keys[0]) < 0 || nat_row(&keys[1]) < 0 || nat_row(&keys[2]) < 0 ? -1 : 0;
}

/* `column`: the first of the span's key / type / value columns; -1 for a resource's. */
static int parallel_add(Ctx *x, Parallel *out, KV *kv, int column) {
    if (x->nat)
        return column < 0 ? held_attr(x, &out->held, kv)
                          : native_attr(x, &x->nat->cols[column], kv, &out->count);
    if (!out->keys) {
        out->keys = row_list();
        out->types = row_list();
        out->values = row_list();
        if (!out->keys || !out->types || !out->values) return -1;
    }
    int code = kv->value.code;
    if (append(out->keys, str_of(x, &kv->key)) < 0) return -1;
    if (PyList_Append(out->types, TypeCodes[code]) < 0) return -1;
    return append(out->values, any_text(x, &kv->value));
}

static void parallel_clear(Parallel *p) {
    Py_CLEAR(p->keys);
    Py_CLEAR(p->types);
    Py_CLEAR(p->values);
    PyMem_Free(p->held.p);
    memset(p, 0, sizeof *p);
}

/* `[[key, type, value], ...]` JSON text, added one attribute at a time. */
static int json_add(Ctx *x, Buf *b, KV *kv) {
    Buf text = {0};
    const uint8_t *t;
    size_t tn;
    if (any_bytes(x, &kv->value, &text, &t, &tn) < 0) {
        PyMem_Free(text.p);
        return -1;
    }
    char code[8];
    int cn = snprintf(code, sizeof code, ",%d,", kv->value.code);
    int r = buf_put(b, b->n ? ",[" : "[[", 2);
    if (r == 0) r = buf_json_str(b, kv->key.s ? kv->key.s : (const uint8_t *)"", kv->key.n);
    if (r == 0) r = buf_put(b, code, (size_t)cn);
    if (r == 0) r = buf_json_str(b, t, tn);
    if (r == 0) r = buf_put(b, "]", 1);
    PyMem_Free(text.p);
    return r;
}

/* The attributes' JSON text complete: `[]` when there were none. */
static int json_close(Buf *b) { return b->n ? buf_put(b, "]", 1) : buf_put(b, "[]", 2); }

static PyObject *json_finish(Buf *b) {
    if (json_close(b) < 0) return NULL;
    return PyUnicode_DecodeUTF8(b->p, (Py_ssize_t)b->n, "strict");
}

/* ---- events, links, spans ------------------------------------------------------- */

/* A span's events or links: one row list per column, or in a Native batch the `count`
 * written to the columns. */
typedef struct {
    PyObject *lists[6];
    uint64_t count;
} Nested;

static void nested_clear(Nested *n, int count) {
    for (int i = 0; i < count; i++) Py_CLEAR(n->lists[i]);
}

static int nested_ready(Nested *n, int count) {
    if (n->lists[0]) return 0;
    for (int i = 0; i < count; i++)
        if (!(n->lists[i] = row_list())) return -1;
    return 0;
}

static int parse_event(Ctx *x, const uint8_t *p, size_t n, Nested *ev, uint64_t *latest,
                       int depth) {
    if (depth < 0) return fail(&x->err, p, "nested too deeply");
    uint64_t time = 0, dropped = 0;
    Str name = {(const uint8_t *)"", 0, 1};
    Buf attrs = {0};
    KV kv = {0};
    Cur c = {p, p + n};
    Field f;
    int r;
    while ((r = next_field(&c, &f, depth, &x->err)) > 0) {
        if (f.field == 1 && f.wt == 1) time = f.v;
        else if (f.field == 2 && f.wt == 2) r = take_str(x, &f, &name);
        else if (f.field == 3 && f.wt == 2) {
            r = parse_kv(x, f.data, f.len, &kv, depth - 1);
            if (r == 0 && !x->validate_only) r = json_add(x, &attrs, &kv);
        } else if (f.field == 4 && f.wt == 0) dropped = (uint32_t)f.v;
        if (r < 0) break;
    }
    if (r == 0 && time > *latest) *latest = time;
    if (r == 0 && x->nat) {
        NCol *c = &x->nat->cols[C_EV_TIMES];
        ev->count++;
        if (nat_uint(x, &c[0], time) < 0 || nat_str(&c[1], name.s, name.n) < 0 ||
            json_close(&attrs) < 0 || nat_str(&c[2], (const uint8_t *)attrs.p, attrs.n) < 0 ||
            nat_uint(x, &c[3], dropped) < 0)
            r = -1;
    } else if (r == 0 && !x->validate_only && (r = nested_ready(ev, 4)) == 0) {
        if (append(ev->lists[0], PyLong_FromUnsignedLongLong(time)) < 0 ||
            append(ev->lists[1], str_of(x, &name)) < 0 ||
            append(ev->lists[2], json_finish(&attrs)) < 0 ||
            append(ev->lists[3], PyLong_FromUnsignedLongLong(dropped)) < 0)
            r = -1;
    }
    PyMem_Free(attrs.p);
    PyMem_Free(kv.value.chunks);
    return r;
}

static int parse_link(Ctx *x, const uint8_t *p, size_t n, Nested *ln, int depth) {
    if (depth < 0) return fail(&x->err, p, "nested too deeply");
    uint64_t dropped = 0, flags = 0;
    Field trace = {0}, span = {0};
    Str state = {(const uint8_t *)"", 0, 1};
    Buf attrs = {0};
    KV kv = {0};
    Cur c = {p, p + n};
    Field f;
    int r;
    while ((r = next_field(&c, &f, depth, &x->err)) > 0) {
        if (f.field == 1 && f.wt == 2) trace = f;
        else if (f.field == 2 && f.wt == 2) span = f;
        else if (f.field == 3 && f.wt == 2) r = take_str(x, &f, &state);
        else if (f.field == 4 && f.wt == 2) {
            r = parse_kv(x, f.data, f.len, &kv, depth - 1);
            if (r == 0 && !x->validate_only) r = json_add(x, &attrs, &kv);
        } else if (f.field == 5 && f.wt == 0) dropped = (uint32_t)f.v;
        else if (f.field == 6 && f.wt == 5) flags = f.v;
        if (r < 0) break;
    }
    if (r == 0 && x->nat) {
        NCol *c = &x->nat->cols[C_LN_TRACE];
        ln->count++;
        if (nat_hex(&c[0], trace.data, trace.len) < 0 || nat_hex(&c[1], span.data, span.len) < 0 ||
            nat_str(&c[2], state.s, state.n) < 0 || json_close(&attrs) < 0 ||
            nat_str(&c[3], (const uint8_t *)attrs.p, attrs.n) < 0 ||
            nat_uint(x, &c[4], dropped) < 0 || nat_uint(x, &c[5], flags) < 0)
            r = -1;
    } else if (r == 0 && !x->validate_only && (r = nested_ready(ln, 6)) == 0) {
        if (append(ln->lists[0], hex_of(trace.data, trace.len)) < 0 ||
            append(ln->lists[1], hex_of(span.data, span.len)) < 0 ||
            append(ln->lists[2], str_of(x, &state)) < 0 ||
            append(ln->lists[3], json_finish(&attrs)) < 0 ||
            append(ln->lists[4], PyLong_FromUnsignedLongLong(dropped)) < 0 ||
            append(ln->lists[5], PyLong_FromUnsignedLongLong(flags)) < 0)
            r = -1;
    }
    PyMem_Free(attrs.p);
    PyMem_Free(kv.value.chunks);
    return r;
}

typedef struct {
    Field trace, span, parent;
    Str trace_state, name, status_message;
    uint64_t start, end, flags, dropped_attrs, dropped_events, dropped_links;
    int32_t kind, status_code;
    int has_status;
    uint64_t latest_event;
    Parallel attrs;
    Nested events, links;
} Span;

static int parse_status(Ctx *x, const uint8_t *p, size_t n, Span *s, int depth) {
    if (depth < 0) return fail(&x->err, p, "nested too deeply");
    Cur c = {p, p + n};
    Field f;
    int r;
    while ((r = next_field(&c, &f, depth, &x->err)) > 0) {
        if (f.field == 2 && f.wt == 2) {
            if (take_str(x, &f, &s->status_message) < 0) return -1;
        } else if (f.field == 3 && f.wt == 0)
            s->status_code = (int32_t)(uint32_t)f.v;
    }
    return r;
}

static int parse_span(Ctx *x, const uint8_t *p, size_t n, Span *s, KV *kv, int depth) {
    if (depth < 0) return fail(&x->err, p, "nested too deeply");
    Cur c = {p, p + n};
    Field f;
    int r;
    while ((r = next_field(&c, &f, depth, &x->err)) > 0) {
        switch (f.wt << 8 | f.field) {
        case 2 << 8 | 1: s->trace = f; break;
        case 2 << 8 | 2: s->span = f; break;
        case 2 << 8 | 3: r = take_str(x, &f, &s->trace_state); break;
        case 2 << 8 | 4: s->parent = f; break;
        case 5 << 8 | 16: s->flags = f.v; break;
        case 2 << 8 | 5: r = take_str(x, &f, &s->name); break;
        case 0 << 8 | 6: s->kind = (int32_t)(uint32_t)f.v; break;
        case 1 << 8 | 7: s->start = f.v; break;
        case 1 << 8 | 8: s->end = f.v; break;
        case 2 << 8 | 9:
            r = parse_kv(x, f.data, f.len, kv, depth - 1);
            if (r == 0 && !x->validate_only) r = parallel_add(x, &s->attrs, kv, C_ATTR_KEYS);
            break;
        case 0 << 8 | 10: s->dropped_attrs = (uint32_t)f.v; break;
        case 2 << 8 | 11:
            r = parse_event(x, f.data, f.len, &s->events, &s->latest_event, depth - 1);
            break;
        case 0 << 8 | 12: s->dropped_events = (uint32_t)f.v; break;
        case 2 << 8 | 13: r = parse_link(x, f.data, f.len, &s->links, depth - 1); break;
        case 0 << 8 | 14: s->dropped_links = (uint32_t)f.v; break;
        case 2 << 8 | 15:
            s->has_status = 1;
            r = parse_status(x, f.data, f.len, s, depth - 1);
            break;
        default: break;
        }
        if (r < 0) return -1;
    }
    return r;
}

static int all_zero(const Field *f) {
    for (size_t i = 0; i < f->len; i++)
        if (f->data[i]) return 0;
    return 1;
}

/* The receiver's checks (otlp_columns._bad_spans): ids, values the stores cannot hold,
 * and under "reject" the start time. */
static void check_span(Ctx *x, const Span *s) {
    x->spans++;
    if (s->trace.len != 16 || s->span.len != 8 || (s->parent.len != 0 && s->parent.len != 8) ||
        all_zero(&s->trace) || all_zero(&s->span))
        x->bad_ids++;
    else if (s->start > x->max_time || s->end > x->max_time || s->latest_event > x->max_time ||
             s->kind < 0 || s->kind > x->max_kind ||
             (s->has_status && (s->status_code < 0 || s->status_code > x->max_status)))
        x->bad_values++;
    else if (x->check_time && (s->start < x->lo || s->start > x->hi))
        x->bad_times++;
}

static PyObject *list_or_empty(Ctx *x, PyObject *list) {
    return Py_NewRef(list ? list : x->empty);
}

/* The span's start clamped into [lo, hi] (counted) and its duration. */
static uint64_t span_start(Ctx *x, const Span *s, uint64_t *duration) {
    uint64_t start = s->start;
    *duration = s->end > start ? s->end - start : 0;
    if (start < x->lo || start > x->hi) {
        start = start < x->lo ? x->lo : x->hi;
        x->clamped++;
    }
    return start;
}

static int emit_native_span(Ctx *x, Span *s) {
    NCol *c = x->nat->cols;
    uint64_t duration, start = span_start(x, s, &duration);
    x->nat->rows++;
    if (nat_uint(x, &c[C_TS], start / NS) < 0 || nat_uint(x, &c[C_START], start) < 0 ||
        nat_uint(x, &c[C_DURATION], duration) < 0 ||
        nat_hex(&c[C_TRACE_ID], s->trace.data, s->trace.len) < 0 ||
        nat_hex(&c[C_SPAN_ID], s->span.data, s->span.len) < 0 ||
        nat_hex(&c[C_PARENT], s->parent.data, s->parent.len) < 0 ||
        nat_str(&c[C_TRACE_STATE], s->trace_state.s, s->trace_state.n) < 0 ||
        nat_uint(x, &c[C_FLAGS], s->flags) < 0 ||
        nat_str(&c[C_SPAN_NAME], s->name.s, s->name.n) < 0 ||
        nat_uint(x, &c[C_KIND], (uint64_t)(uint32_t)s->kind) < 0 ||
        nat_uint(x, &c[C_STATUS_CODE], (uint64_t)(uint32_t)s->status_code) < 0 ||
        nat_str(&c[C_STATUS_MESSAGE], s->status_message.s, s->status_message.n) < 0 ||
        nat_uint(x, &c[C_DROPPED_ATTRS], s->dropped_attrs) < 0 ||
        nat_uint(x, &c[C_DROPPED_EVENTS], s->dropped_events) < 0 ||
        nat_uint(x, &c[C_DROPPED_LINKS], s->dropped_links) < 0)
        return -1;
    static const int arrays[] = {C_ATTR_KEYS, C_ATTR_TYPES, C_ATTR_VALUES, C_EV_TIMES,
                                 C_EV_NAMES,  C_EV_ATTRS,   C_EV_DROPPED,  C_LN_TRACE,
                                 C_LN_SPAN,   C_LN_STATE,   C_LN_ATTRS,    C_LN_DROPPED,
                                 C_LN_FLAGS};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
        if (nat_row(&c[arrays[i]]) < 0) return -1;
    return 0;
}

static int emit_span(Ctx *x, Span *s) {
    if (x->nat) return emit_native_span(x, s);
    PyObject **c = x->cols;
    uint64_t duration, start = span_start(x, s, &duration);
    if (append(c[C_TS], PyLong_FromUnsignedLongLong(start / NS)) < 0 ||
        append(c[C_START], PyLong_FromUnsignedLongLong(start)) < 0 ||
        append(c[C_DURATION], PyLong_FromUnsignedLongLong(duration)) < 0 ||
        append(c[C_TRACE_ID], hex_of(s->trace.data, s->trace.len)) < 0 ||
        append(c[C_SPAN_ID], hex_of(s->span.data, s->span.len)) < 0 ||
        append(c[C_PARENT], hex_of(s->parent.data, s->parent.len)) < 0 ||
        append(c[C_TRACE_STATE], str_of(x, &s->trace_state)) < 0 ||
        append(c[C_FLAGS], PyLong_FromUnsignedLongLong(s->flags)) < 0 ||
        append(c[C_SPAN_NAME], str_of(x, &s->name)) < 0 ||
        append(c[C_KIND], PyLong_FromLong(s->kind)) < 0 ||
        append(c[C_STATUS_CODE], PyLong_FromLong(s->status_code)) < 0 ||
        append(c[C_STATUS_MESSAGE], str_of(x, &s->status_message)) < 0 ||
        append(c[C_ATTR_KEYS], list_or_empty(x, s->attrs.keys)) < 0 ||
        append(c[C_ATTR_TYPES], list_or_empty(x, s->attrs.types)) < 0 ||
        append(c[C_ATTR_VALUES], list_or_empty(x, s->attrs.values)) < 0 ||
        append(c[C_DROPPED_ATTRS], PyLong_FromUnsignedLongLong(s->dropped_attrs)) < 0 ||
        append(c[C_DROPPED_EVENTS], PyLong_FromUnsignedLongLong(s->dropped_events)) < 0 ||
        append(c[C_DROPPED_LINKS], PyLong_FromUnsignedLongLong(s->dropped_links)) < 0)
        return -1;
    for (int i = 0; i < 4; i++)
        if (append(c[C_EV_TIMES + i], list_or_empty(x, s->events.lists[i])) < 0) return -1;
    for (int i = 0; i < 6; i++)
        if (append(c[C_LN_TRACE + i], list_or_empty(x, s->links.lists[i])) < 0) return -1;
    return 0;
}

/* ---- scopes, resources, the request ------------------------------------------------ */

typedef struct {
    Chunk *items;
    size_t n, cap;
} Chunks;

static int chunks_add(Chunks *cs, const Field *f) {
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? 2 * cs->cap : 8;
        Chunk *c = PyMem_Realloc(cs->items, cap * sizeof(Chunk));
        if (!c) {
            PyErr_NoMemory();
            return -1;
        }
        cs->items = c;
        cs->cap = cap;
    }
    cs->items[cs->n].p = f->data;
    cs->items[cs->n].n = f->len;
    cs->n++;
    return 0;
}

typedef struct {
    PyObject *service;
    Str service_name; /* in a Native batch (`has_service`) */
    int has_service;
    Parallel attrs;
    uint64_t dropped;
    Str schema_url;
} Resource;

static int parse_resource(Ctx *x, const uint8_t *p, size_t n, Resource *res, KV *kv, int depth) {
    if (depth < 0) return fail(&x->err, p, "nested too deeply");
    Cur c = {p, p + n};
    Field f;
    int r;
    while ((r = next_field(&c, &f, depth, &x->err)) > 0) {
        if (f.field == 1 && f.wt == 2) {
            if (parse_kv(x, f.data, f.len, kv, depth - 1) < 0) return -1;
            if (x->validate_only) continue;
            int is_service = !res->service && !res->has_service && kv->key.n == 12 &&
                             memcmp(kv->key.s, "service.name", 12) == 0;
            if (is_service && x->nat) {
                res->has_service = 1;
                if (kv->value.code == 1)
                    res->service_name = (Str){kv->value.s, kv->value.n, kv->value.ascii};
            } else if (is_service) {
                res->service = kv->value.code == 1 ? cached_str(x, kv->value.s, kv->value.n,
                                                                kv->value.ascii)
                                                   : Py_NewRef(StrEmpty);
                if (!res->service) return -1;
            }
            if (parallel_add(x, &res->attrs, kv, -1) < 0) return -1;
        } else if (f.field == 2 && f.wt == 0) {
            res->dropped = (uint32_t)f.v;
        } else if (f.field == 3 && f.wt == 2) {
            /* entity_refs: EntityRef's four fields are all strings */
            if (depth - 1 < 0) return fail(&x->err, f.data, "nested too deeply");
            Cur e = {f.data, f.data + f.len};
            Field g;
            int re;
            while ((re = next_field(&e, &g, depth - 1, &x->err)) > 0)
                if (g.wt == 2 && g.field >= 1 && g.field <= 4 && check_utf8(x, &g) < 0) return -1;
            if (re < 0) return -1;
        }
    }
    return r;
}

/* The spans of one scope in a Native batch, then their resource and scope columns. */
static int emit_native_scope(Ctx *x, const Chunks *spans, const Resource *res, KV *kv,
                             const Str *name, const Str *version, Buf *attrs, const Str *schema,
                             int depth) {
    int r = 0;
    for (size_t i = 0; i < spans->n && r == 0; i++) {
        Span s;
        memset(&s, 0, sizeof s);
        s.trace_state = s.name = s.status_message = (Str){(const uint8_t *)"", 0, 1};
        r = parse_span(x, spans->items[i].p, spans->items[i].n, &s, kv, depth - 1);
        if (r == 0) r = emit_span(x, &s);
    }
    if (r < 0 || (attrs && json_close(attrs) < 0)) return -1;
    NCol *c = x->nat->cols;
    for (size_t i = 0; i < spans->n; i++)
        if (nat_str(&c[C_SERVICE], res->service_name.s, res->service_name.n) < 0 ||
            nat_str(&c[C_SCOPE_NAME], name->s, name->n) < 0 ||
            nat_str(&c[C_SCOPE_VERSION], version->s, version->n) < 0 ||
            held_row(x, &res->attrs.held, &c[C_RES_KEYS]) < 0 ||
            nat_uint(x, &c[C_RES_DROPPED], res->dropped) < 0 ||
            nat_str(&c[C_SCOPE_ATTRS], attrs ? (const uint8_t *)attrs->p : NULL,
                    attrs ? attrs->n : 0) < 0 ||
            nat_str(&c[C_RES_SCHEMA], res->schema_url.s, res->schema_url.n) < 0 ||
            nat_str(&c[C_SCOPE_SCHEMA], schema->s, schema->n) < 0)
            return -1;
    return 0;
}

static int parse_scope_spans(Ctx *x, const uint8_t *p, size_t n, Resource *res, KV *kv,
                             int depth) {
    if (depth < 0) return fail(&x->err, p, "nested too deeply");
    Chunks scopes = {0}, spans = {0};
    Str schema_url = {(const uint8_t *)"", 0, 1};
    Str name = {(const uint8_t *)"", 0, 1}, version = {(const uint8_t *)"", 0, 1};
    Buf attrs = {0};
    int has_attrs = 0;
    PyObject *consts[8] = {0};
    Cur c = {p, p + n};
    Field f;
    int r;
    while ((r = next_field(&c, &f, depth, &x->err)) > 0) {
        if (f.wt != 2) continue;
        if (f.field == 1) r = chunks_add(&scopes, &f);
        else if (f.field == 2) r = chunks_add(&spans, &f);
        else if (f.field == 3) r = take_str(x, &f, &schema_url);
        if (r < 0) goto done;
    }
    if (r < 0) goto done;
    /* the scope, its occurrences merged */
    for (size_t i = 0; i < scopes.n && r == 0; i++) {
        if (depth - 1 < 0) {
            r = fail(&x->err, scopes.items[i].p, "nested too deeply");
            break;
        }
        Cur s = {scopes.items[i].p, scopes.items[i].p + scopes.items[i].n};
        while ((r = next_field(&s, &f, depth - 1, &x->err)) > 0) {
            if (f.field == 1 && f.wt == 2) r = take_str(x, &f, &name);
            else if (f.field == 2 && f.wt == 2) r = take_str(x, &f, &version);
            else if (f.field == 3 && f.wt == 2) {
                /* Python encodes a scope's attributes only when it has spans */
                r = parse_kv(x, f.data, f.len, kv, depth - 2);
                if (r == 0 && spans.n && !x->validate_only) r = json_add(x, &attrs, kv);
                has_attrs = 1;
            }
            if (r < 0) break;
        }
    }
    if (r < 0) goto done;
    if (spans.n == 0) goto done;
    if (x->nat) {
        r = emit_native_scope(x, &spans, res, kv, &name, &version, has_attrs ? &attrs : NULL,
                              &schema_url, depth);
        goto done;
    }
    if (x->validate_only) {
        for (size_t i = 0; i < spans.n && r == 0; i++) {
            Span s;
            memset(&s, 0, sizeof s);
            r = parse_span(x, spans.items[i].p, spans.items[i].n, &s, kv, depth - 1);
            if (r == 0) check_span(x, &s);
        }
        goto done;
    }
    /* the spans */
    for (size_t i = 0; i < spans.n; i++) {
        Span s;
        memset(&s, 0, sizeof s);
        s.trace_state = s.name = s.status_message = (Str){(const uint8_t *)"", 0, 1};
        r = parse_span(x, spans.items[i].p, spans.items[i].n, &s, kv, depth - 1);
        if (r == 0) r = emit_span(x, &s);
        parallel_clear(&s.attrs);
        nested_clear(&s.events, 4);
        nested_clear(&s.links, 6);
        if (r < 0) goto done;
    }
    {
        Py_ssize_t count = (Py_ssize_t)spans.n;
        consts[0] = str_of(x, &name);
        consts[1] = str_of(x, &version);
        consts[2] = has_attrs ? json_finish(&attrs) : Py_NewRef(StrEmpty);
        consts[3] = PyLong_FromUnsignedLongLong(res->dropped);
        consts[4] = str_of(x, &res->schema_url);
        consts[5] = str_of(x, &schema_url);
        for (int i = 0; i < 6; i++)
            if (!consts[i]) {
                r = -1;
                goto done;
            }
        PyObject **col = x->cols;
        if (append_n(col[C_SERVICE], res->service ? res->service : StrEmpty, count) < 0 ||
            append_n(col[C_SCOPE_NAME], consts[0], count) < 0 ||
            append_n(col[C_SCOPE_VERSION], consts[1], count) < 0 ||
            append_n(col[C_RES_KEYS], res->attrs.keys ? res->attrs.keys : x->empty, count) < 0 ||
            append_n(col[C_RES_TYPES], res->attrs.types ? res->attrs.types : x->empty, count) <
                0 ||
            append_n(col[C_RES_VALUES], res->attrs.values ? res->attrs.values : x->empty,
                     count) < 0 ||
            append_n(col[C_RES_DROPPED], consts[3], count) < 0 ||
            append_n(col[C_SCOPE_ATTRS], consts[2], count) < 0 ||
            append_n(col[C_RES_SCHEMA], consts[4], count) < 0 ||
            append_n(col[C_SCOPE_SCHEMA], consts[5], count) < 0)
            r = -1;
    }
done:
    for (int i = 0; i < 8; i++) Py_XDECREF(consts[i]);
    PyMem_Free(scopes.items);
    PyMem_Free(spans.items);
    PyMem_Free(attrs.p);
    return r;
}

static int parse_resource_spans(Ctx *x, const uint8_t *p, size_t n, KV *kv, int depth) {
    if (depth < 0) return fail(&x->err, p, "nested too deeply");
    Chunks resources = {0}, scopes = {0};
    Resource res;
    memset(&res, 0, sizeof res);
    res.schema_url = (Str){(const uint8_t *)"", 0, 1};
    Cur c = {p, p + n};
    Field f;
    int r;
    while ((r = next_field(&c, &f, depth, &x->err)) > 0) {
        if (f.wt != 2) continue;
        if (f.field == 1) r = chunks_add(&resources, &f);
        else if (f.field == 2) r = chunks_add(&scopes, &f);
        else if (f.field == 3) r = take_str(x, &f, &res.schema_url);
        if (r < 0) break;
    }
    for (size_t i = 0; i < resources.n && r == 0; i++)
        r = parse_resource(x, resources.items[i].p, resources.items[i].n, &res, kv, depth - 1);
    for (size_t i = 0; i < scopes.n && r == 0; i++)
        r = parse_scope_spans(x, scopes.items[i].p, scopes.items[i].n, &res, kv, depth - 1);
    Py_XDECREF(res.service);
    parallel_clear(&res.attrs);
    PyMem_Free(resources.items);
    PyMem_Free(scopes.items);
    return r;
}

static int parse_request(Ctx *x, const uint8_t *p, size_t n) {
    KV kv;
    memset(&kv, 0, sizeof kv);
    Cur c = {p, p + n};
    Field f;
    int r;
    while ((r = next_field(&c, &f, MAX_DEPTH, &x->err)) > 0) {
        if (f.field == 1 && f.wt == 2)
            if (parse_resource_spans(x, f.data, f.len, &kv, MAX_DEPTH - 1) < 0) {
                r = -1;
                break;
            }
    }
    PyMem_Free(kv.value.chunks);
    return r;
}

/* ---- the module ------------------------------------------------------------------------ */

PyDoc_STRVAR(decode_traces_doc,
             "decode_traces(payload, lo, hi, limit, empty, cache=None, into=None)\n"
             "    -> (columns, truncated, clamped)\n\n"
             "The spans of one ExportTraceServiceRequest as a tuple of new lists, one per\n"
             "SPAN_COLUMNS entry, or appended to the lists of the tuple `into` (none on\n"
             "DecodeError); start times clamped into [lo, hi]; string and bytes\n"
             "attribute values cut to `limit`. `empty` is the list shared by rows without\n"
             "values; `cache` (from new_cache()) shares short strings across the requests\n"
             "of a batch. Raises DecodeError on malformed input. With a Native batch\n"
             "(new_native) as `into`, the values go there and `columns` is None.");

static PyObject *decode_error(Ctx *x) {
    if (x->err.error && !PyErr_Occurred())
        PyErr_Format(DecodeError, "cannot decode ExportTraceServiceRequest: %s at byte %zd",
                     x->err.error, (Py_ssize_t)(x->err.at - x->err.base));
    else if (!PyErr_Occurred())
        PyErr_SetString(DecodeError, "cannot decode ExportTraceServiceRequest");
    return NULL;
}

/* decode_traces into a Native batch: (None, truncated, clamped). */
static PyObject *decode_native(Py_buffer *view, uint64_t lo, uint64_t hi, Py_ssize_t limit,
                               Native *nat) {
    Ctx *x = PyMem_Calloc(1, sizeof(Ctx));
    if (!x) return PyErr_NoMemory();
    x->err.base = view->buf;
    x->lo = lo;
    x->hi = hi;
    x->limit = limit < 0 ? 0 : limit;
    x->nat = nat;
    if (nat->taken) {
        PyMem_Free(x);
        PyErr_SetString(PyExc_RuntimeError, "the Native batch was already taken");
        return NULL;
    }
    NMark marks[NCOLUMNS];
    uint64_t rows = nat->rows;
    for (int i = 0; i < NCOLUMNS; i++) {
        marks[i] = (NMark){nat->cols[i].data.n, nat->cols[i].offsets.n, nat->cols[i].items,
                           nat->cols[i].used};
        nat->cols[i].last = NULL; /* the last request's bytes are gone */
    }
    PyObject *result = NULL;
    if (parse_request(x, view->buf, (size_t)view->len) == 0) {
        result = Py_BuildValue("(Oll)", Py_None, x->truncated, x->clamped);
    } else {
        if (x->overflow && !PyErr_Occurred())
            PyErr_Format(PyExc_OverflowError,
                         "a value of the request does not fit its column's type in the table");
        decode_error(x);
        /* a refused request leaves no rows behind (its new dictionary keys stay unused) */
        nat->rows = rows;
        for (int i = 0; i < NCOLUMNS; i++) {
            nat->cols[i].data.n = marks[i].data;
            nat->cols[i].offsets.n = marks[i].offsets;
            nat->cols[i].items = marks[i].items;
            nat->cols[i].used = marks[i].used;
        }
    }
    PyMem_Free(x);
    return result;
}

static PyObject *decode_traces(PyObject *self, PyObject *args) {
    Py_buffer view;
    unsigned long long lo, hi;
    Py_ssize_t limit;
    PyObject *empty, *cache = Py_None;
    (void)self;
    if (!DecodeError || !ComplexValue) {
        PyErr_SetString(PyExc_RuntimeError, "call init() first");
        return NULL;
    }
    PyObject *into = Py_None;
    if (!PyArg_ParseTuple(args, "y*KKnO!|OO", &view, &lo, &hi, &limit, &PyList_Type, &empty,
                          &cache, &into))
        return NULL;
    if (PyCapsule_IsValid(into, NATIVE_CAPSULE)) {
        PyObject *result = decode_native(&view, lo, hi, limit, PyCapsule_GetPointer(into, NATIVE_CAPSULE));
        PyBuffer_Release(&view);
        return result;
    }
    BatchCache *batch = NULL;
    if (cache != Py_None && !(batch = PyCapsule_GetPointer(cache, BATCH_CACHE))) {
        PyBuffer_Release(&view);
        return NULL;
    }
    if (into != Py_None && !(PyTuple_CheckExact(into) && PyTuple_GET_SIZE(into) == NCOLUMNS)) {
        PyErr_Format(PyExc_TypeError, "into must be a tuple of %d lists", NCOLUMNS);
        PyBuffer_Release(&view);
        return NULL;
    }
    for (int i = 0; into != Py_None && i < NCOLUMNS; i++)
        if (!PyList_CheckExact(PyTuple_GET_ITEM(into, i))) {
            PyErr_Format(PyExc_TypeError, "into must be a tuple of %d lists", NCOLUMNS);
            PyBuffer_Release(&view);
            return NULL;
        }
    Ctx *x = PyMem_Calloc(1, sizeof(Ctx));
    if (!x) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    x->err.base = view.buf;
    x->lo = lo;
    x->hi = hi;
    x->limit = limit < 0 ? 0 : limit;
    x->empty = empty;
    x->batch = batch;
    PyObject *result = NULL;
    int ok = 1;
    Py_ssize_t had[NCOLUMNS];
    /* The columns hold only str, int and untracked row lists, so they cannot be part of a
     * cycle: untracked, the collector's passes skip the batch's millions of values. */
    for (int i = 0; i < NCOLUMNS; i++) {
        x->cols[i] = into == Py_None ? PyList_New(0) : Py_NewRef(PyTuple_GET_ITEM(into, i));
        if (!x->cols[i]) {
            ok = 0;
            continue;
        }
        had[i] = PyList_GET_SIZE(x->cols[i]);
        PyObject_GC_UnTrack(x->cols[i]);
    }
    if (ok && parse_request(x, view.buf, (size_t)view.len) == 0) {
        PyObject *cols = into == Py_None ? PyTuple_New(NCOLUMNS) : Py_NewRef(into);
        if (cols && into == Py_None) {
            for (int i = 0; i < NCOLUMNS; i++) {
                PyTuple_SET_ITEM(cols, i, x->cols[i]);
                x->cols[i] = NULL;
            }
        }
        if (cols) result = Py_BuildValue("(Nll)", cols, x->truncated, x->clamped);
    } else {
        decode_error(x);
    }
    if (!result && ok && into != Py_None) { /* a refused request leaves no rows behind */
        PyObject *type, *value, *trace;
        PyErr_Fetch(&type, &value, &trace);
        for (int i = 0; i < NCOLUMNS; i++)
            if (PyList_SetSlice(x->cols[i], had[i], PY_SSIZE_T_MAX, NULL) < 0) PyErr_Clear();
        PyErr_Restore(type, value, trace);
    }
    for (int i = 0; i < NCOLUMNS; i++) Py_XDECREF(x->cols[i]);
    for (int i = 0; i < CACHE_SLOTS; i++) Py_XDECREF(x->cache[i].str);
    PyMem_Free(x);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(validate_traces_doc,
             "validate_traces(payload, lo, hi, check_time, max_time, max_kind, max_status)\n"
             "    -> (spans, bad_ids, bad_values, bad_times)\n\n"
             "Check one ExportTraceServiceRequest as protobuf would (DecodeError if it\n"
             "is malformed) and count its spans: with invalid ids; else with a time past\n"
             "max_time, a kind or status code outside 0..max; else (when check_time)\n"
             "starting outside [lo, hi]. Builds no objects.");

static PyObject *validate_traces(PyObject *self, PyObject *args) {
    Py_buffer view;
    unsigned long long lo, hi;
    int check_time, max_kind, max_status;
    unsigned long long max_time;
    (void)self;
    if (!DecodeError) {
        PyErr_SetString(PyExc_RuntimeError, "call init() first");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*KKpKii", &view, &lo, &hi, &check_time, &max_time, &max_kind,
                          &max_status))
        return NULL;
    Ctx *x = PyMem_Calloc(1, sizeof(Ctx));
    if (!x) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    x->err.base = view.buf;
    x->lo = lo;
    x->hi = hi;
    x->validate_only = 1;
    x->check_time = check_time;
    x->max_time = max_time;
    x->max_kind = max_kind;
    x->max_status = max_status;
    PyObject *result = NULL;
    int r;
    r = parse_request(x, view.buf, (size_t)view.len);
    if (r == 0)
        result = Py_BuildValue("(llll)", x->spans, x->bad_ids, x->bad_values, x->bad_times);
    else if (!PyErr_Occurred())
        PyErr_Format(DecodeError, "cannot decode ExportTraceServiceRequest: %s at byte %zd",
                     x->err.error ? x->err.error : "malformed",
                     (Py_ssize_t)(x->err.at - x->err.base));
    PyMem_Free(x);
    PyBuffer_Release(&view);
    return result;
}

/* ---- ClickHouse Native columns ---------------------------------------------------------
 *
 * encode_column(code, items) -> bytes: one column of an INSERT block in the Native wire
 * layout, byte for byte what clickhouse-driver's column writer puts after the column's
 * name and type (its state prefix, then its data), without a Python object per value.
 * ``code`` is a scalar type (N_*), plus N_ARRAY for Array(T). Returns None when an item
 * is not what this encoder takes as is (not an exact str/int/float, a list or tuple
 * for arrays, an int outside the type's range, a str that is not UTF-8): the caller
 * then hands the column to the driver, which converts it or raises its own error.
 */

/* 1 written, 0 not this encoder's item (no exception set), -1 error. */
static int put_str(Buf *b, PyObject *item) {
    if (!PyUnicode_CheckExact(item)) return 0;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(item, &n);
    if (!s) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
        PyErr_Clear();
        return 0;
    }
    if (put_varint(b, (uint64_t)n) < 0 || buf_put(b, s, (size_t)n) < 0) return -1;
    return 1;
}

static int put_int(Buf *b, PyObject *item, int code) {
    static const int widths[] = {0, 1, 2, 4, 8, 1, 2, 4, 8};
    if (!PyLong_Check(item)) return 0;
    int width = widths[code];
    if (code <= N_U64) {
        unsigned long long v = PyLong_AsUnsignedLongLong(item);
        if (v == (unsigned long long)-1 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return -1;
            PyErr_Clear();
            return 0;
        }
        if (width < 8 && v >> (8 * width)) return 0;
        return put_uint(b, v, width) < 0 ? -1 : 1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(item, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (overflow) return 0;
    if (width < 8) {
        long long lim = 1LL << (8 * width - 1);
        if (v < -lim || v >= lim) return 0;
    }
    return put_uint(b, (uint64_t)v, width) < 0 ? -1 : 1;
}

#define LC_SEEN 256 /* the last key index of recently seen str objects, by address */

static int put_lc_strings(Buf *b, PyObject **items, Py_ssize_t n) {
    if (n == 0) return 1; /* the driver writes nothing for no items */
    PyObject *index = PyDict_New();
    PyObject *keys = PyList_New(0);
    uint64_t *rows = PyMem_Malloc(sizeof(uint64_t) * (size_t)n);
    /* The decoder shares one str per repeated key, so most lookups are by address; the
     * items are borrowed and alive throughout, so an address cannot change meaning. */
    struct {
        PyObject *str;
        uint64_t key;
    } seen[LC_SEEN] = {{0}};
    int r = -1;
    if (!index || !keys || !rows) {
        if (!rows) PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        size_t slot = ((uintptr_t)items[i] >> 4) & (LC_SEEN - 1);
        if (seen[slot].str == items[i]) {
            rows[i] = seen[slot].key;
            continue;
        }
        if (!PyUnicode_CheckExact(items[i])) {
            r = 0;
            goto done;
        }
        PyObject *at = PyDict_GetItemWithError(index, items[i]);
        if (at) {
            rows[i] = (uint64_t)PyLong_AsUnsignedLongLong(at);
        } else {
            if (PyErr_Occurred()) goto done;
            Py_ssize_t k = PyList_GET_SIZE(keys);
            PyObject *key = PyLong_FromSsize_t(k);
            if (!key) goto done;
            int bad =
                PyDict_SetItem(index, items[i], key) < 0 || PyList_Append(keys, items[i]) < 0;
            Py_DECREF(key);
            if (bad) goto done;
            rows[i] = (uint64_t)k;
        }
        seen[slot].str = items[i];
        seen[slot].key = rows[i];
    }
    Py_ssize_t nkeys = PyList_GET_SIZE(keys);
    int width = put_lc_header(b, (uint64_t)nkeys);
    if (width < 0) goto done;
    for (Py_ssize_t k = 0; k < nkeys; k++) {
        int w = put_str(b, PyList_GET_ITEM(keys, k));
        if (w <= 0) {
            r = w;
            goto done;
        }
    }
    if (put_u64(b, (uint64_t)n) < 0) goto done;
    for (Py_ssize_t i = 0; i < n; i++)
        if (put_uint(b, rows[i], width) < 0) goto done;
    r = 1;
done:
    Py_XDECREF(index);
    Py_XDECREF(keys);
    PyMem_Free(rows);
    return r;
}

static int put_scalars(Buf *b, int code, PyObject **items, Py_ssize_t n) {
    if (code == N_LC_STRING) return put_lc_strings(b, items, n);
    for (Py_ssize_t i = 0; i < n; i++) {
        int w;
        if (code == N_STRING) {
            w = put_str(b, items[i]);
        } else if (code == N_F64) {
            if (!PyFloat_CheckExact(items[i])) return 0;
            double d = PyFloat_AS_DOUBLE(items[i]);
            uint64_t bits;
            memcpy(&bits, &d, 8);
            w = put_u64(b, bits) < 0 ? -1 : 1;
        } else {
            w = put_int(b, items[i], code);
        }
        if (w <= 0) return w;
    }
    return 1;
}

/* Array(T): T's state prefix, each row's end offset, then every row's items as one T. */
static int put_arrays(Buf *b, int code, PyObject **rows, Py_ssize_t n) {
    if (code == N_LC_STRING && put_u64(b, 1) < 0) return -1;
    uint64_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyList_CheckExact(rows[i]) && !PyTuple_CheckExact(rows[i])) return 0;
        total += (uint64_t)PySequence_Fast_GET_SIZE(rows[i]);
        if (put_u64(b, total) < 0) return -1;
    }
    PyObject **flat = PyMem_Malloc(sizeof(PyObject *) * (total ? (size_t)total : 1));
    if (!flat) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t m = PySequence_Fast_GET_SIZE(rows[i]);
        if (m) memcpy(flat + at, PySequence_Fast_ITEMS(rows[i]), sizeof(PyObject *) * (size_t)m);
        at += m;
    }
    int r = put_scalars(b, code, flat, at); /* borrowed: nothing runs Python code meanwhile */
    PyMem_Free(flat);
    return r;
}

static const char encode_column_doc[] =
    "encode_column(code, items: list) -> bytes | None: one Native column (state prefix and "
    "data) as clickhouse-driver writes it; None when an item needs the driver's conversion.";

static PyObject *encode_column(PyObject *self, PyObject *args) {
    int code;
    PyObject *items;
    (void)self;
    if (!PyArg_ParseTuple(args, "iO!", &code, &PyList_Type, &items)) return NULL;
    int scalar = code & ~N_ARRAY;
    if (scalar < N_U8 || scalar > N_LC_STRING || (code & ~(N_ARRAY | 0xff))) {
        PyErr_Format(PyExc_ValueError, "unknown column code %d", code);
        return NULL;
    }
    Buf b = {0};
    Py_ssize_t n = PyList_GET_SIZE(items);
    PyObject **values = PySequence_Fast_ITEMS(items);
    int r;
    if (code & N_ARRAY) {
        r = put_arrays(&b, scalar, values, n);
    } else {
        r = (scalar != N_LC_STRING || put_u64(&b, 1) == 0) ? put_scalars(&b, scalar, values, n) : -1;
    }
    PyObject *out = NULL;
    if (r > 0)
        out = PyBytes_FromStringAndSize(b.p ? b.p : "", (Py_ssize_t)b.n);
    else if (r == 0)
        out = Py_NewRef(Py_None);
    PyMem_Free(b.p);
    return out;
}

static PyObject *new_native(PyObject *self, PyObject *codes) {
    (void)self;
    if (!PyTuple_Check(codes) || PyTuple_GET_SIZE(codes) != NCOLUMNS ||
        strlen(NATIVE_SHAPE) != NCOLUMNS) {
        PyErr_Format(PyExc_TypeError, "new_native() takes a tuple of %d column codes", NCOLUMNS);
        return NULL;
    }
    static const int widths[] = {0, 1, 2, 4, 8};
    Native *nat = PyMem_Calloc(1, sizeof(Native));
    if (!nat) return PyErr_NoMemory();
    for (int i = 0; i < NCOLUMNS; i++) {
        long code = PyLong_AsLong(PyTuple_GET_ITEM(codes, i));
        char shape = NATIVE_SHAPE[i];
        int array = shape >= 'A' && shape <= 'Z', scalar = (int)(code & ~N_ARRAY);
        shape = (char)(shape | 0x20);
        int fits = code >= 0 && (code & ~(N_ARRAY | 0xff)) == 0 &&
                   !!(code & N_ARRAY) == array &&
                   (shape == 'i'   ? scalar >= N_U8 && scalar <= N_U64
                    : shape == 'h' ? scalar == N_STRING
                                   : scalar == N_STRING || scalar == N_LC_STRING);
        if (!fits) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError,
                             "column %d: code %ld is not a type the decoder writes there", i, code);
            native_release(nat); /* the columns before it have their room reserved */
            return NULL;
        }
        nat->cols[i].code = (int)code;
        nat->cols[i].width = shape == 'i' ? widths[scalar] : 0;
        if (buf_reserve(&nat->cols[i].data, native_reserve[i][0]) < 0 ||
            buf_reserve(&nat->cols[i].offsets, native_reserve[i][1]) < 0) {
            native_release(nat);
            return NULL;
        }
    }
    PyObject *capsule = PyCapsule_New(nat, NATIVE_CAPSULE, native_free);
    if (!capsule) native_release(nat);
    return capsule;
}

static Native *native_of(PyObject *capsule) {
    return PyCapsule_GetPointer(capsule, NATIVE_CAPSULE);
}

static PyObject *native_rows(PyObject *self, PyObject *capsule) {
    (void)self;
    Native *nat = native_of(capsule);
    return nat ? PyLong_FromUnsignedLongLong(nat->rows) : NULL;
}

/* Per column: whether it holds only its type's default (0, '', or for an array column,
 * empty arrays), so an INSERT may leave it out and the server fill it in. */
static PyObject *native_defaults(PyObject *self, PyObject *capsule) {
    (void)self;
    Native *nat = native_of(capsule);
    if (!nat) return NULL;
    if (nat->taken) {
        PyErr_SetString(PyExc_RuntimeError, "the Native batch was already taken");
        return NULL;
    }
    PyObject *flags = PyTuple_New(NCOLUMNS);
    for (int i = 0; flags && i < NCOLUMNS; i++) {
        const NCol *c = &nat->cols[i];
        int only = (c->code & N_ARRAY) ? c->items == 0 : !c->used;
        PyTuple_SET_ITEM(flags, i, Py_NewRef(only ? Py_True : Py_False));
    }
    return flags;
}

static PyObject *native_column(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *capsule;
    int i, take = 0;
    if (!PyArg_ParseTuple(args, "Oi|p", &capsule, &i, &take)) return NULL;
    Native *nat = native_of(capsule);
    if (!nat) return NULL;
    if (i < 0 || i >= NCOLUMNS) {
        PyErr_Format(PyExc_IndexError, "column %d out of range", i);
        return NULL;
    }
    if (nat->cols[i].taken) {
        PyErr_Format(PyExc_RuntimeError, "column %d was already taken", i);
        return NULL;
    }
    PyObject *bytes = ncol_bytes(&nat->cols[i]);
    if (bytes && take) { /* its memory goes now, not with the batch */
        NCol *c = &nat->cols[i];
        native_reserve[i][0] = c->data.n;
        native_reserve[i][1] = c->offsets.n;
        int code = c->code, width = c->width;
        ncol_clear(c);
        c->code = code;
        c->width = width;
        c->taken = nat->taken = 1;
    }
    return bytes;
}

static PyObject *untrack(PyObject *self, PyObject *list) {
    (void)self;
    if (!PyList_Check(list)) {
        PyErr_SetString(PyExc_TypeError, "untrack() takes a list");
        return NULL;
    }
    PyObject_GC_UnTrack(list);
    Py_RETURN_NONE;
}

static PyObject *init(PyObject *self, PyObject *args) {
    PyObject *error, *complex_value;
    (void)self;
    if (!PyArg_ParseTuple(args, "OO", &error, &complex_value)) return NULL;
    if (!PyCallable_Check(complex_value)) {
        PyErr_SetString(PyExc_TypeError, "complex_value must be callable");
        return NULL;
    }
    Py_XSETREF(DecodeError, Py_NewRef(error));
    Py_XSETREF(ComplexValue, Py_NewRef(complex_value));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"decode_traces", decode_traces, METH_VARARGS, decode_traces_doc},
    {"validate_traces", validate_traces, METH_VARARGS, validate_traces_doc},
    {"encode_column", encode_column, METH_VARARGS, encode_column_doc},
    {"untrack", untrack, METH_O,
     "untrack(list): the garbage collector stops visiting the list (one nothing else "
     "refers to, so no cycle can pass through it) and its values."},
    {"new_native", new_native, METH_O,
     "new_native(codes) -> a Native batch for decode_traces: one encode_column code per "
     "SPAN_COLUMNS entry (the table's types); ValueError for a type the decoder cannot write."},
    {"native_rows", native_rows, METH_O, "native_rows(batch) -> the rows decoded into it."},
    {"native_defaults", native_defaults, METH_O,
     "native_defaults(batch) -> per column, True when it holds only its type's default "
     "(0, '', empty arrays): an INSERT may leave it out. Before any column is taken."},
    {"native_column", native_column, METH_VARARGS,
     "native_column(batch, i, take=False) -> column i's Native bytes, as encode_column "
     "gives them; `take` frees the column's buffers (the batch takes no more rows)."},
    {"new_cache", new_cache, METH_NOARGS,
     "new_cache() -> a string cache for decode_traces, for the requests of one batch."},
    {"init", init, METH_VARARGS,
     "init(DecodeError, complex_value): the exception to raise and the array/kvlist "
     "text callback (code, bytes) -> str."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_otlpdecode",
                                    "OTLP trace request bytes to span columns.", -1, methods};

PyMODINIT_FUNC PyInit__otlpdecode(void) {
    for (int i = 0; i < 9; i++)
        if (!(TypeCodes[i] = PyLong_FromLong(i))) return NULL;
    StrTrue = PyUnicode_InternFromString("true");
    StrFalse = PyUnicode_InternFromString("false");
    StrEmpty = PyUnicode_InternFromString("");
    if (!StrTrue || !StrFalse || !StrEmpty) return NULL;
    return PyModule_Create(&module);
}
