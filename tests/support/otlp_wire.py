"""Hypothesis strategies for OTLP trace requests written field by field on the wire.

The protobuf library only writes canonical bytes; a decoder must also read what it
never writes: fields in any order and repeated (last scalar wins, sub-messages
merge), unknown fields of every wire type (groups too), known fields with the
wrong wire type, over-long varints, invalid UTF-8, and bytes cut short. The
differential tests and the fuzz corpus both draw on these.
"""

from __future__ import annotations

from hypothesis import strategies as st

NS = 1_000_000_000
NOW = 1_800_000_000 * NS

VARINT, FIXED64, LEN, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5

# message -> field number -> (wire type, what it holds): "str", "bytes", "id16",
# "id8", "int", "time", "u32" or the name of a message.
SCHEMA: dict[str, dict[int, tuple[int, str]]] = {
    "Request": {1: (LEN, "ResourceSpans")},
    "ResourceSpans": {1: (LEN, "Resource"), 2: (LEN, "ScopeSpans"), 3: (LEN, "str")},
    "Resource": {1: (LEN, "KeyValue"), 2: (VARINT, "int"), 3: (LEN, "EntityRef")},
    "EntityRef": {1: (LEN, "str"), 2: (LEN, "str"), 3: (LEN, "str"), 4: (LEN, "str")},
    "ScopeSpans": {1: (LEN, "Scope"), 2: (LEN, "Span"), 3: (LEN, "str")},
    "Scope": {1: (LEN, "str"), 2: (LEN, "str"), 3: (LEN, "KeyValue"), 4: (VARINT, "int")},
    "Span": {
        1: (LEN, "id16"),
        2: (LEN, "id8"),
        3: (LEN, "str"),
        4: (LEN, "id8"),
        5: (LEN, "str"),
        6: (VARINT, "int"),
        7: (FIXED64, "time"),
        8: (FIXED64, "time"),
        9: (LEN, "KeyValue"),
        10: (VARINT, "int"),
        11: (LEN, "Event"),
        12: (VARINT, "int"),
        13: (LEN, "Link"),
        14: (VARINT, "int"),
        15: (LEN, "Status"),
        16: (FIXED32, "u32"),
    },
    "Event": {1: (FIXED64, "time"), 2: (LEN, "str"), 3: (LEN, "KeyValue"), 4: (VARINT, "int")},
    "Link": {
        1: (LEN, "id16"),
        2: (LEN, "id8"),
        3: (LEN, "str"),
        4: (LEN, "KeyValue"),
        5: (VARINT, "int"),
        6: (FIXED32, "u32"),
    },
    "Status": {2: (LEN, "str"), 3: (VARINT, "int")},
    "KeyValue": {1: (LEN, "str"), 2: (LEN, "AnyValue")},
    # 8 (string_value_strindex) is left out: see test_otlp_decode_differential.
    "AnyValue": {
        1: (LEN, "str"),
        2: (VARINT, "int"),
        3: (VARINT, "int"),
        4: (FIXED64, "double"),
        5: (LEN, "ArrayValue"),
        6: (LEN, "KeyValueList"),
        7: (LEN, "bytes"),
    },
    "ArrayValue": {1: (LEN, "AnyValue")},
    "KeyValueList": {1: (LEN, "KeyValue")},
}
# How many of each a message gets at most, to keep examples small.
MOST = {"Request": 2, "ResourceSpans": 3, "ScopeSpans": 5, "Span": 12}
# Field numbers to draw from, the ones leading to spans more often.
DRAW = {"ResourceSpans": [1, 2, 2, 2, 3], "ScopeSpans": [1, 2, 2, 2, 2, 3]}
KEYS = ["service.name", "http.method", "k", "", "é", 'q"\\\n\x01']


