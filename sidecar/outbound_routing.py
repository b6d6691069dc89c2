"""Where an outbound request goes: the app's own choice, as a proxy client would state it.

An app that uses the sidecar as its HTTP proxy names the destination in an
absolute-form target (``http://host:port/path``) or a ``CONNECT host:port``; one whose
connection was redirected by iptables has an original destination, which wins over what
the request says (the app dialled it). Otherwise the Host field names it.
"""

from __future__ import annotations

import httptools

from sidecar.hostport import split_host_port

Address = tuple[str, int]


def outbound_route(
    method: str, target: bytes, host: bytes, original: Address | None
) -> tuple[Address | None, bytes]:
    """The destination of an outbound request (``None``: it names none usable) and the
    target to send on: an absolute-form one becomes origin-form, the next hop being no
    proxy."""
    if method == "CONNECT":
        return split_host_port(target.decode("latin-1"), 443), target
    if target.startswith(b"http://"):
        try:
            url = httptools.parse_url(target)
        except httptools.HttpParserInvalidURLError:
            return None, target
        target = (url.path or b"/") + (b"?" + url.query if url.query else b"")
        if original is None:
            return (url.host.decode("latin-1"), url.port or 80), target
    if original is not None:
        return original, target
    return split_host_port(host.decode("latin-1"), 80), target
