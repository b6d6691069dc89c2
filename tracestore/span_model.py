"""The stored span's codes, defined once for both directions.

OTLP → rows (``otlp_columns`` and its C twin ``_otlpdecode.c``) writes them; rows →
spans (``trace_queries``) reads them back. Values are OTLP's own where OTLP has one.
"""

from __future__ import annotations

# Attribute value types, in parallel with attr_keys / attr_values.
ATTR_NONE, ATTR_STRING, ATTR_BOOL, ATTR_INT, ATTR_DOUBLE, ATTR_BYTES, ATTR_ARRAY, ATTR_KVLIST = (
    range(8)
)
# The AnyValue field each type code comes from.
ATTR_FIELDS = {
    None: ATTR_NONE,
    "string_value": ATTR_STRING,
    "bool_value": ATTR_BOOL,
    "int_value": ATTR_INT,
    "double_value": ATTR_DOUBLE,
    "bytes_value": ATTR_BYTES,
    "array_value": ATTR_ARRAY,
    "kvlist_value": ATTR_KVLIST,
}
SPAN_KINDS = {
    0: "unspecified",
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
}
STATUS_CODES = {0: "unset", 1: "ok", 2: "error"}
