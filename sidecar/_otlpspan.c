/*
 * sidecar._otlpspan: the per-span part of OTLP encoding, in C.
 *
 * The telemetry thread shares the sidecar's core with the proxy, so what it
 * spends per span is taken from the traffic. Everything in a span but its ids
 * and times repeats and is encoded once in Python (sidecar.otlp_encode); this
 * module adds the ids and times around those cached bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "lane_record.h"

static int
hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode `size` bytes of hex from `text` (exactly 2 * size characters) into `out`. */
static int
decode_hex(PyObject *text, Py_ssize_t size, unsigned char *out, const char *what)
{
    Py_ssize_t length, i;
    const char *chars = PyUnicode_AsUTF8AndSize(text, &length);
    if (chars == NULL)
        return -1;
    if (length != 2 * size)
        goto bad;
    for (i = 0; i < size; i++) {
        int high = hex_digit((unsigned char)chars[2 * i]);
        int low = hex_digit((unsigned char)chars[2 * i + 1]);
        if (high < 0 || low < 0)
            goto bad;
        out[i] = (unsigned char)(high << 4 | low);
    }
    return 0;
bad:
    PyErr_Format(PyExc_ValueError, "%s must be %zd hex digits", what, 2 * size);
    return -1;
}

static unsigned char *
put_fixed64(unsigned char *p, unsigned char tag, unsigned long long value)
{
    int i;
    *p++ = tag;
    for (i = 0; i < 8; i++)
        *p++ = (unsigned char)(value >> (8 * i));
    return p;
}

PyDoc_STRVAR(span_with_ids_doc,
"span_with_ids(trace_id, span_id, parent_id, start_ns, end_ns, rest) -> bytes\n\n"
"One encoded ``ScopeSpans.spans`` field: trace and span id, parent id unless empty\n"
"(all hex), start and end times, then ``rest`` (the span's other fields, encoded).");

/* One encoded ScopeSpans.spans field from raw ids (16 + 8 + 8 bytes, the parent's
   only read when has_parent), the times and the span's other fields. */
static PyObject *
write_span(const unsigned char *ids, int has_parent, unsigned long long start,
           unsigned long long end, PyObject *rest)
{
    Py_ssize_t rest_size = PyBytes_GET_SIZE(rest), body, total;
    unsigned char *p;
    PyObject *out;

    body = 18 + 10 + (has_parent ? 10 : 0) + 9 + 9 + rest_size;
    total = 1 + body;
    for (Py_ssize_t v = body; v > 0x7f; v >>= 7)
        total++;
    total++;
    out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL)
        return NULL;
    p = (unsigned char *)PyBytes_AS_STRING(out);
    *p++ = 2 << 3 | 2; /* ScopeSpans.spans */
    for (Py_ssize_t v = body;; v >>= 7) {
        if (v > 0x7f) {
            *p++ = (unsigned char)((v & 0x7f) | 0x80);
        } else {
            *p++ = (unsigned char)v;
            break;
        }
    }
    *p++ = 1 << 3 | 2; /* trace_id */
    *p++ = 16;
    memcpy(p, ids, 16);
    p += 16;
    *p++ = 2 << 3 | 2; /* span_id */
    *p++ = 8;
    memcpy(p, ids + 16, 8);
    p += 8;
    if (has_parent) {
        *p++ = 4 << 3 | 2; /* parent_span_id */
        *p++ = 8;
        memcpy(p, ids + 24, 8);
        p += 8;
    }
    p = put_fixed64(p, 7 << 3 | 1, start); /* start_time_unix_nano */
    p = put_fixed64(p, 8 << 3 | 1, end);   /* end_time_unix_nano */
    memcpy(p, PyBytes_AS_STRING(rest), rest_size);
    return out;
}

static PyObject *
span_with_ids(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned char ids[32];
    unsigned long long start, end;
    int has_parent;

    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "span_with_ids() takes 6 arguments");
        return NULL;
    }
    if (!PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1]) || !PyUnicode_Check(args[2]) ||
        !PyBytes_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError, "span_with_ids() needs str ids and bytes rest");
        return NULL;
    }
    has_parent = PyUnicode_GET_LENGTH(args[2]) > 0;
    if (decode_hex(args[0], 16, ids, "trace_id") < 0 ||
        decode_hex(args[1], 8, ids + 16, "span_id") < 0 ||
        (has_parent && decode_hex(args[2], 8, ids + 24, "parent_id") < 0))
        return NULL;
    start = PyLong_AsUnsignedLongLong(args[3]);
    if (start == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    end = PyLong_AsUnsignedLongLong(args[4]);
    if (end == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    return write_span(ids, has_parent, start, end, args[5]);
}

PyDoc_STRVAR(span_from_packed_doc,
"span_from_packed(packed, rest) -> bytes\n\n"
"``span_with_ids`` for a lane record's packed ids and times (``LANE_PACKED_LAYOUT``).");

static PyObject *
span_from_packed(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    const unsigned char *packed;

    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "span_from_packed() takes packed bytes and rest bytes");
        return NULL;
    }
    if (PyBytes_GET_SIZE(args[0]) != LANE_PACKED_SIZE) {
        PyErr_Format(PyExc_ValueError, "a packed lane record is %d bytes", LANE_PACKED_SIZE);
        return NULL;
    }
    packed = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    return write_span(packed + LANE_TRACE_ID, packed[LANE_FLAGS] & LANE_HAS_PARENT,
                      lane_get_u64(packed + LANE_START_NS), lane_get_u64(packed + LANE_END_NS),
                      args[1]);
}

static PyMethodDef methods[] = {
    {"span_with_ids", (PyCFunction)(void (*)(void))span_with_ids, METH_FASTCALL,
     span_with_ids_doc},
    {"span_from_packed", (PyCFunction)(void (*)(void))span_from_packed, METH_FASTCALL,
     span_from_packed_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sidecar._otlpspan",
    .m_doc = "The per-span part of OTLP encoding (ids and times around cached bytes).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__otlpspan(void)
{
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddStringConstant(module, "LANE_PACKED_LAYOUT", LANE_PACKED_LAYOUT) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
