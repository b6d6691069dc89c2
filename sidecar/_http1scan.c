/*
 * sidecar._http1scan: whole small HTTP/1.1 heads recognised in one pass.
 *
 * Most service traffic is a request with no body or a small Content-Length one,
 * answered by one response with a Content-Length body, each arriving in a single read. For those the sidecar
 * needs only a handful of facts (method, target, Host, User-Agent, the incoming
 * traceparent; status and body length) and may forward the bytes almost untouched,
 * so this scanner checks the RFC 9112 grammar and proves that no field but the
 * trace context needs rewriting. Any
 * other message makes it return None and the caller takes the full httptools
 * path, which stays the reference behaviour (tests/sidecar/test_sidecar_fastpath.py
 * checks the two agree).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <structmember.h>

#include "lane_record.h"

static unsigned char TCHAR[256];
static unsigned char FIELD_VCHAR[256]; /* HTAB, SP, VCHAR, obs-text */

enum { F_OTHER, F_SPECIAL, F_HOST, F_USER_AGENT, F_CONTENT_LENGTH, F_CONNECTION, F_TRACEPARENT,
       F_PEER };

typedef struct {
    const unsigned char *name;
    Py_ssize_t name_len;
    const unsigned char *value;
    Py_ssize_t value_len;
} Field;

static int
equals_lower(const unsigned char *s, Py_ssize_t n, const char *lower)
{
    Py_ssize_t i;
    if ((Py_ssize_t)strlen(lower) != n)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c += 'a' - 'A';
        if (c != (unsigned char)lower[i])
            return 0;
    }
    return 1;
}

/* Fields the full path rewrites, drops or must act on: RFC 9110 7.6.1 hop-by-hop,
   chunked framing, Expect, and trace context other than one version-00 traceparent. */
static const char *const SPECIAL_REQUEST[] = {
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "proxy-authorization", "proxy-authenticate", "expect", "tracestate", "b3", NULL};
static const char *const SPECIAL_RESPONSE[] = {
    "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
    "proxy-authorization", "proxy-authenticate", NULL};

static int
listed(const Field *f, const char *const *names)
{
    for (; *names != NULL; names++)
        if (equals_lower(f->name, f->name_len, *names))
            return 1;
    return 0;
}

static int
request_field(const Field *f)
{
    if (equals_lower(f->name, f->name_len, "host"))
        return F_HOST;
    if (equals_lower(f->name, f->name_len, "user-agent"))
        return F_USER_AGENT;
    if (equals_lower(f->name, f->name_len, "content-length"))
        return F_CONTENT_LENGTH;
    if (equals_lower(f->name, f->name_len, "traceparent"))
        return F_TRACEPARENT;
    if (equals_lower(f->name, f->name_len, "x-sidetrace-peer"))
        return F_PEER;
    if (f->name_len >= 5 && equals_lower(f->name, 5, "x-b3-"))
        return F_SPECIAL;
    return listed(f, SPECIAL_REQUEST) ? F_SPECIAL : F_OTHER;
}

static int
response_field(const Field *f)
{
    if (equals_lower(f->name, f->name_len, "content-length"))
        return F_CONTENT_LENGTH;
    if (equals_lower(f->name, f->name_len, "connection"))
        return F_CONNECTION;
    return listed(f, SPECIAL_RESPONSE) ? F_SPECIAL : F_OTHER;
}

/* One `name ":" OWS value OWS CRLF` line at p; the position after it, or NULL. */
static const unsigned char *
field_line(const unsigned char *p, const unsigned char *end, Field *f)
{
    const unsigned char *start = p, *value, *value_end;
    while (p < end && TCHAR[*p])
        p++;
    if (p == start || p >= end || *p != ':')
        return NULL;
    f->name = start;
    f->name_len = p - start;
    p++;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    value = p;
    while (p < end && FIELD_VCHAR[*p])
        p++;
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
        return NULL;
    value_end = p;
    while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
        value_end--;
    f->value = value;
    f->value_len = value_end - value;
    return p + 2;
}

static int
head_ends_at(const unsigned char *p, const unsigned char *end)
{
    return end - p >= 2 && p[0] == '\r' && p[1] == '\n';
}

static int
known_method(const unsigned char *m, Py_ssize_t n)
{
    static const char *const methods[] = {"GET",   "HEAD", "DELETE", "OPTIONS",
                                          "POST",  "PUT",  "PATCH",  NULL};
    const char *const *known;
    for (known = methods; *known != NULL; known++)
        if ((Py_ssize_t)strlen(*known) == n && memcmp(m, *known, n) == 0)
            return 1;
    return 0;
}

/* A Content-Length value (RFC 9110 8.6): 1 to 15 digits; longer ones are left to the
   full path. 1 with *length set, else 0. */
static int
content_length(const Field *f, Py_ssize_t *length)
{
    Py_ssize_t i, n = 0;
    if (f->value_len < 1 || f->value_len > 15)
        return 0;
    for (i = 0; i < f->value_len; i++) {
        if (f->value[i] < '0' || f->value[i] > '9')
            return 0;
        n = n * 10 + (f->value[i] - '0');
    }
    *length = n;
    return 1;
}

