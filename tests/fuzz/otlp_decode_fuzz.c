/* libFuzzer target: tracestore/_otlpdecode.c's entry points on arbitrary bytes.
 *
 * The decoder is compiled into this binary (with ASan and UBSan) and registered as
 * the built-in module tracestore._otlpdecode of an embedded Python, so its Python
 * objects, the DecodeError it raises and the array/kvlist text callback are the
 * real ones. Each input is decoded into fresh lists and appended to lists kept
 * across inputs (a refused input must leave those as they were); the columns it
 * gives are encoded in the Native layout as every column type, and a
 * column made from the input's bytes (ints of every size, strings that are not all
 * UTF-8, rows of either) with a type the input picks. Each input is also decoded
 * into two Native batches kept across inputs (integers as UInt64 and strings as
 * LowCardinality; integers as UInt8 and strings as String), whose rows a refused
 * input (DecodeError, or OverflowError for a value its column cannot hold) must leave
 * as they were and whose columns must always give bytes. Any
 * exception other than
 * DecodeError, an encoder result other than bytes or None, any sanitizer report or
 * a crash is a finding. Built and run by tests/tracestore/test_otlp_decode_fuzz.py, which sets
 * PYTHONHOME/PYTHONPATH; the seed corpus is tests/fuzz/otlp_corpus/.
 */
#include "../../tracestore/_otlpdecode.c"

static PyObject *Decode, *Validate, *Empty, *Error, *Cache, *Encode, *Into;
static PyObject *Natives[2];

static void expect(PyObject *result);

/* A Native batch with wide (0) or narrow (1) integer columns. */
static PyObject *new_batch(int narrow) {
    PyObject *codes = PyTuple_New(NCOLUMNS);
    if (!codes) abort();
    for (int i = 0; i < NCOLUMNS; i++) {
        char shape = NATIVE_SHAPE[i];
        long array = shape >= 'A' && shape <= 'Z' ? N_ARRAY : 0;
        shape = (char)(shape | 0x20);
        long code = shape == 'i' ? (narrow ? N_U8 : N_U64)
                    : shape == 'h' ? N_STRING
                                   : (narrow ? N_STRING : N_LC_STRING);
        PyTuple_SET_ITEM(codes, i, PyLong_FromLong(code | array));
    }
    PyObject *batch = new_native(NULL, codes);
    Py_DECREF(codes);
    if (!batch) {
        PyErr_Print();
        abort();
    }
    return batch;
}

static unsigned long long rows_of(PyObject *batch) {
    return ((Native *)PyCapsule_GetPointer(batch, NATIVE_CAPSULE))->rows;
}

/* Decode into each kept batch; a refused input adds no rows; columns are bytes. */
static void decode_native_batches(const uint8_t *data, size_t size, unsigned long long now) {
    for (int k = 0; k < 2; k++) {
        unsigned long long had = rows_of(Natives[k]);
        PyObject *decoded = PyObject_CallFunction(
            Decode, "y#KKnOOO", (const char *)data, (Py_ssize_t)size, now - 86400000000000ULL,
            now + 3600000000000ULL, (Py_ssize_t)(size % 7), Empty, Py_None, Natives[k]);
        if (!decoded && rows_of(Natives[k]) != had) abort();
        if (!decoded && PyErr_ExceptionMatches(PyExc_OverflowError))
            PyErr_Clear();
        else
            expect(decoded);
        if (size & 4 || rows_of(Natives[k]) > 1024) {
            for (int i = 0; i < NCOLUMNS; i++) {
                PyObject *args = Py_BuildValue("(Oi)", Natives[k], i);
                PyObject *bytes = args ? native_column(NULL, args) : NULL;
                Py_XDECREF(args);
                if (!bytes || !PyBytes_CheckExact(bytes)) {
                    PyErr_Print();
                    abort();
                }
                Py_DECREF(bytes);
            }
        }
        if (rows_of(Natives[k]) > 1024) { /* keep memory bounded */
            Py_DECREF(Natives[k]);
            Natives[k] = new_batch(k);
        }
    }
}

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
    Encode = PyObject_GetAttrString(module, "encode_column");
    Into = PyTuple_New(NCOLUMNS);
    if (!Decode || !Validate || !Empty || !Error || !Cache || !Encode || !Into) {
        PyErr_Print();
        abort();
    }
    for (int i = 0; i < NCOLUMNS; i++) {
        PyObject *list = PyList_New(0);
        if (!list) abort();
        PyTuple_SET_ITEM(Into, i, list);
    }
    Natives[0] = new_batch(0);
    Natives[1] = new_batch(1);
    return 0;
}

