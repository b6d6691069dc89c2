"""Where an outbound request goes, and the target sent on (pure)."""

from __future__ import annotations

import pytest

from sidecar.outbound_routing import outbound_route

ORIGINAL = ("10.0.0.9", 8443)

ROUTES = [
    pytest.param("GET", b"/a", b"svc:8080", None, (("svc", 8080), b"/a"), id="host with port"),
    pytest.param("GET", b"/a", b"svc", None, (("svc", 80), b"/a"), id="host without port"),
    pytest.param("GET", b"/a", b"[::1]:81", None, (("::1", 81), b"/a"), id="host v6"),
    pytest.param("GET", b"/a", b"", None, (None, b"/a"), id="no host, no destination"),
    pytest.param("GET", b"/a", b"svc:99999", None, (None, b"/a"), id="host with a bad port"),
    pytest.param("GET", b"/a", b"svc", ORIGINAL, (ORIGINAL, b"/a"), id="original wins"),
    pytest.param(
        "GET",
        b"http://api:9000/v1?q=1",
        b"other",
        None,
        (("api", 9000), b"/v1?q=1"),
        id="absolute form names it, sent origin-form",
    ),
    pytest.param(
        "GET", b"http://api", b"", None, (("api", 80), b"/"), id="absolute form, no path or port"
    ),
    pytest.param(
        "POST",
        b"http://api:9000/v1",
        b"",
        ORIGINAL,
        (ORIGINAL, b"/v1"),
        id="absolute form, original destination still wins",
    ),
    pytest.param("GET", b"http://[", b"svc", None, (None, b"http://["), id="bad absolute form"),
    pytest.param(
        "CONNECT", b"db:5432", b"", None, (("db", 5432), b"db:5432"), id="connect with port"
    ),
    pytest.param("CONNECT", b"db", b"", None, (("db", 443), b"db"), id="connect defaults to 443"),
    pytest.param(
        "CONNECT", b"db:5432", b"", ORIGINAL, (("db", 5432), b"db:5432"), id="connect names it"
    ),
]


@pytest.mark.parametrize(("method", "target", "host", "original", "expected"), ROUTES)
def test_outbound_route(
    method: str,
    target: bytes,
    host: bytes,
    original: tuple[str, int] | None,
    expected: tuple[tuple[str, int] | None, bytes],
) -> None:
    assert outbound_route(method, target, host, original) == expected
