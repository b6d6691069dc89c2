"""Where and how the sidecar exports: flags first, then the standard OTLP variables.

The flags (``--collector``, ``--collector-ca``, ``--collector-token-file``,
``--collector-insecure``; also ``SIDETRACE_<FLAG>``) win; what they leave unset
comes from ``OTEL_EXPORTER_OTLP_TRACES_*`` and then ``OTEL_EXPORTER_OTLP_*``
(endpoint, certificate, headers, insecure), read from the mapping the command
passes in, so the exporter package never consults the environment on its own.

Transport security: ``https://`` means TLS and ``http://`` plaintext. Without a
scheme, an endpoint from the OTLP variables follows ``OTEL_EXPORTER_OTLP_INSECURE``
(default false: TLS, as the specification says); a bare ``--collector HOST:PORT``
is plaintext unless a CA bundle is given (the demo's and the tests' form).

Protocol: ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL``,
``http/protobuf`` (the default, as the specification says, so a sidecar never loads
grpcio for its export) or ``grpc``. The same endpoint serves both flags and variables,
so it must name the collector's port for the chosen protocol (4318 for HTTP, 4317 for
gRPC on a standard collector). Over HTTP the endpoint is a base URL and
``/v1/traces`` and ``/v1/metrics`` are appended, except that an endpoint from
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is the traces URL as it is (the
specification's rule); metrics then go to its ``/v1/metrics`` sibling.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)
PREFIXES = ("OTEL_EXPORTER_OTLP_TRACES_", "OTEL_EXPORTER_OTLP_")
GRPC, HTTP_PROTOBUF = "grpc", "http/protobuf"
DEFAULT_PROTOCOL = HTTP_PROTOBUF
TRACES_PATH, METRICS_PATH = "/v1/traces", "/v1/metrics"


class ExportConfigError(ValueError):
    """A setting that cannot be used, explained in one line."""


@dataclass(frozen=True)
class ExportTarget:
    """The collector's ``host:port``, TLS or not, the CA bundle file, the metadata (gRPC)
    or headers (HTTP) sent with each export, the protocol and, over HTTP, the paths."""

    endpoint: str
    insecure: bool
    ca_file: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    protocol: str = DEFAULT_PROTOCOL
    traces_path: str = TRACES_PATH
    metrics_path: str = METRICS_PATH

    def ca_pem(self) -> bytes | None:
        """The CA bundle's bytes; ``None`` (system roots) when unset or unreadable."""
        if not self.ca_file:
            return None
        try:
            return Path(self.ca_file).read_bytes()
        except OSError as exc:
            log.error(
                "collector CA bundle %s unreadable (%s): using system roots", self.ca_file, exc
            )
            return None


def _otel(environ: Mapping[str, str], name: str) -> str | None:
    return _otel_from(environ, name)[0]


def _otel_from(environ: Mapping[str, str], name: str) -> tuple[str | None, str]:
    """The first non-empty ``<prefix><name>`` and the prefix it came with."""
    for prefix in PREFIXES:
        value = environ.get(prefix + name, "").strip()
        if value:
            return value, prefix
    return None, ""


def _protocol(environ: Mapping[str, str]) -> str:
    protocol = (_otel(environ, "PROTOCOL") or DEFAULT_PROTOCOL).lower()
    if protocol not in (GRPC, HTTP_PROTOBUF):
        raise ExportConfigError(
            f"unsupported OTLP protocol {protocol!r}: use {GRPC} or {HTTP_PROTOBUF}"
        )
    return protocol


def _http_paths(path: str, signal_url: bool) -> tuple[str, str]:
    """Traces and metrics paths of an OTLP/HTTP endpoint URL's ``path``: appended to a
    base URL; a signal-specific URL is used as it is."""
    if not signal_url:
        base = path.rstrip("/")
        return base + TRACES_PATH, base + METRICS_PATH
    traces = path or "/"
    base = traces[: -len(TRACES_PATH)] if traces.endswith(TRACES_PATH) else traces.rstrip("/")
    return traces, base + METRICS_PATH


def parse_headers(text: str) -> tuple[tuple[str, str], ...]:
    """``key=value,key2=value2`` (values URL-encoded) as lowercase gRPC metadata."""
    headers = []
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ExportConfigError(f"bad OTLP header {item.strip()!r}: expected key=value")
        headers.append((unquote(key).strip().lower(), unquote(value).strip()))
    return tuple(headers)


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def _token_header(token_file: str) -> tuple[str, str] | None:
    try:
        token = Path(token_file).read_text().strip()
    except OSError as exc:
        log.error("collector token file %s unreadable (%s): exporting without a token",
                  token_file, exc)  # fmt: skip
        return None
    return ("authorization", f"Bearer {token}") if token else None


def resolve(
    collector: str | None,
    ca_file: str | None,
    token_file: str | None,
    insecure: bool | None,
    environ: Mapping[str, str],
) -> ExportTarget | None:
    """The export target, or ``None`` when neither flags nor variables name a collector."""
    from_flag = bool(collector)
    protocol = _protocol(environ)
    url, prefix = (collector, "") if collector else _otel_from(environ, "ENDPOINT")
    if not url:
        return None
    ca_file = ca_file or _otel(environ, "CERTIFICATE")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme and scheme not in ("http", "https"):
        raise ExportConfigError(f"bad collector endpoint {url!r}: use http://, https:// or none")
    parts = urlsplit(url if scheme else f"//{url}")
    if not parts.hostname or not parts.port:
        raise ExportConfigError(f"bad collector endpoint {url!r}: expected [scheme://]HOST:PORT")
    if insecure is None:
        env_insecure = _otel(environ, "INSECURE")
        if scheme:
            insecure = scheme == "http"
        elif env_insecure is not None:
            insecure = _truthy(env_insecure)
        else:
            insecure = from_flag and not ca_file
    elif scheme == "https" and insecure:
        raise ExportConfigError(f"collector endpoint {url!r} is https:// but insecure is set")
    headers = parse_headers(_otel(environ, "HEADERS") or "")
    if token_file and not any(k == "authorization" for k, _ in headers):
        header = _token_header(token_file)
        headers += (header,) if header else ()
    if protocol == GRPC:
        return ExportTarget(parts.netloc, insecure, ca_file, headers, protocol)
    traces, metrics = _http_paths(parts.path, prefix == PREFIXES[0])
    return ExportTarget(parts.netloc, insecure, ca_file, headers, protocol, traces, metrics)
