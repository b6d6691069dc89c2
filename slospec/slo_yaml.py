"""YAML documents with their node positions, and JSON-schema checks that name the line.

SLO files are validated against ``schemas/slo.schema.json``; every problem is
reported as ``FILE:LINE: FIELD: message`` so a user can go straight to it. The
line comes from the YAML node marks of the field (the key's line for mapping
entries).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import yaml

Path_ = tuple[str | int, ...]

_PATTERN_HINTS = {
    "duration": "is not a duration (a number and unit: 300ms, 5m, 1h30m, 30d)",
    "name": "is not a valid name (letters, digits and _ . : -, starting with a letter or digit)",
    "percent": 'is not a percentage (like 99.5 or "99.5%")',
}


@dataclass(frozen=True)
class Issue:
    """One problem in a document: where (a field path) and what."""

    path: Path_
    message: str


@dataclass(frozen=True)
class Document:
    """One YAML document: its parsed value and its node tree for line numbers."""

    data: Any
    node: yaml.Node

    def line_of(self, path: Path_) -> int:
        """1-based line of the field at ``path`` (the deepest part of it that exists)."""
        node = self.node
        line = node.start_mark.line + 1
        for part in path:
            if isinstance(node, yaml.MappingNode):
                entry = next((kv for kv in node.value if kv[0].value == part), None)
                if entry is None:
                    break
                line, node = entry[0].start_mark.line + 1, entry[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    break
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        return line


class YamlSyntaxError(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def read_documents(text: str) -> list[Document]:
    """All documents of a YAML stream (``---`` separated), parsed safely."""
    loader = yaml.SafeLoader(text)
    documents = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                documents.append(Document(loader.construct_document(node), node))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlSyntaxError(line, f"{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(1, str(exc)) from None
    finally:
        loader.dispose()
    return documents


def field_name(path: Path_) -> str:
    """``('slos', 0, 'target')`` -> ``slos[0].target``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


@cache
def _schema() -> dict[str, Any]:
    text = (resources.files("schemas") / "slo.schema.json").read_text()
    return json.loads(text)


@cache
def _validator(definition: str) -> jsonschema.protocols.Validator:
    schema = _schema()
    root = {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}
    return jsonschema.Draft202012Validator(root)


def schema_issues(data: Any, definition: str, unknown_field: tuple[str, str]) -> list[Issue]:
    """Check ``data`` against one definition of the SLO schema.

    ``unknown_field`` is the message for a field the schema does not allow and the
    word for the list of allowed ones (the OpenSLO reader says "not supported").
    """
    issues: list[Issue] = []
    errors = sorted(_validator(definition).iter_errors(data), key=lambda e: str(e.absolute_path))
    for error in errors:
        issues.extend(_explain(error, unknown_field))
    return issues


def _explain(error: jsonschema.ValidationError, unknown_field: tuple[str, str]) -> list[Issue]:
    path: Path_ = tuple(error.absolute_path)
    kind, schema, value = error.validator, error.schema, error.instance
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed), key=str)
        message = f"{unknown_field[0]} ({unknown_field[1]}: {', '.join(allowed)})"
        return [Issue((*path, key), message) for key in extra]
    if kind == "required":
        missing = [k for k in error.validator_value if k not in value]
        return [Issue(path, f"missing required field {k!r}") for k in missing]
    if kind == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        return [Issue(path, f"expected {wanted}, got {_type_name(value)} {value!r}")]
    if kind == "pattern":
        defs = _schema()["$defs"]
        pattern = schema.get("pattern")
        hint = next((h for n, h in _PATTERN_HINTS.items() if defs[n]["pattern"] == pattern), None)
        if hint is None and schema.get("pattern") == "^https?://":
            hint = "is not an http:// or https:// URL"
        return [Issue(path, f"{value!r} {hint or 'does not match ' + schema['pattern']}")]
    if kind == "enum":
        options = ", ".join(str(o) for o in error.validator_value)
        return [Issue(path, f"{value!r} is not one of: {options}")]
    if kind == "const":
        return [Issue(path, f"{value!r} is not supported (only {error.validator_value!r})")]
    if kind in ("exclusiveMinimum", "minimum"):
        return [Issue(path, f"{value!r} is out of range: must be > {error.validator_value}")]
    if kind in ("exclusiveMaximum", "maximum"):
        return [Issue(path, f"{value!r} is out of range: must be < {error.validator_value}")]
    if kind == "maxItems":
        return [Issue(path, f"only {error.validator_value} entry is supported")]
    if kind == "minItems":
        return [Issue(path, f"needs at least {error.validator_value} entry")]
    return [Issue(path, error.message)]


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "mapping", list: "list", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )
