"""The compact record the proxy hands to telemetry for each request or connection."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, NamedTuple, Protocol

HTTP, GRPC, TCP = 1, 2, 3
SERVER, CLIENT = 2, 3  # OTLP span kinds


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
