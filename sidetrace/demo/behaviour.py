"""How the sample services behave: latency with a long tail, rare errors, a scheduled incident.

Pure functions of a random source and the clock, so the load looks realistic
and the incident schedule is the same in every process without a control channel.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Latency:
    """Lognormal latency: the median and the spread (sigma of the underlying normal)."""

    median_ms: float
    sigma: float = 0.5

    def sample_ms(self, rng: random.Random) -> float:
        return self.median_ms * math.exp(rng.gauss(0.0, self.sigma))


@dataclass(frozen=True)
class IncidentSchedule:
    """A latency incident of ``length_s`` seconds every ``every_s`` seconds.

    The first one starts ``first_at_s`` seconds after ``epoch`` (Unix seconds), the
    moment the demo started; every process computes the same windows from the clock.
    """

    epoch: float
    first_at_s: float = 30.0
    every_s: float = 180.0
    length_s: float = 45.0
    extra_ms: float = 700.0

    def active(self, now: float) -> bool:
        if self.every_s <= 0 or self.length_s <= 0:
            return False
        since = now - self.epoch - self.first_at_s
        return since >= 0 and (since % self.every_s) < self.length_s

    def next_change(self, now: float) -> tuple[bool, float]:
        """Whether an incident is on now, and how many seconds until that changes."""
        since = now - self.epoch - self.first_at_s
        if self.every_s <= 0 or self.length_s <= 0:
            return False, math.inf
        if since < 0:
            return False, -since
        phase = since % self.every_s
        if phase < self.length_s:
            return True, self.length_s - phase
        return False, self.every_s - phase


@dataclass(frozen=True)
class Behaviour:
    """One service's latency and error rate, plus the incident that may slow it."""

    latency: Latency
    error_rate: float = 0.005
    incident: IncidentSchedule | None = None

    def delay_s(self, rng: random.Random, now: float) -> float:
        ms = self.latency.sample_ms(rng)
        if self.incident is not None and self.incident.active(now):
            ms += self.incident.extra_ms * math.exp(rng.gauss(0.0, 0.25))
        return ms / 1000.0

    def fails(self, rng: random.Random) -> bool:
        return rng.random() < self.error_rate
