"""Reading the services' Prometheus pages."""

from __future__ import annotations

import re

import aiohttp

from tests.helpers.processes import ServiceProcess

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


async def scrape(
    http: aiohttp.ClientSession, base_url: str
) -> dict[tuple[str, frozenset[str]], float]:
    """Parse a Prometheus text page into {(name, labels): value}."""
    async with http.get(f"{base_url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples = {}
    for line in text.splitlines():
        if match := SAMPLE.match(line):
            labels = frozenset(filter(None, (match["labels"] or "").split(",")))
            samples[(match["name"], labels)] = float(match["value"])
    return samples


def total(samples: dict[tuple[str, frozenset[str]], float], name: str, *labels: str) -> float:
    """Sum of a series over every label set containing `labels` (e.g. 'route="/messages"')."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels) <= ls)


async def metric_value(http: aiohttp.ClientSession, gateway: ServiceProcess, series: str) -> float:
    """The value of one exact Prometheus series (name with labels) on the gateway, 0 if absent."""
    async with http.get(f"{gateway.url}/metrics") as reply:
        text = await reply.text()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0
