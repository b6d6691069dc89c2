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

PyDoc_STRVAR(scan_request_doc,
"scan_request(data: bytes) -> (method, target, fields_start, host, user_agent) | None\n\n"
"``data`` as exactly one bodiless HTTP/1.1 request (GET, HEAD, DELETE, OPTIONS with an\n"
"origin-form target) with one Host, at most one User-Agent and no hop-by-hop, framing,\n"
"Expect or trace-context field. ``data[fields_start:-2]`` are its field lines.");

static PyObject *
scan_request(PyObject *module, PyObject *arg)
{
    const unsigned char *buf, *p, *end, *method, *target;
    Py_ssize_t method_len, target_len, fields_start;
    Field f, host = {0}, agent = {0};
    int hosts = 0, agents = 0;

    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "scan_request() needs bytes");
        return NULL;
    }
    buf = (const unsigned char *)PyBytes_AS_STRING(arg);
    end = buf + PyBytes_GET_SIZE(arg);
    p = method = buf;
    while (p < end && *p >= 'A' && *p <= 'Z')
        p++;
    method_len = p - method;
    if (!known_method(method, method_len) || p >= end || *p != ' ')
        Py_RETURN_NONE;
    target = ++p;
    if (p >= end || *p != '/')
        Py_RETURN_NONE;
    while (p < end && *p > ' ' && *p < 0x7f)
        p++;
    target_len = p - target;
    if (end - p < 11 || memcmp(p, " HTTP/1.1\r\n", 11) != 0)
        Py_RETURN_NONE;
    p += 11;
    fields_start = p - buf;
    while (!head_ends_at(p, end)) {
        p = field_line(p, end, &f);
        if (p == NULL)
            Py_RETURN_NONE;
        switch (request_field(&f)) {
        case F_HOST:
            host = f;
            hosts++;
            break;
        case F_USER_AGENT:
            agent = f;
            agents++;
            break;
        case F_SPECIAL:
            Py_RETURN_NONE;
        }
    }
    if (p + 2 != end || hosts != 1 || agents > 1)
        Py_RETURN_NONE;
    return Py_BuildValue("(y#y#ny#y#)", method, method_len, target, target_len, fields_start,
                         host.value, host.value_len, agents ? (const char *)agent.value : "",
                         agent.value_len);
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

static PyMethodDef methods[] = {
    {"scan_request", scan_request, METH_O, scan_request_doc},
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
    return 0;
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
