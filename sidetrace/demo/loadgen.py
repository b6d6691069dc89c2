"""Realistic traffic for the sample system: a mix of routes at a steady open-loop rate.

Arrivals are Poisson at ``rate`` requests per second and do not wait for earlier
answers (so an incident slows requests down without slowing the load), with a
cap on requests in flight so a stuck system cannot pile up unbounded work.
"""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass

import httpx

# (weight, method, path template); {item} and {order} are filled at random.
ROUTES: tuple[tuple[float, str, str], ...] = (
    (0.35, "POST", "/checkout?item={item}"),
    (0.30, "GET", "/products"),
    (0.20, "GET", "/products/{item}"),
    (0.10, "GET", "/orders/{order}"),
    (0.05, "GET", "/"),
)


@dataclass
class LoadStats:
    sent: int = 0
    ok: int = 0
    failed: int = 0


def pick_request(rng: random.Random) -> tuple[str, str]:
    """One (method, path) from the route mix."""
    weights = [w for w, _, _ in ROUTES]
    _, method, template = rng.choices(ROUTES, weights=weights)[0]
    return method, template.format(item=rng.randint(1, 20), order=rng.randint(1000, 9999))


class LoadGenerator:
    """Sends the route mix to the frontend from a background thread."""

    def __init__(self, base_url: str, rate: float, max_in_flight: int = 200) -> None:
        self.base_url = base_url
        self.rate = rate
        self.max_in_flight = max_in_flight
        self.stats = LoadStats()
        self.rng = random.Random()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loadgen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        asyncio.run(self._generate())

    async def _generate(self) -> None:
        slots = asyncio.Semaphore(self.max_in_flight)
        limits = httpx.Limits(max_connections=self.max_in_flight)
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=15.0, limits=limits, trust_env=False
        ) as client:
            tasks: set[asyncio.Task[None]] = set()
            while not self._stop.is_set():
                await asyncio.sleep(self.rng.expovariate(self.rate))
                if slots.locked():
                    continue  # shed load rather than queue it
                await slots.acquire()
                task = asyncio.create_task(self._one(client, slots))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(tasks, timeout=10.0)

    async def _one(self, client: httpx.AsyncClient, slots: asyncio.Semaphore) -> None:
        method, path = pick_request(self.rng)
        self.stats.sent += 1
        try:
            response = await client.request(method, path)
            if response.status_code < 500:
                self.stats.ok += 1
            else:
                self.stats.failed += 1
        except httpx.HTTPError:
            self.stats.failed += 1
        finally:
            slots.release()
