"""Namespace annotations from the Kubernetes API: the webhook's namespace-wide defaults.

The webhook reads ``GET /api/v1/namespaces/NAME`` with its service account (RBAC:
``get`` on ``namespaces``) and keeps each answer for a short while, so a burst of
pods in one namespace costs one request.
"""

from __future__ import annotations

import os
import re
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class KubeAPI:
    url: str
    token_file: str
    ca_file: str

    @classmethod
    def in_cluster(cls) -> KubeAPI | None:
        """The API server as seen from a pod, or None outside a cluster."""
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        if not host or not (SERVICE_ACCOUNT / "token").exists():
            return None
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        host = f"[{host}]" if ":" in host else host
        return cls(
            f"https://{host}:{port}",
            str(SERVICE_ACCOUNT / "token"),
            str(SERVICE_ACCOUNT / "ca.crt"),
        )


def own_image(api: KubeAPI, namespace: str, pod: str, container: str) -> str:
    """The image of (init) ``container`` in the running pod ``namespace/pod`` (RBAC: ``get``
    pods). The webhook's pod runs the sidecar image in an init container, so the image
    injected is whatever the Deployment says, kustomize ``images:`` overrides included.
    """
    token = Path(api.token_file).read_text().strip()
    context = ssl.create_default_context(cafile=api.ca_file)
    reply = httpx.get(
        f"{api.url}/api/v1/namespaces/{namespace}/pods/{pod}",
        headers={"Authorization": f"Bearer {token}"},
        verify=context,
        timeout=10.0,
    )
    reply.raise_for_status()
    spec = reply.json().get("spec", {})
    for item in spec.get("initContainers", []) + spec.get("containers", []):
        if item.get("name") == container:
            return str(item["image"])
    raise LookupError(f"pod {namespace}/{pod} has no container {container!r}")


class NamespaceAnnotations:
    """Cached namespace annotations; an unreachable API raises (the caller decides)."""

    def __init__(self, api: KubeAPI | None, ttl_s: float = 30.0) -> None:
        self.api = api
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, dict[str, str]]] = {}
        self._client: httpx.AsyncClient | None = None

    async def get(self, namespace: str) -> dict[str, str]:
        if self.api is None or not _NAMESPACE.match(namespace):
            return {}
        cached = self._cache.get(namespace)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        if self._client is None:
            context = ssl.create_default_context(cafile=self.api.ca_file)
            self._client = httpx.AsyncClient(verify=context, timeout=3.0)
        # The token is read each time: projected service account tokens rotate.
        token = Path(self.api.token_file).read_text().strip()
        reply = await self._client.get(
            f"{self.api.url}/api/v1/namespaces/{namespace}",
            headers={"Authorization": f"Bearer {token}"},
        )
        if reply.status_code == 404:
            annotations: dict[str, str] = {}
        else:
            reply.raise_for_status()
            annotations = reply.json().get("metadata", {}).get("annotations") or {}
        self._cache[namespace] = (time.monotonic() + self.ttl_s, annotations)
        return annotations

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