typedef struct {
    const unsigned char *method, *target, *host, *agent, *parent, *peer;
    Py_ssize_t method_len, target_len, fields_start, fields_end, host_len, agent_len, peer_len;
    Py_ssize_t size; /* the whole request: head, then its Content-Length body */
    Py_ssize_t cut_start[2], cut_end[2]; /* the context lines, not forwarded */
    int cuts;
} Request;

static int
lower_hex(const unsigned char *s, Py_ssize_t n, int *all_zero)
{
    Py_ssize_t i;
    *all_zero = 1;
    for (i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
        if (s[i] != '0')
            *all_zero = 0;
    }
    return 1;
}

/* A version-00 traceparent value the full path would continue (W3C Trace Context:
   exactly 55 characters, lowercase hex, trace and parent ids not all zero). Other
   versions and invalid values are left to the full path and its parser. */
static int
continuable_traceparent(const unsigned char *v, Py_ssize_t n)
{
    int zero_trace, zero_parent, zero_flags;
    return n == 55 && v[0] == '0' && v[1] == '0' && v[2] == '-' && v[35] == '-' &&
           v[52] == '-' && lower_hex(v + 3, 32, &zero_trace) &&
           lower_hex(v + 36, 16, &zero_parent) && lower_hex(v + 53, 2, &zero_flags) &&
           !zero_trace && !zero_parent;
}

/* 1 when `buf[0:size]` is exactly one simple request (see scan_request), else 0. */
static int
scan(const unsigned char *buf, Py_ssize_t size, Request *r)
{
    const unsigned char *p, *end = buf + size;
    const unsigned char *line;
    Field f;
    Py_ssize_t body_length = -1;
    int hosts = 0, agents = 0, parents = 0, peers = 0;

    r->size = size;
    p = r->method = buf;
    while (p < end && *p >= 'A' && *p <= 'Z')
        p++;
    r->method_len = p - r->method;
    if (!known_method(r->method, r->method_len) || p >= end || *p != ' ')
        return 0;
    r->target = ++p;
    if (p >= end || *p != '/')
        return 0;
    while (p < end && *p > ' ' && *p < 0x7f)
        p++;
    r->target_len = p - r->target;
    if (end - p < 11 || memcmp(p, " HTTP/1.1\r\n", 11) != 0)
        return 0;
    p += 11;
    r->fields_start = p - buf;
    r->agent = r->peer = (const unsigned char *)"";
    r->agent_len = r->peer_len = 0;
    r->parent = NULL;
    r->cuts = 0;
    while (!head_ends_at(p, end)) {
        line = p;
        p = field_line(p, end, &f);
        if (p == NULL)
            return 0;
        switch (request_field(&f)) {
        case F_HOST:
            r->host = f.value;
            r->host_len = f.value_len;
            hosts++;
            break;
        case F_USER_AGENT:
            r->agent = f.value;
            r->agent_len = f.value_len;
            agents++;
            break;
        case F_CONTENT_LENGTH:
            if (body_length >= 0 || !content_length(&f, &body_length))
                return 0;
            break;
        case F_TRACEPARENT:
            if (parents++ || !continuable_traceparent(f.value, f.value_len))
                return 0;
            r->parent = f.value;
            r->cut_start[r->cuts] = line - buf;
            r->cut_end[r->cuts++] = p - buf;
            break;
        case F_PEER:
            if (peers++)
                return 0;
            r->peer = f.value;
            r->peer_len = f.value_len;
            r->cut_start[r->cuts] = line - buf;
            r->cut_end[r->cuts++] = p - buf;
            break;
        case F_SPECIAL:
            return 0;
        }
    }
    r->fields_end = p - buf;
    return end - (p + 2) == (body_length < 0 ? 0 : body_length) && hosts == 1 && agents <= 1;
}

static int
bytes_arg(PyObject *arg, const char *function)
{
    if (PyBytes_Check(arg))
        return 1;
    PyErr_Format(PyExc_TypeError, "%s() needs bytes", function);
    return 0;
}

PyDoc_STRVAR(scan_request_doc,
"scan_request(data: bytes) -> (method, target, fields_start, host, user_agent,\n"
"    traceparent, peer) | None\n\n"
"``data`` as exactly one HTTP/1.1 request (GET, HEAD, DELETE, OPTIONS, POST, PUT, PATCH\n"
"with an origin-form target), with one Host, at most one User-Agent, at most one valid\n"
"version-00 traceparent, at most one x-sidetrace-peer, no body or a whole body framed by\n"
"one Content-Length, and no hop-by-hop, chunked framing, Expect or other trace-context\n"
"field. Its field lines start at ``fields_start``; absent values are b\"\".");

static PyObject *
scan_request(PyObject *module, PyObject *arg)
{
    Request r;
    if (!bytes_arg(arg, "scan_request"))
        return NULL;
    if (!scan((const unsigned char *)PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg), &r))
        Py_RETURN_NONE;
    return Py_BuildValue("(y#y#ny#y#y#y#)", r.method, r.method_len, r.target, r.target_len,
                         r.fields_start, r.host, r.host_len, r.agent, r.agent_len,
                         r.parent ? (const char *)r.parent : "", (Py_ssize_t)(r.parent ? 55 : 0),
                         r.peer, r.peer_len);
}

/* Trace and span ids: xoshiro256** seeded from os.urandom at import. Like the
   OpenTelemetry SDK's generator they are random, not secret. Only called with the
   GIL held. */
static uint64_t rng[4];

