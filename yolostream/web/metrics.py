"""Prometheus registry of `yolostream serve`: the pipeline's metrics (`PipelineCollector`) and the web side's.

Web metrics: ``yolostream_web_viewers{stream}`` (live viewers now), ``yolostream_web_live_frames_total{stream}``
(JPEGs encoded for them), ``yolostream_web_detect_requests_total`` and
``yolostream_web_detect_refused_total`` (uploads answered 429).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from yolostream.pipeline.prometheus import PipelineCollector


class WebCollector:
    """Reads the web state at each scrape, like `PipelineCollector`."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        viewers = GaugeMetricFamily("yolostream_web_viewers", "Live viewers now", labels=["stream"])
        encoded = CounterMetricFamily("yolostream_web_live_frames", "JPEGs encoded for viewers", labels=["stream"])
        now = self.state.hub.viewers()
        for name in (s.name for s in self.state.loaded.config.sources):
            viewers.add_metric([name], now.get(name, 0))
            encoded.add_metric([name], self.state.hub.encoded[name])
        yield viewers
        yield encoded
        stats = self.state.detect_stats
        yield CounterMetricFamily("yolostream_web_detect_requests", "Uploads detected", value=stats.requests)
        yield CounterMetricFamily(
            "yolostream_web_detect_refused", "Uploads refused: queue full", value=stats.refused_busy
        )


def make_registry(state: Any) -> Any:
    """A private registry (nothing registered globally) with the pipeline's and the web side's collectors."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(state.pipeline))  # type: ignore[arg-type]
    registry.register(WebCollector(state))  # type: ignore[arg-type]
    return registry
