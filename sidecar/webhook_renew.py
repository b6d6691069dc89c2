"""The self-signed path's renewal: new certificates before the old ones expire.

``sidetrace webhook renew`` (a daily CronJob in ``deploy/``) reads the webhook's TLS
Secret through the Kubernetes API. While its certificate is valid for longer than
``renew_before`` it does nothing; otherwise it makes a new CA and certificate,
writes them to the Secret (the webhook reloads the mounted files without a
restart) and sets each webhook's ``caBundle`` to the new CA followed by the old,
so the API server trusts the webhook both before and after it reloads.
"""

from __future__ import annotations

import base64
import datetime
import json
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

from sidecar.kube_namespaces import KubeAPI


@dataclass(frozen=True)
class Renewal:
    renewed: bool
    not_after: datetime.datetime  # of the certificate now in the Secret


def not_after(cert_pem: bytes) -> datetime.datetime:
    from cryptography import x509

    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc


class _Client:
    def __init__(self, api: KubeAPI) -> None:
        token = Path(api.token_file).read_text().strip()
        self._http = httpx.Client(
            base_url=api.url,
            headers={"Authorization": f"Bearer {token}"},
            verify=ssl.create_default_context(cafile=api.ca_file),
            timeout=10.0,
        )

    def call(self, method: str, path: str, **kwargs) -> dict:
        reply = self._http.request(method, path, **kwargs)
        reply.raise_for_status()
        return reply.json()


def renew(
    api: KubeAPI,
    namespace: str,
    secret: str,
    service: str,
    configuration: str,
    renew_before: datetime.timedelta,
    days: int,
) -> Renewal:
    """Renew the Secret's certificate if it expires within ``renew_before``."""
    from sidecar.webhook_certs import make_certs, service_dns_names

    client = _Client(api)
    secret_path = f"/api/v1/namespaces/{namespace}/secrets/{secret}"
    current = client.call("GET", secret_path)
    data = current.get("data") or {}
    old_cert = base64.b64decode(data.get("tls.crt", ""))
    now = datetime.datetime.now(datetime.UTC)
    if old_cert and not_after(old_cert) - now > renew_before:
        return Renewal(False, not_after(old_cert))
    made = make_certs(service_dns_names(service, namespace), (), days)
    current["data"] = {
        "ca.crt": base64.b64encode(made.ca_pem).decode(),
        "tls.crt": base64.b64encode(made.cert_pem).decode(),
        "tls.key": base64.b64encode(made.key_pem).decode(),
    }
    bundle = made.ca_pem + base64.b64decode(data.get("ca.crt", ""))
    # The API server must trust the old serving certificate until the webhook reloads.
    webhooks_path = (
        f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{configuration}"
    )
    webhooks = client.call("GET", webhooks_path).get("webhooks") or []
    patch = [
        {
            "op": "add",
            "path": f"/webhooks/{i}/clientConfig/caBundle",
            "value": base64.b64encode(bundle).decode(),
        }
        for i in range(len(webhooks))
    ]
    if patch:  # first, so the new certificate is trusted the moment the webhook serves it
        headers = {"Content-Type": "application/json-patch+json"}
        client.call("PATCH", webhooks_path, content=json.dumps(patch), headers=headers)
    client.call("PUT", secret_path, json=current)
    return Renewal(True, not_after(made.cert_pem))