static uint64_t
rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t
next_random(void)
{
    uint64_t result = rotl(rng[1] * 5, 7) * 9, t = rng[1] << 17;
    rng[2] ^= rng[0];
    rng[3] ^= rng[1];
    rng[1] ^= rng[2];
    rng[0] ^= rng[3];
    rng[2] ^= t;
    rng[3] = rotl(rng[3], 45);
    return result;
}

/* 16 hex digits of a trace id half or span id; never all zero together (W3C). */
static void
put_hex64(char *out, uint64_t value)
{
    static const char digits[] = "0123456789abcdef";
    int i;
    for (i = 15; i >= 0; i--, value >>= 4)
        out[i] = digits[value & 0xf];
}

static void
new_ids(uint64_t *trace_high, uint64_t *trace_low, uint64_t *span)
{
    do {
        *trace_high = next_random();
        *trace_low = next_random();
    } while (*trace_high == 0 && *trace_low == 0);
    do {
        *span = next_random();
    } while (*span == 0);
}

PyDoc_STRVAR(new_root_ids_doc,
"new_root_ids() -> (trace_id, span_id)\n\n"
"Random ids (lowercase hex, 32 and 16 digits, never all zero) for a new trace.");

static PyObject *
new_root_ids(PyObject *module, PyObject *unused)
{
    uint64_t high, low, span;
    char text[48];
    new_ids(&high, &low, &span);
    put_hex64(text, high);
    put_hex64(text + 16, low);
    put_hex64(text + 32, span);
    return Py_BuildValue("(s#s#)", text, (Py_ssize_t)32, text + 32, (Py_ssize_t)16);
}

/* A scanned request with its span: a new trace's, or a child of its traceparent's. */
typedef struct {
    Request r;
    PyObject *head; /* new reference */
    char ids[64];   /* trace id (32 hex digits), span id (16), parent id (16 when continued) */
    int sampled;
    int random; /* Trace Context Level 2: drawn here, or the parent's "random" flag */
} TracedRequest;

static int
hex_value(unsigned char c)
{
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

/* The span's ids and the request sent upstream for a scanned one: its request line and
   fields but the context lines, then `extra`, then the traceparent naming the span (a
   child of the incoming traceparent, sampled and random as it says; else a new trace,
   random, sampled when the low 64 bits of its id are below `bound`), then its body. 0, or -1 with an
   exception set. */
static int
build_head(const char *data, const char *extra, Py_ssize_t extra_len, uint64_t bound,
           TracedRequest *out)
{
    static const char traceparent[] = "traceparent: 00-";
    const Py_ssize_t traceparent_len = sizeof(traceparent) - 1 + 32 + 1 + 16 + 5;
    const Request *r = &out->r;
    uint64_t high, low, span;
    Py_ssize_t body = r->fields_end + 2, body_len = r->size - body;
    Py_ssize_t size = r->fields_end + extra_len + traceparent_len + 2 + body_len, from = 0;
    char *p;
    int i;

    if (r->parent != NULL) {
        do {
            span = next_random();
        } while (span == 0);
        memcpy(out->ids, r->parent + 3, 32);
        memcpy(out->ids + 48, r->parent + 36, 16);
        out->sampled = hex_value(r->parent[54]) & 1;
        out->random = (hex_value(r->parent[54]) >> 1) & 1;
    } else {
        new_ids(&high, &low, &span);
        out->sampled = bound == UINT64_MAX || low < bound;
        out->random = 1;
        put_hex64(out->ids, high);
        put_hex64(out->ids + 16, low);
    }
    put_hex64(out->ids + 32, span);
    for (i = 0; i < r->cuts; i++)
        size -= r->cut_end[i] - r->cut_start[i];
    out->head = PyBytes_FromStringAndSize(NULL, size);
    if (out->head == NULL)
        return -1;
    p = PyBytes_AS_STRING(out->head);
    for (i = 0; i < r->cuts; i++) {
        memcpy(p, data + from, r->cut_start[i] - from);
        p += r->cut_start[i] - from;
        from = r->cut_end[i];
    }
    memcpy(p, data + from, r->fields_end - from);
    p += r->fields_end - from;
    memcpy(p, extra, extra_len);
    p += extra_len;
    memcpy(p, traceparent, sizeof(traceparent) - 1);
    p += sizeof(traceparent) - 1;
    memcpy(p, out->ids, 32);
    p += 32;
    *p++ = '-';
    memcpy(p, out->ids + 32, 16);
    p += 16;
    /* the two defined flags, sampled and random; undefined bits are written as zero */
    memcpy(p, "-00\r\n\r\n", 7);
    p[2] = (char)('0' + (out->sampled | out->random << 1));
    memcpy(p + 7, data + body, body_len);
    return 0;
}

PyDoc_STRVAR(request_head_doc,
"request_head(data, extra, sample_bound) -> (head, trace_id, span_id, parent_id,\n"
"    sampled, method, target, host, user_agent, peer) | None\n\n"
"For a request ``scan_request`` accepts, its span and the head to send upstream. With a\n"
"traceparent, the span is its child, sampled and random (Level 2) as its flags say;\n"
"without, a new trace (ids as ``new_root_ids``, ``parent_id`` empty, flagged random)\n"
"sampled when the low 64 bits of its trace id are below ``sample_bound`` (2**64 - 1:\n"
"always). The head is ``data``'s request\n"
"line and fields without traceparent and x-sidetrace-peer, then ``extra``, then the\n"
"``traceparent`` naming the span, then the body.");

static PyObject *
request_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    TracedRequest traced;
    const Request *r = &traced.r;
    unsigned long long bound;
    const char *data;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "request_head() takes 3 arguments");
        return NULL;
    }
    if (!bytes_arg(args[0], "request_head") || !bytes_arg(args[1], "request_head"))
        return NULL;
    data = PyBytes_AS_STRING(args[0]);
    if (!scan((const unsigned char *)data, PyBytes_GET_SIZE(args[0]), &traced.r))
        Py_RETURN_NONE;
    bound = PyLong_AsUnsignedLongLong(args[2]);
    if (bound == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (build_head(data, PyBytes_AS_STRING(args[1]), PyBytes_GET_SIZE(args[1]), bound,
                   &traced) < 0)
        return NULL;
    return Py_BuildValue("(Ns#s#s#Oy#y#y#y#y#)", traced.head, traced.ids, (Py_ssize_t)32,
                         traced.ids + 32, (Py_ssize_t)16, traced.ids + 48,
                         (Py_ssize_t)(r->parent ? 16 : 0), traced.sampled ? Py_True : Py_False,
                         r->method, r->method_len, r->target, r->target_len, r->host,
                         r->host_len, r->agent, r->agent_len, r->peer, r->peer_len);
}

