/*
 * sidecar._http1scan: whole small HTTP/1.1 heads recognised in one pass.
 *
 * Most service traffic is a bodiless request answered by one response with a
 * Content-Length body, each arriving in a single read. For those the sidecar
 * needs only a handful of facts (method, target, Host, User-Agent; status and
 * body length) and may forward the bytes almost untouched, so this scanner
 * checks the RFC 9112 grammar and proves that no field needs rewriting. Any
 * other message makes it return None and the caller takes the full httptools
 * path, which stays the reference behaviour (tests/test_sidecar_fastpath.py
 * checks the two agree).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static unsigned char TCHAR[256];
static unsigned char FIELD_VCHAR[256]; /* HTAB, SP, VCHAR, obs-text */

enum { F_OTHER, F_SPECIAL, F_HOST, F_USER_AGENT, F_CONTENT_LENGTH, F_CONNECTION };

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
   framing, Expect, and the trace context the sidecar replaces. */
static const char *const SPECIAL_REQUEST[] = {
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "proxy-authorization", "proxy-authenticate", "content-length", "expect",
    "traceparent", "tracestate", "b3", "x-sidetrace-peer", NULL};
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
    return (n == 3 && memcmp(m, "GET", 3) == 0) || (n == 4 && memcmp(m, "HEAD", 4) == 0) ||
           (n == 6 && memcmp(m, "DELETE", 6) == 0) || (n == 7 && memcmp(m, "OPTIONS", 7) == 0);
}

typedef struct {
    const unsigned char *method, *target, *host, *agent;
    Py_ssize_t method_len, target_len, fields_start, fields_end, host_len, agent_len;
} Request;

/* 1 when `buf[0:size]` is exactly one simple request (see scan_request), else 0. */
static int
scan(const unsigned char *buf, Py_ssize_t size, Request *r)
{
    const unsigned char *p, *end = buf + size;
    Field f;
    int hosts = 0, agents = 0;

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
    r->agent = (const unsigned char *)"";
    r->agent_len = 0;
    while (!head_ends_at(p, end)) {
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
        case F_SPECIAL:
            return 0;
        }
    }
    r->fields_end = p - buf;
    return p + 2 == end && hosts == 1 && agents <= 1;
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
"scan_request(data: bytes) -> (method, target, fields_start, host, user_agent) | None\n\n"
"``data`` as exactly one bodiless HTTP/1.1 request (GET, HEAD, DELETE, OPTIONS with an\n"
"origin-form target) with one Host, at most one User-Agent and no hop-by-hop, framing,\n"
"Expect or trace-context field. ``data[fields_start:-2]`` are its field lines.");

static PyObject *
scan_request(PyObject *module, PyObject *arg)
{
    Request r;
    if (!bytes_arg(arg, "scan_request"))
        return NULL;
    if (!scan((const unsigned char *)PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg), &r))
        Py_RETURN_NONE;
    return Py_BuildValue("(y#y#ny#y#)", r.method, r.method_len, r.target, r.target_len,
                         r.fields_start, r.host, r.host_len, r.agent, r.agent_len);
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

PyDoc_STRVAR(root_request_head_doc,
"root_request_head(data, extra, sample_bound) -> (head, trace_id, span_id, sampled,\n"
"    method, target, host, user_agent) | None\n\n"
"For a request ``scan_request`` accepts: a new trace (``new_root_ids``), sampled when\n"
"the low 64 bits of its trace id are below ``sample_bound`` (2**64 - 1: always),\n"
"and the head to send upstream: ``data``'s request line and fields, then ``extra``,\n"
"then the ``traceparent`` naming the new span.");

