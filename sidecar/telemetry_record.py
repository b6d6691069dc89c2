"""The records the proxy hands to telemetry for each request or connection.

Two shapes reach the queue: a ``Record`` (gRPC, TCP) and, for every HTTP exchange,
``(LANE_RECORDS, fields, packed)``: ``fields`` the exchange's fields but its ids and
times, shared by consecutive records while its values repeat, and one 49-byte
``bytes`` with the ids and times (``LANE_PACKED``), about 160 bytes a record instead
of ~500 for a tuple of Python fields (and ~2 kB for an exchange kept whole with its
headers). A lane queues them from C with a ``LaneFields`` struct sequence; the
httptools path packs the same bytes here with an ``ExchangeFields``, which adds the
HTTP version (a lane only carries HTTP/1.1). The C modules name that contract and it
is checked here, at import: a field added, removed or moved on one side stops the
sidecar at start instead of corrupting RED keys.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable
from typing import Any, NamedTuple

from sidecar import _http1scan, _otlpspan

HTTP, GRPC, TCP = 1, 2, 3
SERVER, CLIENT = 2, 3  # OTLP span kinds
Address = tuple[str, int]


class ExchangeFields(NamedTuple):
    """The fields of an exchange the httptools path carried, but its ids and times: a
    lane's ``LaneFields`` and the HTTP version."""

    kind: int
    client: Address
    address: Address
    method: bytes
    target: bytes
    host: bytes
    user_agent: bytes
    peer: str
    status: int
    error: str
    version: str


# The lane record contract (sidecar/_http1scan.c, sidecar/lane_record.h): a LaneFields
# has the fields of an ExchangeFields but the version, in the same order.
LANE_FIELDS = ExchangeFields._fields[:-1]
LANE_PACKED_LAYOUT = "<16s8s8sqqB trace_id span_id parent_id start_ns end_ns flags"
LANE_PACKED = struct.Struct(LANE_PACKED_LAYOUT.split()[0])
LANE_TIMES = struct.Struct("<qqB")  # start_ns, end_ns, flags: the packed bytes from 32 on
LANE_TIMES_OFFSET = 32
LANE_SAMPLED, LANE_HAS_PARENT = 1, 2  # flags


class RecordContractError(ImportError):
    """The C side's record layout is not the one this module reads."""


def check_lane_contract(fields: tuple[str, ...], *layouts: str) -> None:
    """Raise ``RecordContractError`` unless the C modules' field names and packed layouts
    are exactly ours."""
    if tuple(fields) != LANE_FIELDS:
        raise RecordContractError(
            f"sidecar._http1scan.LaneFields has fields {tuple(fields)}, telemetry reads "
            f"{LANE_FIELDS}: rebuild the C extensions (setup.py build_ext)"
        )
    for layout in layouts:
        if layout != LANE_PACKED_LAYOUT:
            raise RecordContractError(
                f"a C module packs lane records as {layout!r}, telemetry reads "
                f"{LANE_PACKED_LAYOUT!r}: rebuild the C extensions (setup.py build_ext)"
            )
    names = LANE_PACKED_LAYOUT.split()[1:]
    if len(names) != len(LANE_PACKED.unpack(bytes(LANE_PACKED.size))):
        raise RecordContractError(f"{LANE_PACKED_LAYOUT!r} names every packed field")
    if LANE_PACKED.size - LANE_TIMES.size != LANE_TIMES_OFFSET:
        raise RecordContractError("the times are not the packed record's tail")


check_lane_contract(
    _http1scan.LaneFields.__match_args__,
    _http1scan.LANE_PACKED_LAYOUT,
    _otlpspan.LANE_PACKED_LAYOUT,
)


class Record(NamedTuple):
    """One finished request or connection as the proxy saw it.

    ``trace_id`` is empty when the request was not sampled (metrics only).
    For HTTP ``method``/``target``/``status`` are the request method, target and
    response status; for gRPC ``method`` is ``/pkg.Service/Method`` and ``status``
    the grpc-status; for TCP they are empty and zero. For HTTP, ``server_address``
    is the ``Host`` header as received and ``server_port`` is 0 (splitting it is left
    to the telemetry thread); without a Host, the address connected to.
    ``peer_address``/``peer_port`` are the other end of the socket (OpenTelemetry's
    ``network.peer.*``): the client inbound, the (original) destination outbound.
    """

    protocol: int
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    parent_remote: bool
    start_ns: int
    end_ns: int
    method: str
    target: str
    status: int
    server_address: str
    server_port: int
    peer_address: str
    peer_port: int
    protocol_version: str
    user_agent: str
    error_type: str
    peer: str
    bytes_in: int
    bytes_out: int


