"""OTLP/JSON → protobuf messages.

OTLP/JSON is protobuf's JSON mapping with one exception: trace and span ids are
hex strings, not base64. So the ids are rewritten to base64 before
``json_format.ParseDict``. An id that is not valid hex becomes a one-byte id,
which validation then rejects (and counts) like any other invalid id.
Unknown fields are ignored, as the OTLP spec requires of receivers.
"""

from __future__ import annotations

import base64
import binascii
import json

from google.protobuf import json_format

from tracestore.otlp_columns import DecodeError

_ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")
_INVALID_ID = base64.b64encode(b"\x00").decode()


def _hex_ids_to_base64(node: object) -> None:
    """Rewrite id fields in place wherever they appear (spans, links, exemplars)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                node[key] = _base64_id(value)
            else:
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)


def _base64_id(text: str) -> str:
    if not text:
        return ""
    try:
        return base64.b64encode(binascii.unhexlify(text)).decode()
    except (binascii.Error, ValueError):
        return _INVALID_ID


def parse(message_type: type, body: bytes):
    """Decode an OTLP/JSON body into ``message_type``; raises DecodeError.

    Nesting deeper than Python's recursion limit (``[`` × 100,000) is a
    DecodeError too: the JSON parser, the id rewrite and ``ParseDict`` all recurse."""
    try:
        document = json.loads(body)
        if not isinstance(document, dict):
            raise DecodeError("OTLP/JSON body must be a JSON object")
        _hex_ids_to_base64(document)
        return json_format.ParseDict(document, message_type(), ignore_unknown_fields=True)
    except DecodeError:
        raise
    except RecursionError:
        raise DecodeError("OTLP/JSON body is nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"body is not valid JSON: {exc}") from None
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise DecodeError(f"not an OTLP {message_type.__name__}: {exc}") from None


def to_json(message) -> bytes:
    """A response as OTLP/JSON (responses carry no ids)."""
    return json.dumps(json_format.MessageToDict(message)).encode()
