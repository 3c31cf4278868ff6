"""The server's counters and their Prometheus text exposition (``GET /metrics``).

Counters only grow; the pool gauges (queue depth, busy sessions) are read
from the pools when the page is rendered. Everything is touched from the
event loop only, so no locks are needed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

__all__ = ["Metrics"]

PREFIX = "mimo_ggml"


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)  # (method, route, status)
        self.request_seconds: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])  # route -> [sum, count]
        self.rejected: dict[tuple[str, str], int] = defaultdict(int)  # (pool, reason)
        self.cancelled: dict[str, int] = defaultdict(int)  # pool -> work stopped while running
        self.audio_seconds = 0.0
        self.tokens: dict[tuple[str, str], int] = defaultdict(int)  # (model kind, prompt|completion)
        # name -> () -> (size, busy, waiting, cancelled while queued)
        self.pools: dict[str, Callable[[], tuple[int, int, int, int]]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, str(status))] += 1
        acc = self.request_seconds[route]
        acc[0] += seconds
        acc[1] += 1

    def render(self, ready: bool) -> str:
        out: list[str] = []

        def family(name: str, kind: str, text: str, samples: Iterable[tuple[Iterable[tuple[str, str]], float]]):
            out.append(f"# HELP {PREFIX}_{name} {text}")
            out.append(f"# TYPE {PREFIX}_{name} {kind}")
            for labels, value in samples:
                out.append(f"{PREFIX}_{name}{_labels(labels)} {_number(value)}")

        family("ready", "gauge", "1 when the models are loaded and requests are served.", [((), int(ready))])
        family("http_requests_total", "counter", "HTTP requests answered, by method, route and status.",
               [((("method", m), ("route", r), ("status", s)), n) for (m, r, s), n in sorted(self.requests.items())])
        out.append(f"# HELP {PREFIX}_http_request_seconds Time from request to the end of the response.")
        out.append(f"# TYPE {PREFIX}_http_request_seconds summary")
        for route, (total, count) in sorted(self.request_seconds.items()):
            out.append(f'{PREFIX}_http_request_seconds_sum{{route="{_escape(route)}"}} {_number(total)}')
            out.append(f'{PREFIX}_http_request_seconds_count{{route="{_escape(route)}"}} {count}')
        family("rejected_total", "counter", "Requests refused before running, by pool and reason.",
               [((("pool", p), ("reason", r)), n) for (p, r), n in sorted(self.rejected.items())])
        pools = {name: read() for name, read in sorted(self.pools.items())}
        family("cancelled_total", "counter",
               "Requests whose client went away, by pool and stage (queued: never ran; running: work stopped).",
               [((("pool", p), ("stage", "queued")), v[3]) for p, v in pools.items()]
               + [((("pool", p), ("stage", "running")), n) for p, n in sorted(self.cancelled.items())])
        family("sessions", "gauge", "Sessions in each pool.", [((("pool", p),), v[0]) for p, v in pools.items()])
        family("sessions_busy", "gauge", "Sessions running a request.",
               [((("pool", p),), v[1]) for p, v in pools.items()])
        family("queue_depth", "gauge", "Requests waiting for a session.",
               [((("pool", p),), v[2]) for p, v in pools.items()])
        family("audio_seconds_total", "counter", "Seconds of audio transcribed.", [((), self.audio_seconds)])
        family("tokens_total", "counter", "Tokens processed, by model and kind (prompt or completion).",
               [((("model", m), ("kind", k)), n) for (m, k), n in sorted(self.tokens.items())])
        return "\n".join(out) + "\n"


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value))
