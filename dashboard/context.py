"""What every dashboard route module is handed: the store and the page settings.

Feature modules (traces, analytics, SLOs, alerts) receive one shared
``DashboardContext`` so they never reach for globals; ``state`` holds whatever
a module builds in its ``startup(ctx)`` (caches, background tasks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.templating import Jinja2Templates

from dashboard import EXTERNAL_URL, SLO_INTERVAL_S
from tracestore.store import Store

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

# A trace larger than this is cut, and the page says how many spans were left out.
DEFAULT_MAX_TRACE_SPANS = 10_000


def default_templates() -> Jinja2Templates:
    return Jinja2Templates(directory=str(TEMPLATES_DIR))


@dataclass(frozen=True)
class AuthSettings:
    """Optional protection for the whole dashboard: a bearer token and/or basic auth.

    Both unset (the default, for the demo) means no authentication.
    """

    token: str | None = None
    basic_user: str | None = None
    basic_password: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.token or self.basic_user)

    @classmethod
    def from_flags(cls, token: str | None, basic: str | None) -> AuthSettings:
        """Build from ``--auth-token`` and ``--basic-auth USER:PASSWORD``."""
        user = password = None
        if basic:
            user, sep, password = basic.partition(":")
            if not sep or not user:
                raise ValueError("--basic-auth expects USER:PASSWORD")
        return cls(token=token or None, basic_user=user, basic_password=password)


@dataclass
class DashboardContext:
    store: Store
    templates: Jinja2Templates = field(default_factory=default_templates)
    external_url: str = EXTERNAL_URL
    auth: AuthSettings = field(default_factory=AuthSettings)
    slo_files: list[str] = field(default_factory=list)
    max_trace_spans: int = DEFAULT_MAX_TRACE_SPANS
    slo_interval: float = SLO_INTERVAL_S  # seconds between SLO evaluations
    # TEST/DEMO ONLY: divides SLO windows, for, keep_firing_for and repeat_interval.
    slo_time_scale: float = 1.0
    # Per-module runtime state created in startup(ctx), keyed by the module's name.
    state: dict[str, Any] = field(default_factory=dict)