def varint(value: int, pad: int = 0) -> bytes:
    """``value`` as a varint, optionally with ``pad`` redundant continuation bytes."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    if pad:
        out[-1] |= 0x80
        out += b"\x80" * (pad - 1) + b"\x00"
    return bytes(out)


def tag(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def field(number: int, wire: int, payload: bytes | int) -> bytes:
    """One field, its value already encoded for LEN and raw ints for the rest."""
    if wire == VARINT:
        return tag(number, wire) + varint(int(payload))
    if wire == FIXED64:
        return tag(number, wire) + int(payload).to_bytes(8, "little")
    if wire == FIXED32:
        return tag(number, wire) + int(payload).to_bytes(4, "little")
    assert isinstance(payload, bytes)
    return tag(number, wire) + varint(len(payload)) + payload


texts = st.one_of(
    st.sampled_from(["", "GET", "/api/v1/items/{id}", "x" * 40, "ünïcødé ✓ 𝄞"]),
    st.text(max_size=30),
)
bad_utf8 = st.sampled_from([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"a\xe2"])
u64 = st.one_of(
    st.integers(0, 2**64 - 1),
    st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]),
)
times = st.one_of(
    st.integers(NOW - 3 * NS, NOW + 3 * NS),
    st.sampled_from([0, NOW - 86_401 * NS, NOW + 3_601 * NS, 2**63, 2**64 - 1]),
    u64,
)
doubles = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def scalar(draw, kind: str) -> bytes | int:
    if kind == "str":
        if draw(st.integers(0, 40)) == 0:
            return draw(bad_utf8)
        return draw(texts).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    if kind in ("id16", "id8"):
        size = 16 if kind == "id16" else 8
        return draw(st.one_of(st.binary(min_size=size, max_size=size), st.binary(max_size=20)))
    if kind == "time":
        return draw(times)
    if kind == "u32":
        return draw(st.integers(0, 2**32 - 1))
    if kind == "double":
        import struct

        return int.from_bytes(struct.pack("<d", draw(doubles)), "little")
    return draw(u64)


@st.composite
def unknown_field(draw, depth: int) -> bytes:
    """A field this schema does not know, of any wire type (groups nest)."""
    number = draw(st.sampled_from([17, 18, 99, 1000, 2**29 - 1]))
    wire = draw(st.sampled_from([VARINT, FIXED64, LEN, FIXED32, START_GROUP]))
    if wire == START_GROUP:
        inner = b"".join(draw(st.lists(unknown_field(depth + 1), max_size=2))) if depth < 3 else b""
        return tag(number, START_GROUP) + inner + tag(number, END_GROUP)
    if wire == LEN:
        return field(number, LEN, draw(st.binary(max_size=12)))
    return field(number, wire, draw(u64) if wire == VARINT else draw(st.integers(0, 2**32 - 1)))


@st.composite
def message(draw, name: str, depth: int = 0, odd: bool = True) -> bytes:
    """One message of ``name`` as bytes: known fields in any order, some oddities."""
    fields = SCHEMA[name]
    most = MOST.get(name, 4)
    if name in ("AnyValue", "ArrayValue", "KeyValueList") and depth > 6:
        most = 0
    out = []
    numbers = DRAW.get(name, sorted(fields))
    for _ in range(draw(st.integers(1 if name in DRAW or name == "Request" else 0, most))):
        number = draw(st.sampled_from(numbers))
        wire, kind = fields[number]
        if name == "KeyValue" and number == 1 and draw(st.booleans()):
            out.append(field(1, LEN, draw(st.sampled_from(KEYS)).encode()))
            continue
        if kind in SCHEMA:
            value: bytes | int = draw(message(kind, depth + 1, odd))
        else:
            value = draw(scalar(kind))
        if odd and wire == VARINT and draw(st.integers(0, 20)) == 0:  # over-long varint
            out.append(tag(number, VARINT) + varint(int(value), pad=draw(st.integers(1, 3))))
            continue
        if odd and draw(st.integers(0, 30)) == 0:  # a known number with another wire type
            wire = draw(st.sampled_from([w for w in (VARINT, FIXED64, LEN, FIXED32) if w != wire]))
            value = b"" if wire == LEN else 7
        out.append(field(number, wire, value))
    if odd and draw(st.integers(0, 6)) == 0:
        out.insert(draw(st.integers(0, len(out))), draw(unknown_field(0)))
    return b"".join(out)


@st.composite
def corrupted(draw, payload: bytes) -> bytes:
    """``payload`` cut short, with a byte changed, or with bytes spliced in."""
    how = draw(st.sampled_from(["cut", "flip", "splice"]))
    if not payload:
        return draw(st.binary(max_size=8))
    at = draw(st.integers(0, len(payload) - 1))
    if how == "cut":
        return payload[:at]
    if how == "flip":
        return payload[:at] + bytes([draw(st.integers(0, 255))]) + payload[at + 1 :]
    return payload[:at] + draw(st.binary(min_size=1, max_size=6)) + payload[at:]