/* `data` to forward when it is one whole simple response (see scan_response), with its
   status; Py_None when it is not (both new references); NULL with an exception set. */
static PyObject *
response_forward(PyObject *arg, int *status)
{
    const unsigned char *buf, *p, *end;
    const unsigned char *cut_start = NULL, *cut_end = NULL;
    Py_ssize_t size, body_length = -1;
    Field f;
    PyObject *forward;

    buf = (const unsigned char *)PyBytes_AS_STRING(arg);
    size = PyBytes_GET_SIZE(arg);
    end = buf + size;
    if (size < 13 || memcmp(buf, "HTTP/1.1 ", 9) != 0 || buf[9] < '2' || buf[9] > '5' ||
        buf[10] < '0' || buf[10] > '9' || buf[11] < '0' || buf[11] > '9' || buf[12] != ' ')
        Py_RETURN_NONE;
    *status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    if (*status == 204 || *status == 304)
        Py_RETURN_NONE;
    p = buf + 13;
    while (p < end && FIELD_VCHAR[*p])
        p++;
    if (!head_ends_at(p, end))
        Py_RETURN_NONE;
    p += 2;
    while (!head_ends_at(p, end)) {
        const unsigned char *line = p;
        p = field_line(p, end, &f);
        if (p == NULL)
            Py_RETURN_NONE;
        switch (response_field(&f)) {
        case F_CONTENT_LENGTH:
            if (body_length >= 0 || !content_length(&f, &body_length))
                Py_RETURN_NONE;
            break;
        case F_CONNECTION:
            if (cut_start != NULL || !equals_lower(f.value, f.value_len, "keep-alive"))
                Py_RETURN_NONE;
            cut_start = line;
            cut_end = p;
            break;
        case F_SPECIAL:
            Py_RETURN_NONE;
        }
    }
    p += 2;
    if (body_length < 0 || end - p != body_length)
        Py_RETURN_NONE;
    if (cut_start == NULL) {
        Py_INCREF(arg);
        return arg;
    }
    forward = PyBytes_FromStringAndSize(NULL, size - (cut_end - cut_start));
    if (forward == NULL)
        return NULL;
    memcpy(PyBytes_AS_STRING(forward), buf, cut_start - buf);
    memcpy(PyBytes_AS_STRING(forward) + (cut_start - buf), cut_end, end - cut_end);
    return forward;
}

PyDoc_STRVAR(scan_response_doc,
"scan_response(data: bytes) -> (status, forward) | None\n\n"
"``data`` as exactly one HTTP/1.1 response, status 2xx-5xx but 204/304, with one\n"
"Content-Length matching its body and no hop-by-hop field but `Connection: keep-alive`.\n"
"``forward`` is ``data`` without that Connection line.");

static PyObject *
scan_response(PyObject *module, PyObject *arg)
{
    int status = 0;
    PyObject *forward;
    if (!bytes_arg(arg, "scan_response"))
        return NULL;
    forward = response_forward(arg, &status);
    if (forward == NULL || forward == Py_None)
        return forward;
    return Py_BuildValue("(iN)", status, forward);
}

/* ---- Lane: one keep-alive client connection paired with one upstream connection ----

After a first simple exchange the proxy may pair the two connections. While
paired, each whole simple request is rewritten and written upstream, and each whole simple response written back, from these two calls
alone: no Python frame runs between a read and its write, and the finished
exchange is queued for the telemetry thread as one tuple. The first message a
lane does not take (or the first event it does not know) makes the proxy take the
exchange in flight, if any, onto its full path and unpair the connections. */

enum { SERVER_KIND = 2 };

typedef struct {
    PyObject_HEAD
    PyObject *down_write, *up_write;   /* the two transports' bound write methods */
    PyObject *append, *queue, *counters, *extra, *source, *client, *address;
    Py_ssize_t max_queue, max_head;
    unsigned long long sample_bound;
    int skip_probes, kind;
    /* the exchange in flight (peer to user_agent stay, to be reused by the next one) */
    int busy, sampled;
    PyObject *head, *trace_id, *span_id, *parent_id, *peer, *method, *target, *host,
        *user_agent;
    PyObject *fields; /* the LaneFields of the last queued record, shared while they repeat */
    long long start_ns;
    double done_at; /* time.monotonic() when the last exchange ended */
} Lane;

