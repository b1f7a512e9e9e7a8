"""In-process Prometheus metrics, fed by the code paths that do the work (DIFFERENCES D18)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from typing import Final

import attrs

DEFAULT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
    return "{" + inner + "}"


@attrs.define
class Counter:
    name: str
    help: str
    values: dict[tuple[tuple[str, str], ...], float] = attrs.field(
        factory=lambda: defaultdict(float)
    )

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] += amount

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        lines += [f"{self.name}{_labels(k)} {v:g}" for k, v in sorted(self.values.items())]
        if not self.values:
            lines.append(f"{self.name} 0")
        return lines

    def snapshot(self) -> dict[str, float]:
        """`name{labels}` → value as the admin dashboard reads them, plus the bare name with
        the sum over every label (what its totals chart looks up)."""
        found = {f"{self.name}{_labels(k)}": v for k, v in sorted(self.values.items())}
        found[self.name] = sum(self.values.values())
        return found


@attrs.define
class Gauge:
    name: str
    help: str
    read: Callable[[], float]

    def render(self) -> list[str]:
        return [
            f"# HELP {self.name} {self.help}",
            f"# TYPE {self.name} gauge",
            f"{self.name} {self.read():g}",
        ]


@attrs.define
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    counts: list[int] = attrs.field(init=False)
    total: float = 0.0
    count: int = 0

    def __attrs_post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        self.total += value
        self.count += 1
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def percentile(self, fraction: float) -> float:
        """The first bucket bound holding `fraction` of the observations (0 when empty)."""
        target = math.ceil(self.count * fraction)
        if target <= 0:
            return 0
        return next(
            (b for b, c in zip(self.buckets, self.counts, strict=True) if c >= target),
            self.buckets[-1],
        )

    def snapshot(self) -> dict[str, object]:
        """The admin dashboard's view of the histogram (cumulative bucket counts)."""
        return {
            "buckets": list(self.buckets),
            "counts": list(self.counts),
            "sum": self.total,
            "count": self.count,
            "avg": self.total / self.count if self.count else 0,
            "p50": self.percentile(0.5),
            "p95": self.percentile(0.95),
            "p99": self.percentile(0.99),
        }

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        lines += [
            f'{self.name}_bucket{{le="{b:g}"}} {c}'
            for b, c in zip(self.buckets, self.counts, strict=True)
        ]
        lines += [
            f'{self.name}_bucket{{le="+Inf"}} {self.count}',
            f"{self.name}_sum {self.total:g}",
            f"{self.name}_count {self.count}",
        ]
        return lines


@attrs.define
class Metrics:
    """Every metric of D18; gauges are bound to live state in main.serve."""

    messages_total: Counter = attrs.field(
        factory=lambda: Counter("agentim_messages_total", "Messages stored, by type")
    )
    ws_messages_total: Counter = attrs.field(
        factory=lambda: Counter("agentim_ws_messages_total", "WebSocket frames, by direction")
    )
    api_errors_total: Counter = attrs.field(
        factory=lambda: Counter("agentim_api_errors_total", "HTTP responses with status >= 400")
    )
    undeliverable_total: Counter = attrs.field(
        factory=lambda: Counter(
            "agentim_undeliverable_agent_messages_total",
            "Messages routed to an agent whose gateway is offline",
        )
    )
    http_duration: Histogram = attrs.field(
        factory=lambda: Histogram("agentim_http_request_duration_seconds", "HTTP request duration")
    )
    agent_response_duration: Histogram = attrs.field(
        factory=lambda: Histogram(
            "agentim_agent_response_duration_seconds",
            "Time from routing to an agent until its reply completes",
        )
    )
    gauges: list[Gauge] = attrs.field(factory=list)

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.gauges.append(Gauge(name, help_text, read))

    def gauge_value(self, name: str) -> float:
        """A bound gauge's current reading (0 when no gauge of that name is bound)."""
        return next((g.read() for g in self.gauges if g.name == name), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        for metric in (
            self.messages_total,
            self.ws_messages_total,
            self.api_errors_total,
            self.undeliverable_total,
            self.http_duration,
            self.agent_response_duration,
        ):
            lines += metric.render()
        for gauge in self.gauges:
            lines += gauge.render()
        return "\n".join(lines) + "\n"
