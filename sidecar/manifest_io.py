"""Reading and writing Kubernetes manifests without losing comments or key order.

YAML goes through ruamel.yaml's round-trip mode (comments, key order, quoting and
the file's list indentation survive); JSON stays JSON with its key order.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML

# "key:" followed by a deeper "- " line means lists are indented under their key.
_INDENTED_LIST = re.compile(r"^( *)[^\s#-][^\n]*:[ \t]*\n(?:[ \t]*#[^\n]*\n)*( *)- ", re.MULTILINE)


@dataclass
class Manifest:
    """The documents of one input, and how to write them back."""

    documents: list[Any]
    is_json: bool
    indented_lists: bool = False
    explicit_start: bool = False


def _yaml(indented_lists: bool) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    if indented_lists:
        yaml.indent(mapping=2, sequence=4, offset=2)
    else:
        yaml.indent(mapping=2, sequence=2, offset=0)
    return yaml


def parse(text: str) -> Manifest:
    """Parse a YAML stream or one JSON document."""
    if text.lstrip().startswith(("{", "[")):
        return Manifest([json.loads(text)], is_json=True)
    match = _INDENTED_LIST.search(text)
    indented = bool(match and len(match.group(2)) > len(match.group(1)))
    documents = [d for d in _yaml(indented).load_all(text) if d is not None]
    return Manifest(documents, False, indented, text.lstrip().startswith("---"))


def render(manifest: Manifest) -> str:
    """The documents as text in the format they came in."""
    if manifest.is_json:
        return "".join(json.dumps(d, indent=2) + "\n" for d in manifest.documents)
    yaml = _yaml(manifest.indented_lists)
    yaml.explicit_start = manifest.explicit_start or len(manifest.documents) > 1
    out = io.StringIO()
    yaml.dump_all(manifest.documents, out)
    return out.getvalue()
