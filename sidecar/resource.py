"""The sidecar's OpenTelemetry resource, filled from flags and the Downward API environment.

``RESOURCE_ENV`` is the contract with pod injection: the injector sets these
variables (``fieldRef`` for the pod fields), the sidecar reads them. Each variable
is also the environment form of a ``sidetrace sidecar`` flag (``--pod-name`` is
``SIDETRACE_POD_NAME``), so flags override nothing unexpected.

The OpenTelemetry SDK variables are honoured below those: ``OTEL_SERVICE_NAME``
names the service when no flag does, ``OTEL_RESOURCE_ATTRIBUTES`` adds attributes
nothing else set (as the SDKs do, ``OTEL_SERVICE_NAME`` beats its ``service.name``).
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from collections.abc import Mapping

log = logging.getLogger(__name__)

# The semantic conventions version the sidecar's spans and metrics follow.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"
SDK_NAME, SDK_LANGUAGE, SDK_VERSION = "sidetrace", "python", "0.1.0"

# resource attribute -> (environment variable, Downward API fieldPath or None)
RESOURCE_ENV: dict[str, tuple[str, str | None]] = {
    "service.name": ("SIDETRACE_SERVICE_NAME", None),
    "service.version": ("SIDETRACE_SERVICE_VERSION", None),
    "k8s.pod.name": ("SIDETRACE_POD_NAME", "metadata.name"),
    "k8s.namespace.name": ("SIDETRACE_POD_NAMESPACE", "metadata.namespace"),
    "k8s.node.name": ("SIDETRACE_NODE_NAME", "spec.nodeName"),
    "k8s.pod.uid": ("SIDETRACE_POD_UID", "metadata.uid"),
}


def parse_otel_resource_attributes(value: str) -> dict[str, str]:
    """``OTEL_RESOURCE_ATTRIBUTES``: ``key=value`` pairs, comma-separated, values
    percent-encoded. Any malformed pair discards the whole value (the SDK rule)."""
    attributes: dict[str, str] = {}
    for pair in value.split(","):
        if not pair.strip():
            continue
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            log.warning("OTEL_RESOURCE_ATTRIBUTES ignored: %r is not key=value", pair)
            return {}
        try:
            attributes[key] = urllib.parse.unquote(raw.strip(), errors="strict")
        except UnicodeDecodeError:
            log.warning("OTEL_RESOURCE_ATTRIBUTES ignored: %r is not percent-encoded UTF-8", pair)
            return {}
    return attributes


def resource_attributes(
    overrides: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Resource attributes from ``overrides`` (flag values), then the sidecar's
    environment, then the OpenTelemetry SDK variables; ``telemetry.sdk.*`` last."""
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    attributes = parse_otel_resource_attributes(environ.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    if environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = environ["OTEL_SERVICE_NAME"]
    for key, (env, _field) in RESOURCE_ENV.items():
        value = overrides.get(key) or environ.get(env)
        if value:
            attributes[key] = value
    for key, value in overrides.items():
        if value and key not in RESOURCE_ENV:
            attributes[key] = value
    if not attributes.get("service.name"):
        attributes["service.name"] = "unknown_service"
    attributes["telemetry.sdk.name"] = SDK_NAME
    attributes["telemetry.sdk.language"] = SDK_LANGUAGE
    attributes["telemetry.sdk.version"] = SDK_VERSION
    return attributes