static PyObject *
root_request_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char traceparent[] = "traceparent: 00-";
    const Py_ssize_t traceparent_len = sizeof(traceparent) - 1 + 32 + 1 + 16 + 5;
    Request r;
    const char *data, *extra;
    Py_ssize_t extra_len, size;
    uint64_t high, low, span;
    unsigned long long bound;
    int sampled;
    char *p, ids[48];
    PyObject *head, *result;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "root_request_head() takes 3 arguments");
        return NULL;
    }
    if (!bytes_arg(args[0], "root_request_head") || !bytes_arg(args[1], "root_request_head"))
        return NULL;
    data = PyBytes_AS_STRING(args[0]);
    if (!scan((const unsigned char *)data, PyBytes_GET_SIZE(args[0]), &r))
        Py_RETURN_NONE;
    bound = PyLong_AsUnsignedLongLong(args[2]);
    if (bound == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    new_ids(&high, &low, &span);
    sampled = bound == UINT64_MAX || low < bound;
    put_hex64(ids, high);
    put_hex64(ids + 16, low);
    put_hex64(ids + 32, span);
    extra = PyBytes_AS_STRING(args[1]);
    extra_len = PyBytes_GET_SIZE(args[1]);
    size = r.fields_end + extra_len + traceparent_len + 2;
    head = PyBytes_FromStringAndSize(NULL, size);
    if (head == NULL)
        return NULL;
    p = PyBytes_AS_STRING(head);
    memcpy(p, data, r.fields_end);
    p += r.fields_end;
    memcpy(p, extra, extra_len);
    p += extra_len;
    memcpy(p, traceparent, sizeof(traceparent) - 1);
    p += sizeof(traceparent) - 1;
    memcpy(p, ids, 32);
    p += 32;
    *p++ = '-';
    memcpy(p, ids + 32, 16);
    p += 16;
    memcpy(p, sampled ? "-01\r\n\r\n" : "-00\r\n\r\n", 7);
    result = Py_BuildValue("(Ns#s#Oy#y#y#y#)", head, ids, (Py_ssize_t)32, ids + 32,
                           (Py_ssize_t)16, sampled ? Py_True : Py_False, r.method, r.method_len,
                           r.target, r.target_len, r.host, r.host_len, r.agent, r.agent_len);
    return result;
}

PyDoc_STRVAR(scan_response_doc,
"scan_response(data: bytes) -> (status, forward) | None\n\n"
"``data`` as exactly one HTTP/1.1 response, status 2xx-5xx but 204/304, with one\n"
"Content-Length matching its body and no hop-by-hop field but `Connection: keep-alive`.\n"
"``forward`` is ``data`` without that Connection line.");

static PyObject *
scan_response(PyObject *module, PyObject *arg)
{
    const unsigned char *buf, *p, *end;
    const unsigned char *cut_start = NULL, *cut_end = NULL;
    Py_ssize_t size, body_length = -1, i;
    int status;
    Field f;
    PyObject *forward;

    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "scan_response() needs bytes");
        return NULL;
    }
    buf = (const unsigned char *)PyBytes_AS_STRING(arg);
    size = PyBytes_GET_SIZE(arg);
    end = buf + size;
    if (size < 13 || memcmp(buf, "HTTP/1.1 ", 9) != 0 || buf[9] < '2' || buf[9] > '5' ||
        buf[10] < '0' || buf[10] > '9' || buf[11] < '0' || buf[11] > '9' || buf[12] != ' ')
        Py_RETURN_NONE;
    status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    if (status == 204 || status == 304)
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
            if (body_length >= 0 || f.value_len < 1 || f.value_len > 15)
                Py_RETURN_NONE;
            body_length = 0;
            for (i = 0; i < f.value_len; i++) {
                if (f.value[i] < '0' || f.value[i] > '9')
                    Py_RETURN_NONE;
                body_length = body_length * 10 + (f.value[i] - '0');
            }
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
        forward = arg;
    } else {
        forward = PyBytes_FromStringAndSize(NULL, size - (cut_end - cut_start));
        if (forward == NULL)
            return NULL;
        memcpy(PyBytes_AS_STRING(forward), buf, cut_start - buf);
        memcpy(PyBytes_AS_STRING(forward) + (cut_start - buf), cut_end, end - cut_end);
    }
    return Py_BuildValue("(iN)", status, forward);
}

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
    {"root_request_head", (PyCFunction)(void (*)(void))root_request_head, METH_FASTCALL,
     root_request_head_doc},
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
