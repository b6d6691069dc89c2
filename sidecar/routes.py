"""``http.route`` for a path: a configured template when one matches, else a detected one.

Detection replaces segments that look like identifiers (numbers, UUIDs, long hex
or mixed tokens) with ``{id}`` so metrics keep a bounded label set. It runs on the
telemetry thread, never on the request path, and caches its answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_ID_SEGMENT = re.compile(
    r"\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{16,}|(?=[^/]*\d)[A-Za-z0-9_\-]{20,}"
)
_CACHE_LIMIT = 4096


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^/{}]+\})", template)
    pattern = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(pattern)


class RouteMatcher:
    """Maps ``url.path`` to a low-cardinality ``http.route``."""

    def __init__(self, templates: Iterable[str] = (), detect: bool = True):
        self._templates = [(t, _template_regex(t)) for t in templates]
        self._detect = detect
        self._cache: dict[str, str] = {}

    def route(self, path: str) -> str:
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        route = self._compute(path)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[path] = route
        return route

    def _compute(self, path: str) -> str:
        for template, regex in self._templates:
            if regex.fullmatch(path):
                return template
        if not self._detect:
            return ""
        return "/".join("{id}" if _ID_SEGMENT.fullmatch(s) else s for s in path.split("/"))
