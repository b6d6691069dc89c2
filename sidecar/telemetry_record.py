"""The records the proxy hands to telemetry for each request or connection.

Three shapes reach the queue: a ``Record`` (gRPC, TCP), a ``(source, *args)`` item
a ``RecordSource`` turns into one later (the httptools path), and the lane's
``(LANE_RECORDS, fields, packed)``: a ``LaneFields`` struct sequence shared by
consecutive records while its values repeat, and one 49-byte ``bytes`` with the
ids and times (``LANE_PACKED``), about 160 bytes a record instead of ~500 for a
tuple of Python fields. The C modules name that contract and it is checked here,
at import: a field added, removed or moved on one side stops the sidecar at start
instead of corrupting RED keys.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable
from typing import Any, NamedTuple, Protocol

from sidecar import _http1scan, _otlpspan

HTTP, GRPC, TCP = 1, 2, 3
SERVER, CLIENT = 2, 3  # OTLP span kinds
Address = tuple[str, int]

# The lane record contract (sidecar/_http1scan.c, sidecar/lane_record.h).
LANE_FIELDS = (
    "kind", "client", "address", "method", "target", "host", "user_agent", "peer", "status",
    "error",
)  # fmt: skip
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


class RecordSource(Protocol):
    """Makes records on the telemetry thread from what the proxy queued as ``(source, *args)``.

    ``digest`` is the cheap part run for every item; ``record`` only runs for the
    first item of each signature, since telemetry reuses what it worked out then.
    """

    def record(self, *args: Any) -> Record: ...

    def digest(self, *args: Any) -> tuple[Hashable, str, str, str, int, int]:
        """``(signature, trace_id, span_id, parent_id, start_ns, end_ns)``; ``trace_id`` is
        empty when unsampled. Equal signatures mean records equal but for ids and times."""
        ...


class LaneRecords:
    """The telemetry of exchanges a ``Lane`` carried (a ``RecordSource``; telemetry thread).

    ``Telemetry`` reads the signature and times of these items itself (the bulk of the
    traffic) and calls ``record`` once per distinct ``fields``."""

    def digest(self, fields: Any, packed: bytes) -> tuple[Hashable, str, str, str, int, int]:
        start_ns, end_ns, flags = LANE_TIMES.unpack_from(packed, LANE_TIMES_OFFSET)
        trace, span, parent = (x.hex() for x in LANE_PACKED.unpack(packed)[:3])
        trace = trace if flags & LANE_SAMPLED else ""
        return fields, trace, span, parent if flags & LANE_HAS_PARENT else "", start_ns, end_ns

    def record(self, fields: Any, packed: bytes) -> Record:
        _, trace_id, span_id, parent_id, start_ns, end_ns = self.digest(fields, packed)
        return http_record(
            fields.kind, trace_id, span_id, parent_id, start_ns, end_ns,
            fields.method.decode("latin-1"), fields.target, fields.status, fields.host,
            fields.address, "1.1", fields.user_agent, fields.error, fields.peer, fields.client,
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
