"""Failed exports: the reason named from the gRPC status, counted, and logged sparingly."""

from __future__ import annotations

import logging

import grpc
import pytest

from sidecar.export_failures import ExportFailures
from sidecar.otlp_grpc_export import classify


class _Failed(grpc.RpcError):
    """A failed call as grpcio raises it: a status code and details."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    ("code", "details", "reason"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token", "unauthenticated"),
        (grpc.StatusCode.UNAVAILABLE, "Ssl handshake failed: CERTIFICATE_VERIFY_FAILED", "tls"),
        (grpc.StatusCode.UNAVAILABLE, "failed to connect: Connection refused", "unavailable"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "collector spool is full", "resource_exhausted"),
    ],
)
def test_reasons(code, details, reason) -> None:
    failure = classify(_Failed(code, details), "c:4317")
    assert failure.reason == reason
    assert "c:4317" in failure.explanation and details in failure.explanation


def test_counted_always_logged_once_per_interval(caplog) -> None:
    failures = ExportFailures(log_every_s=3600)
    with caplog.at_level(logging.ERROR, logger="sidecar.export_failures"):
        for _ in range(5):
            failures.record("tls", "TLS handshake failed", 10)
        failures.record("unauthenticated", "token refused", 3)
    assert failures.dropped("tls") == 50 and failures.dropped("unauthenticated") == 3
    assert [r.getMessage() for r in caplog.records] == [
        "TLS handshake failed; 10 spans dropped (reason=tls)",
        "token refused; 3 spans dropped (reason=unauthenticated)",
    ]
    assert failures.counts() == {"tls": 50, "unauthenticated": 3}
