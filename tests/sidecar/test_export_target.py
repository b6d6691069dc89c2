"""How the sidecar's flags and the standard OTLP variables become one export target."""

from __future__ import annotations

import pytest

from sidecar.export_target import ExportConfigError, ExportTarget, parse_headers, resolve

AUTH = (("authorization", "Bearer t"),)


@pytest.mark.parametrize(
    ("flags", "environ", "expected"),
    [
        ((None, None, None, None), {}, None),
        (("127.0.0.1:4318", None, None, None), {}, ExportTarget("127.0.0.1:4318", True)),
        (("c:4318", "/ca", None, None), {}, ExportTarget("c:4318", False, "/ca")),
        (("https://c:4318", None, None, None), {}, ExportTarget("c:4318", False)),
        (("http://c:4318", "/ca", None, None), {}, ExportTarget("c:4318", True, "/ca")),
        # From the variables, a bare endpoint is TLS unless INSECURE says otherwise (the spec).
        ((None, None, None, None), {"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4318"},
         ExportTarget("c:4318", False)),
        ((None, None, None, None),
         {"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4318", "OTEL_EXPORTER_OTLP_INSECURE": "true"},
         ExportTarget("c:4318", True)),
        ((None, None, None, None),
         {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4318",
          "OTEL_EXPORTER_OTLP_CERTIFICATE": "/ca",
          "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20t"},
         ExportTarget("c:4318", False, "/ca", AUTH)),
        # Per-signal variables win over the general ones; flags win over both.
        ((None, None, None, None),
         {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b:2/v1/traces"},
         ExportTarget("b:2", False)),
        (("https://f:3", "/flag-ca", None, None),
         {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:1", "OTEL_EXPORTER_OTLP_CERTIFICATE": "/env-ca"},
         ExportTarget("f:3", False, "/flag-ca")),
        (("c:4318", None, None, True), {"OTEL_EXPORTER_OTLP_CERTIFICATE": "/ca"},
         ExportTarget("c:4318", True, "/ca")),
    ],
)  # fmt: skip
def test_resolution(flags, environ, expected) -> None:
    assert resolve(*flags, environ) == expected


def test_token_file_becomes_the_authorization_header(tmp_path) -> None:
    token = tmp_path / "token"
    token.write_text("t\n")
    target = resolve("https://c:4318", None, str(token), None, {})
    assert target is not None and target.headers == AUTH


def test_missing_token_file_exports_without_a_token(tmp_path, caplog) -> None:
    target = resolve("https://c:4318", None, str(tmp_path / "absent"), None, {})
    assert target is not None and target.headers == ()
    assert "token file" in caplog.text


@pytest.mark.parametrize("endpoint", ["grpc://c:4318", "c", "https://c", "https://:4318"])
def test_bad_endpoints_are_refused(endpoint) -> None:
    with pytest.raises(ExportConfigError):
        resolve(endpoint, None, None, None, {})


def test_https_with_insecure_is_refused() -> None:
    with pytest.raises(ExportConfigError):
        resolve("https://c:4318", None, None, True, {})


def test_headers_parse_and_refuse_garbage() -> None:
    assert parse_headers("a=1, B=x%20y,") == (("a", "1"), ("b", "x y"))
    with pytest.raises(ExportConfigError):
        parse_headers("novalue")
