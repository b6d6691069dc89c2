"""The state of one HTTP request/response pair as the proxy carries it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sidecar.propagation import SpanStart

if TYPE_CHECKING:
    from sidecar.upstream import Address, UpstreamConnection


class Exchange:
    """One request/response pair on a downstream connection.

    Defaults live on the class so creating one per request costs next to nothing;
    only the fields a request changes land in the instance.
    """

    method = ""
    target = b""
    version = "1.1"
    header_bytes = 0
    pending_bytes = 0
    upstream: UpstreamConnection | None = None
    address: Address = ("", 0)
    request_done = False
    response_started = False
    chunked_request = False
    chunked_response = False
    close_delimited = False
    keep_alive = True
    span: SpanStart | None = None
    traced = True
    start_ns = 0
    status = 0
    error = ""
    host = b""
    has_host = False
    user_agent = b""
    peer = ""
    retry_head: bytes | None = None
    upgrade = b""
    counted_inflight = False
    fast = False  # a simple request (request_head): its connection may become a Lane

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.pending: list[bytes] | None = []