static PyObject *IN_FLIGHT, *BROKEN, *RECORDS_DROPPED, *SPANS_DROPPED, *NO_ERROR, *CLIENT_CLOSED;

/* What a queued lane record holds besides its ids and times, by name: the Python side
   (sidecar.telemetry_record) checks these names at import instead of trusting positions. */
static PyStructSequence_Field lane_fields_fields[] = {
    {"kind", "2 (server, inbound) or 3 (client, outbound)"},
    {"client", "(host, port) of the downstream client"},
    {"address", "(host, port) the request went to"},
    {"method", "request method (bytes)"},
    {"target", "request target (bytes)"},
    {"host", "Host header (bytes, empty without one)"},
    {"user_agent", "User-Agent header (bytes)"},
    {"peer", "x-sidetrace-peer value (str, empty without one)"},
    {"status", "response status"},
    {"error", "error.type ('' or 'client_closed')"},
    {NULL, NULL},
};
enum { LF_KIND, LF_CLIENT, LF_ADDRESS, LF_METHOD, LF_TARGET, LF_HOST, LF_AGENT, LF_PEER,
       LF_STATUS, LF_ERROR, LF_COUNT };

static PyStructSequence_Desc lane_fields_desc = {
    "sidecar._http1scan.LaneFields",
    "The fields of a lane record that repeat between exchanges (one object shared by\n"
    "consecutive records while none changes); the ids and times are packed apart.",
    lane_fields_fields,
    LF_COUNT,
};
static PyTypeObject *LaneFieldsType;

static long long
clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* counters.<name> += delta; its value before, or -1 with an exception set. */
static long
add_counter(PyObject *counters, PyObject *name, long delta)
{
    PyObject *value = PyObject_GetAttr(counters, name), *updated;
    long before;
    if (value == NULL)
        return -1;
    before = PyLong_AsLong(value);
    Py_DECREF(value);
    if (before == -1 && PyErr_Occurred())
        return -1;
    if (delta == 0)
        return before;
    updated = PyLong_FromLong(before + delta);
    if (updated == NULL || PyObject_SetAttr(counters, name, updated) < 0) {
        Py_XDECREF(updated);
        return -1;
    }
    Py_DECREF(updated);
    return before;
}

static void
lane_forget_exchange(Lane *self)
{
    self->busy = 0;
    Py_CLEAR(self->head);
    Py_CLEAR(self->trace_id);
    Py_CLEAR(self->span_id);
    Py_CLEAR(self->parent_id);
}

/* *slot as a bytes object holding [p, p + n): the one it already holds when equal (the
   requests on a connection mostly repeat these fields, and every queued record keeps its
   own reference), else a new one. 0, or -1 with an exception set. */
static int
keep_bytes(PyObject **slot, const unsigned char *p, Py_ssize_t n)
{
    PyObject *fresh;

    if (*slot != NULL && PyBytes_GET_SIZE(*slot) == n &&
        (n == 0 || memcmp(PyBytes_AS_STRING(*slot), p, n) == 0))
        return 0;
    fresh = PyBytes_FromStringAndSize((const char *)p, n);
    if (fresh == NULL)
        return -1;
    Py_XSETREF(*slot, fresh);
    return 0;
}

/* The same for a str decoded from Latin-1 (always one byte per character). */
static int
keep_latin1(PyObject **slot, const unsigned char *p, Py_ssize_t n)
{
    PyObject *fresh;

    if (*slot != NULL && PyUnicode_GET_LENGTH(*slot) == n &&
        PyUnicode_KIND(*slot) == PyUnicode_1BYTE_KIND &&
        (n == 0 || memcmp(PyUnicode_1BYTE_DATA(*slot), p, n) == 0))
        return 0;
    fresh = PyUnicode_DecodeLatin1((const char *)p, n, NULL);
    if (fresh == NULL)
        return -1;
    Py_XSETREF(*slot, fresh);
    return 0;
}

static int
lane_traverse(Lane *self, visitproc visit, void *arg)
{
    Py_VISIT(self->down_write);
    Py_VISIT(self->up_write);
    Py_VISIT(self->append);
    Py_VISIT(self->queue);
    Py_VISIT(self->counters);
    Py_VISIT(self->source);
    return 0;
}

static int
lane_clear(Lane *self)
{
    Py_CLEAR(self->down_write);
    Py_CLEAR(self->up_write);
    Py_CLEAR(self->append);
    Py_CLEAR(self->queue);
    Py_CLEAR(self->counters);
    Py_CLEAR(self->extra);
    Py_CLEAR(self->source);
    Py_CLEAR(self->client);
    Py_CLEAR(self->address);
    Py_CLEAR(self->peer);
    Py_CLEAR(self->method);
    Py_CLEAR(self->target);
    Py_CLEAR(self->host);
    Py_CLEAR(self->user_agent);
    Py_CLEAR(self->fields);
    lane_forget_exchange(self);
    return 0;
}

/* self->fields, rebuilt unless the exchange just finished repeats every one of them (the
   keep_* helpers keep equal values as the same objects, so identity is enough). A new
   reference, or NULL with an exception set. */
