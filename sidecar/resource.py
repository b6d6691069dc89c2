"""The sidecar's OpenTelemetry resource, filled from flags and the Downward API environment.

``RESOURCE_ENV`` is the contract with pod injection: the injector sets these
variables (``fieldRef`` for the pod fields), the sidecar reads them. Each variable
is also the environment form of a ``sidetrace sidecar`` flag (``--pod-name`` is
``SIDETRACE_POD_NAME``), so flags override nothing unexpected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# resource attribute -> (environment variable, Downward API fieldPath or None)
RESOURCE_ENV: dict[str, tuple[str, str | None]] = {
    "service.name": ("SIDETRACE_SERVICE_NAME", None),
    "service.version": ("SIDETRACE_SERVICE_VERSION", None),
    "k8s.pod.name": ("SIDETRACE_POD_NAME", "metadata.name"),
    "k8s.namespace.name": ("SIDETRACE_POD_NAMESPACE", "metadata.namespace"),
    "k8s.node.name": ("SIDETRACE_NODE_NAME", "spec.nodeName"),
    "k8s.pod.uid": ("SIDETRACE_POD_UID", "metadata.uid"),
}


def resource_attributes(
    overrides: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Resource attributes from ``overrides`` (flag values) falling back to the environment."""
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    attributes: dict[str, str] = {}
    for key, (env, _field) in RESOURCE_ENV.items():
        value = overrides.get(key) or environ.get(env)
        if value:
            attributes[key] = value
    attributes.setdefault("service.name", "unknown_service")
    attributes["telemetry.sdk.language"] = "python"
    attributes["telemetry.sdk.name"] = "sidetrace-sidecar"
    return attributes
