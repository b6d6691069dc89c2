"""Which protocol a connection speaks, from its first bytes.

Anything an HTTP server might take for a request line (any method token, any case) is
HTTP to the sidecar too, so it is parsed (and refused if invalid), never piped raw to the
app: a first line with an HTTP version, or its beginning while it is still arriving.
"""

from __future__ import annotations

import re

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HTTP_START = re.compile(rb"[A-Z]{3,16} ")  # the common case, known from its first bytes
_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_REQUEST_LINE = re.compile(rb"%s+[ \t][^\r\n]*[ \t]HTTP/" % _TCHAR, re.IGNORECASE)
_MAYBE_REQUEST_LINE = re.compile(rb"%s{1,32}(?:[ \t][^\r\n]*)?" % _TCHAR)


def is_http_request(data: bytes) -> bool | None:
    """Whether a connection's first bytes (after any empty lines) are an HTTP/1.x request,
    as good as one to the app's HTTP parser, or (``None``) cannot be told yet."""
    if _HTTP_START.match(data):
        return True
    end = data.find(b"\n")
    if end >= 0:
        return _REQUEST_LINE.match(data, 0, end) is not None
    if not data or _MAYBE_REQUEST_LINE.fullmatch(data):
        return None
    return False