static PyObject *
lane_fields(Lane *self, int status, PyObject *error)
{
    PyObject *f = self->fields, *values[LF_COUNT];
    int i;

    if (f != NULL && PyStructSequence_GET_ITEM(f, LF_METHOD) == self->method &&
        PyStructSequence_GET_ITEM(f, LF_TARGET) == self->target &&
        PyStructSequence_GET_ITEM(f, LF_HOST) == self->host &&
        PyStructSequence_GET_ITEM(f, LF_AGENT) == self->user_agent &&
        PyStructSequence_GET_ITEM(f, LF_PEER) == self->peer &&
        PyStructSequence_GET_ITEM(f, LF_ERROR) == error &&
        PyLong_AsLong(PyStructSequence_GET_ITEM(f, LF_STATUS)) == status)
        return Py_NewRef(f);
    f = PyStructSequence_New(LaneFieldsType);
    if (f == NULL)
        return NULL;
    values[LF_KIND] = PyLong_FromLong(self->kind);
    values[LF_CLIENT] = Py_NewRef(self->client);
    values[LF_ADDRESS] = Py_NewRef(self->address);
    values[LF_METHOD] = Py_NewRef(self->method);
    values[LF_TARGET] = Py_NewRef(self->target);
    values[LF_HOST] = Py_NewRef(self->host);
    values[LF_AGENT] = Py_NewRef(self->user_agent);
    values[LF_PEER] = Py_NewRef(self->peer);
    values[LF_STATUS] = PyLong_FromLong(status);
    values[LF_ERROR] = Py_NewRef(error);
    for (i = 0; i < LF_COUNT; i++)
        PyStructSequence_SET_ITEM(f, i, values[i]);
    if (values[LF_KIND] == NULL || values[LF_STATUS] == NULL) {
        Py_DECREF(f);
        return NULL;
    }
    Py_XSETREF(self->fields, Py_NewRef(f));
    return f;
}

static void
raw_from_hex(PyObject *text, unsigned char *out)
{
    const unsigned char *hex = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t i, n = PyUnicode_GET_LENGTH(text) / 2;
    for (i = 0; i < n; i++) {
        unsigned char h = hex[2 * i], l = hex[2 * i + 1];
        out[i] = (unsigned char)(((h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10) << 4) |
                                 (l <= '9' ? l - '0' : (l | 0x20) - 'a' + 10));
    }
}

/* The exchange's ids and times as LANE_PACKED_LAYOUT. */
static PyObject *
lane_packed(Lane *self, long long end_ns)
{
    PyObject *out = PyBytes_FromStringAndSize(NULL, LANE_PACKED_SIZE);
    unsigned char *p;
    int has_parent = PyUnicode_GET_LENGTH(self->parent_id) == 16;

    if (out == NULL)
        return NULL;
    p = (unsigned char *)PyBytes_AS_STRING(out);
    memset(p, 0, LANE_PACKED_SIZE);
    raw_from_hex(self->trace_id, p + LANE_TRACE_ID);
    raw_from_hex(self->span_id, p + LANE_SPAN_ID);
    if (has_parent)
        raw_from_hex(self->parent_id, p + LANE_PARENT_ID);
    lane_put_i64(p + LANE_START_NS, self->start_ns);
    lane_put_i64(p + LANE_END_NS, end_ns);
    p[LANE_FLAGS] = (self->sampled ? LANE_SAMPLED : 0) | (has_parent ? LANE_HAS_PARENT : 0);
    return out;
}

