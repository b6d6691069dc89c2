"""``http.route`` for a path: the configured template it matches, else none.

The HTTP semantic conventions allow ``http.route`` only from what the app's
routing really is; a route guessed from paths could put user data (ids, names)
into span names and metric labels. So routes come only from configuration
(``--route``, the ``sidetrace.io/routes`` pod annotation); a path no template
matches has no route. Runs on the telemetry thread, never on the request path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_CACHE_LIMIT = 4096


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^/{}]+\})", template)
    pattern = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(pattern)


class RouteMatcher:
    """Maps ``url.path`` to the first configured template it matches, or ``""``."""

    def __init__(self, templates: Iterable[str] = ()):
        self._templates = [(t, _template_regex(t)) for t in templates]
        self._cache: dict[str, str] = {}

    def route(self, path: str) -> str:
        if not self._templates:
            return ""
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        route = next((t for t, regex in self._templates if regex.fullmatch(path)), "")
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[path] = route
        return route