class LaneRecords:
    """The telemetry of HTTP exchanges queued as ``(LANE_RECORDS, fields, packed)``, by a
    ``Lane`` or by the httptools path (telemetry thread).

    ``Telemetry`` reads the signature (``fields``) and times of these items itself and
    calls ``record`` once per distinct ``fields``."""

    def digest(self, fields: Any, packed: bytes) -> tuple[Hashable, str, str, str, int, int]:
        """``(signature, trace_id, span_id, parent_id, start_ns, end_ns)``; ``trace_id`` is
        empty when unsampled, ``parent_id`` empty for a root."""
        start_ns, end_ns, flags = LANE_TIMES.unpack_from(packed, LANE_TIMES_OFFSET)
        trace, span, parent = (x.hex() for x in LANE_PACKED.unpack(packed)[:3])
        trace = trace if flags & LANE_SAMPLED else ""
        return fields, trace, span, parent if flags & LANE_HAS_PARENT else "", start_ns, end_ns

    def record(self, fields: Any, packed: bytes) -> Record:
        _, trace_id, span_id, parent_id, start_ns, end_ns = self.digest(fields, packed)
        # A lane carries HTTP/1.1 only: its LaneFields leave the version out.
        version = fields.version if type(fields) is ExchangeFields else "1.1"
        return http_record(
            fields.kind, trace_id, span_id, parent_id, start_ns, end_ns,
            fields.method.decode("latin-1"), fields.target, fields.status, fields.host,
            fields.address, version, fields.user_agent, fields.error, fields.peer, fields.client,
        )  # fmt: skip


_new_tuple = tuple.__new__  # a NamedTuple without _make's Python-level checks


def shared_fields(last: ExchangeFields | None, values: tuple) -> ExchangeFields:
    """``values`` as the ``ExchangeFields`` of the next record after ``last``: ``last``
    itself when equal, else one that holds ``last``'s objects for the values repeated (as
    a lane keeps its fields), so that the records queued share them."""
    if last is None:
        return ExchangeFields._make(values)
    if values == last:
        return last
    kept = [old if old == new else new for old, new in zip(last, values, strict=True)]
    return _new_tuple(ExchangeFields, kept)


def lane_packed(
    trace_id: str, span_id: str, parent_id: str, sampled: bool, start_ns: int, end_ns: int
) -> bytes:
    """An exchange's ids (hex, ``parent_id`` empty for a root) and times as a lane packs
    them in C (``LANE_PACKED_LAYOUT``)."""
    flags = (LANE_SAMPLED if sampled else 0) | (LANE_HAS_PARENT if parent_id else 0)
    return LANE_PACKED.pack(
        bytes.fromhex(trace_id), bytes.fromhex(span_id), bytes.fromhex(parent_id),
        start_ns, end_ns, flags,
    )  # fmt: skip


def http_record(
    kind: int, trace_id: str, span_id: str, parent_id: str, start_ns: int, end_ns: int,
    method: str, target: bytes, status: int, host: bytes, address: Address, version: str,
    user_agent: bytes, error: str, peer: str, client: Address,
) -> Record:  # fmt: skip
    """The record of one HTTP exchange. The server is the Host header as sent, port 0
    (span_fields splits it), or without one the address the request went to; the
    network peer is the client inbound, that address outbound."""
    server = (host.decode("latin-1"), 0) if host else address
    peer_address = client if kind == SERVER else address
    return Record(
        HTTP,
        kind,
        trace_id,
        span_id,
        parent_id,
        kind == SERVER,
        start_ns,
        end_ns,
        method,
        target.decode("latin-1"),
        status,
        server[0],
        server[1],
        peer_address[0],
        peer_address[1],
        version,
        user_agent.decode("latin-1"),
        error,
        peer if kind == SERVER else f"{address[0]}:{address[1]}",
        0,
        0,
    )


LANE_RECORDS = LaneRecords()