static void
lane_dealloc(Lane *self)
{
    PyObject_GC_UnTrack(self);
    lane_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
lane_init(Lane *self, PyObject *args, PyObject *kwargs)
{
    PyObject *down_write, *up_write, *shared, *client, *address;
    PyObject *append, *queue, *counters, *extra, *source;
    Py_ssize_t max_queue, max_head;
    unsigned long long bound;
    int skip_probes, kind;

    if (!PyArg_ParseTuple(args, "OOO!O!O!:Lane", &down_write, &up_write, &PyTuple_Type, &shared,
                          &PyTuple_Type, &client, &PyTuple_Type, &address))
        return -1;
    if (!PyArg_ParseTuple(shared, "OOnOSKpniO:Lane shared settings", &append, &queue,
                          &max_queue, &counters, &extra, &bound, &skip_probes, &max_head, &kind,
                          &source))
        return -1;
    lane_clear(self);
    self->down_write = Py_NewRef(down_write);
    self->up_write = Py_NewRef(up_write);
    self->append = Py_NewRef(append);
    self->queue = Py_NewRef(queue);
    self->counters = Py_NewRef(counters);
    self->extra = Py_NewRef(extra);
    self->source = Py_NewRef(source);
    self->client = Py_NewRef(client);
    self->address = Py_NewRef(address);
    self->max_queue = max_queue;
    self->max_head = max_head;
    self->sample_bound = bound;
    self->skip_probes = skip_probes;
    self->kind = kind;
    self->done_at = clock_ns(CLOCK_MONOTONIC) / 1e9;
    return 0;
}

PyDoc_STRVAR(lane_request_doc,
"request(data) -> bool\n\n"
"Take ``data`` when no exchange is in flight and it is one whole simple request\n"
"(``request_head``), not a HEAD and not an untraced kubelet probe: write its head\n"
"upstream and hold the exchange until ``response``.");

static PyObject *
lane_request(Lane *self, PyObject *data)
{
    TracedRequest root;
    PyObject *written;
    long before;

    if (!bytes_arg(data, "request"))
        return NULL;
    if (self->busy || self->up_write == NULL || PyBytes_GET_SIZE(data) > self->max_head ||
        !scan((const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), &root.r))
        Py_RETURN_FALSE;
    if ((root.r.method_len == 4 && memcmp(root.r.method, "HEAD", 4) == 0) || /* no body */
        (self->skip_probes && root.r.agent_len >= 11 &&
         memcmp(root.r.agent, "kube-probe/", 11) == 0))
        Py_RETURN_FALSE;
    if (build_head(PyBytes_AS_STRING(data), PyBytes_AS_STRING(self->extra),
                   PyBytes_GET_SIZE(self->extra), self->sample_bound, &root) < 0)
        return NULL;
    self->start_ns = clock_ns(CLOCK_REALTIME);
    written = PyObject_CallOneArg(self->up_write, root.head);
    if (written == NULL) { /* the upstream is closing: the full path finds another */
        PyErr_Clear();
        Py_DECREF(root.head);
        Py_RETURN_FALSE;
    }
    Py_DECREF(written);
    self->busy = 1;
    self->sampled = root.sampled;
    self->head = root.head;
    self->trace_id = PyUnicode_FromStringAndSize(root.ids, 32);
    self->span_id = PyUnicode_FromStringAndSize(root.ids + 32, 16);
    self->parent_id = PyUnicode_FromStringAndSize(root.ids + 48, root.r.parent ? 16 : 0);
    if (self->trace_id == NULL || self->span_id == NULL || self->parent_id == NULL ||
        keep_latin1(&self->peer, root.r.peer, root.r.peer_len) < 0 ||
        keep_bytes(&self->method, root.r.method, root.r.method_len) < 0 ||
        keep_bytes(&self->target, root.r.target, root.r.target_len) < 0 ||
        keep_bytes(&self->host, root.r.host, root.r.host_len) < 0 ||
        keep_bytes(&self->user_agent, root.r.agent, root.r.agent_len) < 0)
        return NULL;
    if (self->kind == SERVER_KIND) {
        if (add_counter(self->counters, IN_FLIGHT, 1) < 0)
            return NULL;
    } else if (root.r.parent == NULL) { /* the app did not forward its context */
        before = add_counter(self->counters, IN_FLIGHT, 0);
        if (before < 0 || (before > 0 && add_counter(self->counters, BROKEN, 1) < 0))
            return NULL;
    }
    Py_RETURN_TRUE;
}

PyDoc_STRVAR(lane_response_doc,
"response(data) -> bool\n\n"
"Take ``data`` when an exchange is in flight and it is one whole simple response\n"
"(``scan_response``): write it to the client and queue the finished exchange as\n"
"``(source, fields, packed)``: a ``LaneFields`` shared with the previous record when\n"
"equal, and its ids and times as ``LANE_PACKED_LAYOUT`` bytes; or count it dropped\n"
"when the queue is full.");

static PyObject *
lane_response(Lane *self, PyObject *data)
{
    PyObject *forward, *written, *item, *appended, *fields, *packed;
    PyObject *error = NO_ERROR;
    int status = 0;

    if (!bytes_arg(data, "response"))
        return NULL;
    if (!self->busy)
        Py_RETURN_FALSE;
    forward = response_forward(data, &status);
    if (forward == NULL)
        return NULL;
    if (forward == Py_None) {
        Py_DECREF(forward);
        Py_RETURN_FALSE;
    }
    written = PyObject_CallOneArg(self->down_write, forward);
    Py_DECREF(forward);
    if (written == NULL) { /* the client went away; its connection_lost follows */
        PyErr_Clear();
        error = CLIENT_CLOSED;
    }
    Py_XDECREF(written);
    if (PyObject_Length(self->queue) < self->max_queue) {
        fields = lane_fields(self, status, error);
        if (fields == NULL)
            return NULL;
        packed = lane_packed(self, clock_ns(CLOCK_REALTIME));
        if (packed == NULL) {
            Py_DECREF(fields);
            return NULL;
        }
        item = PyTuple_Pack(3, self->source, fields, packed);
        Py_DECREF(fields);
        Py_DECREF(packed);
        if (item == NULL)
            return NULL;
        appended = PyObject_CallOneArg(self->append, item);
        Py_DECREF(item);
        if (appended == NULL)
            return NULL;
        Py_DECREF(appended);
    } else if (add_counter(self->counters, RECORDS_DROPPED, 1) < 0 ||
               (self->sampled && add_counter(self->counters, SPANS_DROPPED, 1) < 0)) {
        return NULL;
    }
    if (self->kind == SERVER_KIND && add_counter(self->counters, IN_FLIGHT, -1) < 0)
        return NULL;
    lane_forget_exchange(self);
    self->done_at = clock_ns(CLOCK_MONOTONIC) / 1e9;
    Py_RETURN_TRUE;
}

PyDoc_STRVAR(lane_forget_doc,
"forget()\n\n"
"Drop the exchange in flight without recording it: the proxy has taken it over.");

static PyObject *
lane_forget(Lane *self, PyObject *unused)
{
    lane_forget_exchange(self);
    Py_RETURN_NONE;
}

static PyMethodDef lane_methods[] = {
    {"request", (PyCFunction)lane_request, METH_O, lane_request_doc},
    {"response", (PyCFunction)lane_response, METH_O, lane_response_doc},
    {"forget", (PyCFunction)lane_forget, METH_NOARGS, lane_forget_doc},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef lane_members[] = {
    {"busy", T_INT, offsetof(Lane, busy), READONLY, "an exchange is in flight"},
    {"sampled", T_BOOL, offsetof(Lane, sampled), READONLY, NULL},
    {"head", T_OBJECT, offsetof(Lane, head), READONLY, "the head written upstream"},
    {"trace_id", T_OBJECT, offsetof(Lane, trace_id), READONLY, NULL},
    {"span_id", T_OBJECT, offsetof(Lane, span_id), READONLY, NULL},
    {"parent_id", T_OBJECT, offsetof(Lane, parent_id), READONLY, "'' for a new trace"},
    {"peer", T_OBJECT, offsetof(Lane, peer), READONLY, "the x-sidetrace-peer value or ''"},
    {"method", T_OBJECT, offsetof(Lane, method), READONLY, NULL},
    {"target", T_OBJECT, offsetof(Lane, target), READONLY, NULL},
    {"host", T_OBJECT, offsetof(Lane, host), READONLY, NULL},
    {"user_agent", T_OBJECT, offsetof(Lane, user_agent), READONLY, NULL},
    {"start_ns", T_LONGLONG, offsetof(Lane, start_ns), READONLY, NULL},
    {"done_at", T_DOUBLE, offsetof(Lane, done_at), READONLY,
     "time.monotonic() when the last exchange ended (or the lane began)"},
    {NULL, 0, 0, 0, NULL},
};

PyDoc_STRVAR(lane_doc,
"Lane(down_write, up_write, shared, client, address)\n\n"
"A paired client and upstream connection carrying simple exchanges without Python\n"
"frames. ``shared`` is ``(queue_append, queue, max_queue, counters, extra,\n"
"sample_bound, skip_probes, max_head, kind, record_source)``.");

static PyTypeObject LaneType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sidecar._http1scan.Lane",
    .tp_basicsize = sizeof(Lane),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = lane_doc,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)lane_init,
    .tp_dealloc = (destructor)lane_dealloc,
    .tp_traverse = (traverseproc)lane_traverse,
    .tp_clear = (inquiry)lane_clear,
    .tp_methods = lane_methods,
    .tp_members = lane_members,
};

