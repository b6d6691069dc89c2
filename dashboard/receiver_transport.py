"""How the alerter reaches one receiver: its TLS trust and its credentials.

A receiver may trust a private CA (``ca_file``) and authenticate with a bearer
token or HTTP basic auth, as Alertmanager's and Prometheus's ``http_config`` do.
Secrets live in files (Kubernetes Secrets mounted as files) and are read at each
send, so a rotated token is used without a restart; an unreadable file is a
failed send with the reason, never a crash of the sender thread.
"""

from __future__ import annotations

import base64
import logging
import ssl
from pathlib import Path

import httpx

from slospec.slo_config import Receiver

log = logging.getLogger(__name__)


class CredentialsError(OSError):
    """A receiver's secret file could not be read; the message names the file."""


def _secret(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc.strerror or exc}") from None


def auth_headers(receiver: Receiver) -> dict[str, str]:
    """The ``Authorization`` header for ``receiver`` (none without credentials)."""
    if receiver.bearer_token_file:
        return {"Authorization": f"Bearer {_secret(receiver.bearer_token_file)}"}
    if receiver.basic_auth_username and receiver.basic_auth_password_file:
        pair = f"{receiver.basic_auth_username}:{_secret(receiver.basic_auth_password_file)}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    return {}


def client_for(receiver: Receiver) -> httpx.Client:
    """An HTTP client trusting the receiver's CA (or the system's) for its sender thread.

    An unreadable CA file is logged and the system's trust used instead: the sends
    then fail with a certificate error, recorded in the notification log.
    """
    if not receiver.ca_file:
        return httpx.Client()
    try:
        return httpx.Client(verify=ssl.create_default_context(cafile=receiver.ca_file))
    except (OSError, ssl.SSLError) as exc:
        log.error("receiver %s: cannot load ca_file %s: %s", receiver.name, receiver.ca_file, exc)
        return httpx.Client()
