# Types of the C extension sidecar/_http1scan.c (its docstrings say what each does).
from collections.abc import Callable
from typing import Any, Final, final

from _typeshed import structseq

LANE_PACKED_LAYOUT: Final[str]

def scan_request(data: bytes, /) -> tuple[bytes, bytes, int, bytes, bytes, bytes, bytes] | None: ...
def request_head(
    data: bytes, extra: bytes, sample_bound: int, /
) -> tuple[bytes, str, str, str, bool, bytes, bytes, bytes, bytes, bytes] | None: ...
def new_root_ids() -> tuple[str, str]: ...
def scan_response(data: bytes, /) -> tuple[int, bytes] | None: ...

@final
class LaneFields(
    structseq[Any],
    tuple[int, tuple[str, int], tuple[str, int], bytes, bytes, bytes, bytes, str, int, str],
):
    __match_args__: Final = (
        "kind",
        "client",
        "address",
        "method",
        "target",
        "host",
        "user_agent",
        "peer",
        "status",
        "error",
    )
    @property
    def kind(self) -> int: ...
    @property
    def client(self) -> tuple[str, int]: ...
    @property
    def address(self) -> tuple[str, int]: ...
    @property
    def method(self) -> bytes: ...
    @property
    def target(self) -> bytes: ...
    @property
    def host(self) -> bytes: ...
    @property
    def user_agent(self) -> bytes: ...
    @property
    def peer(self) -> str: ...
    @property
    def status(self) -> int: ...
    @property
    def error(self) -> str: ...

class Lane:
    busy: Final[int]
    sampled: Final[bool]
    head: Final[bytes]
    trace_id: Final[str]
    span_id: Final[str]
    parent_id: Final[str]
    peer: Final[str]
    method: Final[bytes]
    target: Final[bytes]
    host: Final[bytes]
    user_agent: Final[bytes]
    start_ns: Final[int]
    done_at: Final[float]
    def __init__(
        self,
        down_write: Callable[[bytes], object],
        up_write: Callable[[bytes], object],
        shared: tuple[Any, ...],
        client: tuple[str, int],
        address: tuple[str, int],
        /,
    ) -> None: ...
    def request(self, data: bytes, /) -> bool: ...
    def response(self, data: bytes, /) -> bool: ...
    def forget(self) -> None: ...