static int
seed_random(void)
{
    PyObject *os = PyImport_ImportModule("os"), *seed;
    if (os == NULL)
        return -1;
    seed = PyObject_CallMethod(os, "urandom", "i", (int)sizeof(rng));
    Py_DECREF(os);
    if (seed == NULL)
        return -1;
    memcpy(rng, PyBytes_AS_STRING(seed), sizeof(rng));
    Py_DECREF(seed);
    if (rng[0] == 0 && rng[1] == 0 && rng[2] == 0 && rng[3] == 0)
        rng[0] = 1;
    return 0;
}

static PyMethodDef methods[] = {
    {"scan_request", scan_request, METH_O, scan_request_doc},
    {"request_head", (PyCFunction)(void (*)(void))request_head, METH_FASTCALL,
     request_head_doc},
    {"new_root_ids", new_root_ids, METH_NOARGS, new_root_ids_doc},
    {"scan_response", scan_response, METH_O, scan_response_doc},
    {NULL, NULL, 0, NULL},
};

static int
exec_module(PyObject *module)
{
    const char *extra = "!#$%&'*+-.^_`|~";
    int c;
    for (c = 0; c < 256; c++) {
        TCHAR[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                   (c != 0 && strchr(extra, c) != NULL);
        FIELD_VCHAR[c] = c == '\t' || (c >= ' ' && c < 0x7f) || c >= 0x80;
    }
    IN_FLIGHT = PyUnicode_InternFromString("requests_in_flight_inbound");
    BROKEN = PyUnicode_InternFromString("broken_propagation_total");
    RECORDS_DROPPED = PyUnicode_InternFromString("records_dropped_total");
    SPANS_DROPPED = PyUnicode_InternFromString("spans_dropped_total");
    NO_ERROR = PyUnicode_InternFromString("");
    CLIENT_CLOSED = PyUnicode_InternFromString("client_closed");
    if (IN_FLIGHT == NULL || BROKEN == NULL || RECORDS_DROPPED == NULL || SPANS_DROPPED == NULL ||
        NO_ERROR == NULL || CLIENT_CLOSED == NULL)
        return -1;
    if (PyModule_AddType(module, &LaneType) < 0)
        return -1;
    if (LaneFieldsType == NULL) {
        LaneFieldsType = PyStructSequence_NewType(&lane_fields_desc);
        if (LaneFieldsType == NULL)
            return -1;
    }
    if (PyModule_AddType(module, LaneFieldsType) < 0 ||
        PyModule_AddStringConstant(module, "LANE_PACKED_LAYOUT", LANE_PACKED_LAYOUT) < 0)
        return -1;
    return seed_random();
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sidecar._http1scan",
    .m_doc = "Whole small HTTP/1.1 heads recognised in one pass (the sidecar's fast path).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__http1scan(void)
{
    return PyModuleDef_Init(&module_def);
}
