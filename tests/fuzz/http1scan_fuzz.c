/* libFuzzer target: sidecar/_http1scan.c, the C scanner that reads untrusted request and
 * response bytes on the sidecar's hot path, and its Lane (the paired-connection path).
 *
 * The scanner is compiled into this binary (with ASan and UBSan) and registered as the
 * built-in module sidecar._http1scan of an embedded Python, so its Python objects are
 * the real ones. Each input runs through scan_request, request_head (with and without
 * extra fields, several sampling bounds), scan_response and one Lane exchange (the
 * input split in a request part and a response part, inbound or outbound, with a queue
 * bound of 0 or 1 so the drop path runs too). Any exception, sanitizer report or crash
 * is a finding. Built and run by tests/sidecar/test_http1scan_fuzz.py, which sets
 * PYTHONHOME/PYTHONPATH; the seed corpus is tests/fuzz/http1scan_corpus/.
 */
#define _GNU_SOURCE /* memmem */
#include "../../sidecar/_http1scan.c"

static PyObject *ScanRequest, *RequestHead, *ScanResponse, *LaneClass, *Counters, *Queue,
    *Written, *Extra, *Empty;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (PyImport_AppendInittab("sidecar._http1scan", PyInit__http1scan) < 0) abort();
    Py_Initialize();
    PyObject *module = PyImport_ImportModule("sidecar._http1scan");
    PyObject *red = PyImport_ImportModule("sidecar.red_metrics");
    PyObject *collections = PyImport_ImportModule("collections");
    if (!module || !red || !collections) {
        PyErr_Print();
        abort();
    }
    ScanRequest = PyObject_GetAttrString(module, "scan_request");
    RequestHead = PyObject_GetAttrString(module, "request_head");
    ScanResponse = PyObject_GetAttrString(module, "scan_response");
    LaneClass = PyObject_GetAttrString(module, "Lane");
    Counters = PyObject_CallMethod(red, "ProxyCounters", NULL);
    Queue = PyObject_CallMethod(collections, "deque", NULL);
    Written = PyList_New(0);
    Extra = PyBytes_FromString("x-sidetrace-peer: svc-a\r\n");
    Empty = PyBytes_FromString("");
    if (!ScanRequest || !RequestHead || !ScanResponse || !LaneClass || !Counters || !Queue ||
        !Written || !Extra || !Empty) {
        PyErr_Print();
        abort();
    }
    return 0;
}

static void expect(PyObject *result) {
    if (result == NULL) { /* every entry point answers None or False to bad bytes */
        PyErr_Print();
        abort();
    }
    Py_DECREF(result);
}

/* One Lane exchange: the request part, then the response part. */
static void lane_exchange(PyObject *request, PyObject *response, int kind, Py_ssize_t max_queue) {
    PyObject *append = PyObject_GetAttrString(Queue, "append");
    PyObject *write = PyObject_GetAttrString(Written, "append");
    PyObject *shared = Py_BuildValue("(OOnOOKinis)", append, Queue, max_queue, Counters, Extra,
                                     (unsigned long long)-1, 1, (Py_ssize_t)65536, kind, "src");
    PyObject *lane = NULL;
    if (append && write && shared)
        lane = PyObject_CallFunction(LaneClass, "OOO(si)(si)", write, write, shared, "10.0.0.1",
                                     40000, "10.0.0.2", 8080);
    if (lane == NULL) {
        PyErr_Print();
        abort();
    }
    expect(PyObject_CallMethod(lane, "request", "O", request));
    expect(PyObject_CallMethod(lane, "response", "O", response));
    expect(PyObject_CallMethod(lane, "request", "O", request)); /* a second exchange */
    expect(PyObject_CallMethod(lane, "forget", NULL));
    Py_DECREF(lane);
    Py_DECREF(shared);
    Py_DECREF(write);
    Py_DECREF(append);
    expect(PyObject_CallMethod(Queue, "clear", NULL));
    if (PyList_SetSlice(Written, 0, PyList_GET_SIZE(Written), NULL) < 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    PyObject *whole = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)size);
    /* The response part starts at the first "\r\n\r\nHTTP/" (as the seeds are laid out),
       else where the first byte says. */
    static const char mark[] = "\r\n\r\nHTTP/";
    const uint8_t *found = size >= sizeof(mark) - 1
                               ? memmem(data, size, mark, sizeof(mark) - 1)
                               : NULL;
    size_t cut = found ? (size_t)(found - data) + 4 : size ? data[0] * size / 256 : 0;
    PyObject *request = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)cut);
    PyObject *response =
        PyBytes_FromStringAndSize((const char *)data + cut, (Py_ssize_t)(size - cut));
    if (!whole || !request || !response) abort();
    expect(PyObject_CallOneArg(ScanRequest, whole));
    expect(PyObject_CallFunction(RequestHead, "OOK", whole, Extra, (unsigned long long)-1));
    expect(PyObject_CallFunction(RequestHead, "OOK", whole, Empty, 1ULL << 63));
    expect(PyObject_CallOneArg(ScanResponse, whole));
    expect(PyObject_CallOneArg(ScanResponse, response));
    lane_exchange(request, response, size & 1 ? 2 : 3, (Py_ssize_t)(size & 2 ? 1 : 0));
    Py_DECREF(response);
    Py_DECREF(request);
    Py_DECREF(whole);
    return 0;
}
