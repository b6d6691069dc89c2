/* libFuzzer target: tracestore/_otlpdecode.c's two entry points on arbitrary bytes.
 *
 * The decoder is compiled into this binary (with ASan and UBSan) and registered as
 * the built-in module tracestore._otlpdecode of an embedded Python, so its Python
 * objects, the DecodeError it raises and the array/kvlist text callback are the
 * real ones. Any exception other than DecodeError, any sanitizer report or a crash
 * is a finding. Built and run by tests/test_otlp_decode_fuzz.py, which sets
 * PYTHONHOME/PYTHONPATH; the seed corpus is tests/fuzz/otlp_corpus/.
 */
#include "../../tracestore/_otlpdecode.c"

static PyObject *Decode, *Validate, *Empty, *Error, *Cache;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (PyImport_AppendInittab("tracestore._otlpdecode", PyInit__otlpdecode) < 0) abort();
    Py_Initialize();
    PyObject *columns = PyImport_ImportModule("tracestore.compiled_columns");
    PyObject *reference = PyImport_ImportModule("tracestore.otlp_columns");
    PyObject *module = PyImport_ImportModule("tracestore._otlpdecode");
    if (!columns || !reference || !module) {
        PyErr_Print();
        abort();
    }
    Decode = PyObject_GetAttrString(module, "decode_traces");
    Validate = PyObject_GetAttrString(module, "validate_traces");
    Empty = PyObject_GetAttrString(reference, "_NO_VALUES");
    Error = PyObject_GetAttrString(reference, "DecodeError");
    Cache = PyObject_CallMethod(module, "new_cache", NULL); /* kept across all inputs */
    if (!Decode || !Validate || !Empty || !Error || !Cache) {
        PyErr_Print();
        abort();
    }
    return 0;
}

static void expect(PyObject *result) {
    if (result) {
        Py_DECREF(result);
        return;
    }
    if (!PyErr_ExceptionMatches(Error)) {
        PyErr_Print();
        abort();
    }
    PyErr_Clear();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const unsigned long long now = 1800000000ULL * 1000000000ULL;
    /* a short attribute limit, so truncation paths run too */
    expect(PyObject_CallFunction(Decode, "y#KKnOO", (const char *)data, (Py_ssize_t)size,
                                 now - 86400000000000ULL, now + 3600000000000ULL,
                                 (Py_ssize_t)(size % 7), Empty, size & 2 ? Cache : Py_None));
    expect(PyObject_CallFunction(Validate, "y#KKiKii", (const char *)data, (Py_ssize_t)size,
                                 now - 86400000000000ULL, now + 3600000000000ULL, (int)(size & 1),
                                 4294967295ULL * 1000000000ULL, 5, 2));
    return 0;
}