/* encode_column's answer must be bytes or None, never an exception. */
static void expect_encoded(PyObject *result) {
    if (!result || (result != Py_None && !PyBytes_CheckExact(result))) {
        PyErr_Print();
        abort();
    }
    Py_DECREF(result);
}

/* Every decoded column as every scalar type, or array type for columns of rows. */
static void encode_columns(PyObject *decoded) {
    if (!decoded) return;
    PyObject *columns = PyTuple_GET_ITEM(decoded, 0);
    for (int i = 0; i < NCOLUMNS; i++) {
        PyObject *column = PyTuple_GET_ITEM(columns, i);
        long array = PyList_GET_SIZE(column) && PyList_Check(PyList_GET_ITEM(column, 0));
        for (long code = N_U8; code <= N_LC_STRING; code++)
            expect_encoded(PyObject_CallFunction(Encode, "lO", code | (array ? N_ARRAY : 0),
                                                 column));
    }
}

/* One value from the input: an int of 1-9 bytes (sign from the first) or a string of
 * the bytes (undecodable ones kept as surrogates, which the encoder must decline). */
static PyObject *value_of(const uint8_t **p, const uint8_t *end) {
    if (*p >= end) return NULL;
    uint8_t head = *(*p)++;
    size_t n = (size_t)(head >> 4) % 10;
    if ((size_t)(end - *p) < n) n = (size_t)(end - *p);
    PyObject *v;
    if (head & 1)
        v = PyUnicode_DecodeUTF8((const char *)*p, (Py_ssize_t)n, "surrogateescape");
    else if (n == 0)
        v = PyLong_FromLong(head >> 2);
    else
        v = _PyLong_FromByteArray(*p, n, 1, (head & 2) != 0);
    *p += n;
    return v;
}

static void encode_bytes(const uint8_t *data, size_t size) {
    if (size < 2) return;
    long code = N_U8 + data[0] % N_LC_STRING + (data[1] & 1 ? N_ARRAY : 0);
    const uint8_t *p = data + 2, *end = data + size;
    PyObject *column = PyList_New(0), *row = NULL;
    if (!column) abort();
    while (p < end) {
        PyObject *v = value_of(&p, end);
        if (!v) abort();
        if (code & N_ARRAY) {
            if (!row || (v && PyLong_Check(v) && PyList_GET_SIZE(row) > 2)) {
                if (row && PyList_Append(column, row) < 0) abort();
                Py_XDECREF(row);
                if (!(row = PyList_New(0))) abort();
            }
            if (PyList_Append(row, v) < 0) abort();
        } else if (PyList_Append(column, v) < 0) {
            abort();
        }
        Py_DECREF(v);
    }
    if (row && PyList_Append(column, row) < 0) abort();
    Py_XDECREF(row);
    expect_encoded(PyObject_CallFunction(Encode, "lO", code, column));
    Py_DECREF(column);
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
    PyObject *decoded = PyObject_CallFunction(
        Decode, "y#KKnOO", (const char *)data, (Py_ssize_t)size, now - 86400000000000ULL,
        now + 3600000000000ULL, (Py_ssize_t)(size % 7), Empty, size & 2 ? Cache : Py_None);
    encode_columns(decoded);
    expect(decoded);
    /* appended to the lists kept across inputs: a refused input leaves them as they were */
    Py_ssize_t had = PyList_GET_SIZE(PyTuple_GET_ITEM(Into, C_SPAN_ID));
    PyObject *appended = PyObject_CallFunction(
        Decode, "y#KKnOOO", (const char *)data, (Py_ssize_t)size, now - 86400000000000ULL,
        now + 3600000000000ULL, (Py_ssize_t)(size % 7), Empty, Py_None, Into);
    if (!appended && PyList_GET_SIZE(PyTuple_GET_ITEM(Into, C_SPAN_ID)) != had) abort();
    for (int i = 0; i < NCOLUMNS; i++)
        if (PyList_GET_SIZE(PyTuple_GET_ITEM(Into, i)) !=
            PyList_GET_SIZE(PyTuple_GET_ITEM(Into, 0)))
            abort();
    expect(appended);
    if (PyList_GET_SIZE(PyTuple_GET_ITEM(Into, 0)) > 4096) /* keep memory bounded */
        for (int i = 0; i < NCOLUMNS; i++)
            if (PyList_SetSlice(PyTuple_GET_ITEM(Into, i), 0, PY_SSIZE_T_MAX, NULL) < 0) abort();
    decode_native_batches(data, size, now);
    encode_bytes(data, size);
    expect(PyObject_CallFunction(Validate, "y#KKiKii", (const char *)data, (Py_ssize_t)size,
                                 now - 86400000000000ULL, now + 3600000000000ULL, (int)(size & 1),
                                 4294967295ULL * 1000000000ULL, 5, 2));
    return 0;
}
