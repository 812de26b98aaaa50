"""Prometheus ``/metrics`` for a running `Pipeline` (needs ``prometheus_client``, imported here only).

Every figure is read from the pipeline when scraped (a custom collector on a private registry), so the
hot path pays nothing for the endpoint and importing yolostream registers nothing globally.

Metrics (labels in braces): ``yolostream_frames_total{stream}``, ``yolostream_frames_decoded_total``,
``yolostream_frames_dropped_total``, ``yolostream_decode_errors_total``, ``yolostream_reconnects_total``,
``yolostream_alarms_total``, ``yolostream_stream_fps``, ``yolostream_stream_up`` (1 while running),
histograms ``yolostream_latency_seconds{stream}`` (capture -> result) and
``yolostream_alarm_latency_seconds{stream}`` (capture -> stored by every sink), batch figures
``yolostream_batch_size`` (histogram) and ``yolostream_inference_seconds_total{stage}``, sink figures
``yolostream_sink_pending{sink}``, ``yolostream_sink_delivered_total{sink}``,
``yolostream_sink_dropped_total{sink,kind}`` and every other sink counter as
``yolostream_sink_stat{sink,stat}``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from yolostream.errors import ConfigError

if TYPE_CHECKING:
    from yolostream.pipeline.app import Pipeline

log = logging.getLogger("yolostream.pipeline")

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class PipelineCollector:
    """A ``prometheus_client`` collector reading ``pipeline.snapshot()`` at each scrape."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def describe(self) -> list[Any]:
        return []  # metric names depend on the sinks configured; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        snap = self.pipeline.snapshot()
        per_stream = {
            "frames": ("frames_total", "Frames through the detector", "frames"),
            "frames_decoded": ("frames_decoded_total", "Frames decoded by the source", "frames_decoded"),
            "drops": ("frames_dropped_total", "Frames dropped: source buffer full or replaced by newer", "drops"),
            "decode_errors": ("decode_errors_total", "Corrupt packets, frames or files", "decode_errors"),
            "reconnects": ("reconnects_total", "Reconnection attempts", "reconnects"),
            "alarms": ("alarms_total", "Alarms raised", "alarms"),
        }
        for name, help_text, attr in per_stream.values():
            family = CounterMetricFamily(f"yolostream_{name.removesuffix('_total')}", help_text, labels=["stream"])
            for s in snap.streams:
                family.add_metric([s.stream], getattr(s, attr))
            yield family
        fps = GaugeMetricFamily("yolostream_stream_fps", "Results per second, last 2 s", labels=["stream"])
        up = GaugeMetricFamily("yolostream_stream_up", "1 while the source is running", labels=["stream"])
        for s in snap.streams:
            fps.add_metric([s.stream], s.fps)
            up.add_metric([s.stream], 1.0 if s.state == "running" else 0.0)
        yield fps
        yield up

        hists = self.pipeline.metrics.histograms()
        for idx, (name, help_text) in enumerate(
            (
                ("yolostream_latency_seconds", "Capture to result (tracked and ruled)"),
                ("yolostream_alarm_latency_seconds", "Capture to alarm stored by every sink"),
            )
        ):
            family = HistogramMetricFamily(name, help_text, labels=["stream"])
            for stream, pair in sorted(hists.items()):
                h = pair[idx]
                family.add_metric([stream], h.cumulative(), sum_value=h.total)
            yield family

        b = snap.batches
        buckets, run = [], 0
        for bound in _BATCH_BUCKETS:
            run += sum(c for size, c in b.sizes.items() if (bound // 2) < size <= bound)
            buckets.append((str(bound), run))
        buckets.append(("+Inf", b.calls))
        batch = HistogramMetricFamily("yolostream_batch_size", "Frames per detector call")
        batch.add_metric([], buckets, sum_value=b.frames)
        yield batch
        stage = CounterMetricFamily("yolostream_inference_seconds", "Detector time by stage", labels=["stage"])
        for label, value in (("preprocess", b.preprocess_s), ("infer", b.infer_s), ("postprocess", b.postprocess_s)):
            stage.add_metric([label], value)
        yield stage
        errors = CounterMetricFamily("yolostream_inference_errors", "Detector calls that failed")
        errors.add_metric([], snap.inference_errors)
        yield errors

        yield from _sink_families(snap.sinks)


def _sink_families(sinks: dict[str, dict[str, int]]) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    pending = GaugeMetricFamily("yolostream_sink_pending", "Records waiting in the sink's outbox", labels=["sink"])
    delivered = CounterMetricFamily("yolostream_sink_delivered", "Records the target confirmed", labels=["sink"])
    dropped = CounterMetricFamily("yolostream_sink_dropped", "Records dropped at the caps", labels=["sink", "kind"])
    other = GaugeMetricFamily("yolostream_sink_stat", "Other sink counters", labels=["sink", "stat"])
    for sink, stats in sorted(sinks.items()):
        for key, value in sorted(stats.items()):
            if key == "pending":
                pending.add_metric([sink], value)
            elif key == "delivered":
                delivered.add_metric([sink], value)
            elif key.startswith("dropped_"):
                dropped.add_metric([sink, key.removeprefix("dropped_")], value)
            else:
                other.add_metric([sink, key], value)
    yield from (pending, delivered, dropped, other)


class MetricsServer:
    """``/metrics`` over HTTP on ``host:port`` (0: a free port; see ``port`` after start)."""

    def __init__(self, pipeline: Pipeline, host: str = "127.0.0.1", port: int = 9400) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError as e:  # optional at import time; a main dependency when installed normally
            raise ConfigError("the metrics endpoint needs prometheus_client: pip install prometheus_client") from e
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(PipelineCollector(pipeline))  # type: ignore[arg-type]
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as e:
            raise ConfigError(f"server: cannot serve metrics on {host}:{port}: {e}") from None
        self.host = host
        self.port = int(self._server.server_address[1])
        log.info("metrics on http://%s:%d/metrics", host, self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
