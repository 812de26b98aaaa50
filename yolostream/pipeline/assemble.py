"""Builds the pipeline's parts from a validated config; errors found here still name the config line.

Nothing is started here: sources are made but not started, so a bad later section leaves no thread
running behind it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yolostream.errors import ConfigError, YolostreamError
from yolostream.pipeline.config import LoadedConfig
from yolostream.pipeline.recording import RecordingStage
from yolostream.pipeline.rules import LineCrossRule, Rule, RuleEngine
from yolostream.pipeline.rules.config import DwellRule, ZoneRule
from yolostream.pipeline.sinks import Sink
from yolostream.pipeline.sources import Source, open_source
from yolostream.pipeline.tracking import Trackers

DEFAULT_FRAME_RATE = 25.0


def build_detector(loaded: LoadedConfig) -> Any:
    """`yolostream.load` with the ``model`` section; ``engine`` keys go as keywords; class names -> ids."""
    from yolostream.api import load

    m = loaded.config.model
    try:
        detector = load(
            m.path,
            m.device,
            m.imgsz,
            conf=m.conf,
            iou=m.iou,
            max_det=m.max_det,
            mode=m.letterbox,
            nms=m.nms,
            agnostic=m.agnostic,
            **m.engine,
        )
    except TypeError as e:  # an engine key `load` does not take
        raise ConfigError(f"{loaded.where('model', 'engine')}: {e}") from None
    except YolostreamError as e:
        raise type(e)(f"{loaded.where('model', 'path')}: {e}") from None
    if m.classes is not None:
        ids = tuple(_class_id(c, detector.names, loaded.where("model", "classes")) for c in m.classes)
        # The class filter acts after the graph, so a compiled engine is kept.
        detector = detector.with_config(classes=ids)
    return detector


def _class_id(c: int | str, names: dict[int, str], where: str) -> int:
    if isinstance(c, int):
        if c not in names:
            raise ConfigError(f"{where}: class id {c} is not a class of the model (0..{len(names) - 1})")
        return c
    by_name = {v: k for k, v in names.items()}
    if c not in by_name:
        raise ConfigError(f"{where}: class {c!r} is not a class of the model; known: {sorted(by_name)}")
    return by_name[c]


def check_rules(loaded: LoadedConfig, names: dict[int, str]) -> None:
    """Rule class names against the model's, and tracking on where a rule needs track IDs."""
    for i, rule in enumerate(loaded.rules):
        for c in rule.classes:
            _class_id(c, names, loaded.where("rules", i, "classes"))
        if isinstance(rule, DwellRule | LineCrossRule) and not loaded.config.tracking.enabled:
            raise ConfigError(f"{loaded.where('rules', i, 'kind')}: a {rule.kind} rule needs tracking.enabled: true")


def build_sources(loaded: LoadedConfig) -> list[Source]:
    sources = []
    for i, s in enumerate(loaded.config.sources):
        try:
            sources.append(open_source(s.name, s.uri, **s.source_options()))
        except ConfigError as e:
            raise ConfigError(f"{loaded.where('sources', i)}: {e}") from None
    return sources


def build_trackers(loaded: LoadedConfig) -> Trackers | None:
    t = loaded.config.tracking
    if not t.enabled:
        return None
    rates = {s.name: s.fps for s in loaded.config.sources if s.fps is not None and t.frame_rate is None}
    return Trackers(
        frame_rate=t.frame_rate or DEFAULT_FRAME_RATE,
        track_thresh=t.track_thresh,
        match_thresh=t.match_thresh,
        lost_buffer=t.lost_buffer,
        frame_rates=rates,
    )


def build_rule_engine(loaded: LoadedConfig) -> RuleEngine:
    sinks = loaded.config.sinks
    network = (sinks.postgres, sinks.mqtt, sinks.webhook)
    snapshot = sinks.snapshots is not None or any(n is not None and n.include_snapshot for n in network)
    quality = sinks.snapshots.jpeg_quality if sinks.snapshots is not None else 85
    return RuleEngine(loaded.rules, snapshot=snapshot, jpeg_quality=quality)


def build_sinks(loaded: LoadedConfig) -> list[Sink]:
    """The configured sinks, snapshots first (a stored row may point at its JPEG)."""
    from yolostream.pipeline import sinks as sk

    c = loaded.config.sinks
    snap_dir: Path | None = c.snapshots.dir if c.snapshots is not None else None
    made: list[Sink] = []
    try:
        if c.snapshots is not None:
            made.append(sk.SnapshotSink(c.snapshots.dir))
        if c.sqlite is not None:
            made.append(_make(loaded, "sqlite", sk.SQLiteSink, snapshot_dir=snap_dir, **c.sqlite.model_dump()))
        if c.jsonl is not None:
            made.append(_make(loaded, "jsonl", sk.JsonlSink, snapshot_dir=snap_dir, **c.jsonl.model_dump()))
        for key, cls in (("postgres", sk.PostgresSink), ("mqtt", sk.MqttSink), ("webhook", sk.WebhookSink)):
            section = getattr(c, key)
            if section is None:
                continue
            opts = section.model_dump(exclude={"outbox"})
            first = opts.pop("host" if key == "mqtt" else "url")
            made.append(
                _make(
                    loaded, key, cls, first, c.state_dir, snapshot_dir=snap_dir, **opts, **section.outbox.model_dump()
                )
            )
    except BaseException:
        for sink in made:
            sink.close(0.0)
        raise
    return made


def _make(loaded: LoadedConfig, key: str, cls: type[Sink], *args: Any, **kwargs: Any) -> Sink:
    try:
        return cls(*args, **kwargs)
    except YolostreamError as e:
        raise type(e)(f"{loaded.where('sinks', key)}: {e}") from None
    except OSError as e:
        raise ConfigError(f"{loaded.where('sinks', key)}: {type(e).__name__}: {e}") from None


def build_recording(loaded: LoadedConfig) -> RecordingStage | None:
    from yolostream.pipeline.sinks import VideoRecorder

    v = loaded.config.sinks.video
    if v is None:
        return None
    try:
        recorder = VideoRecorder(v.dir, fps=v.fps, segment_s=v.segment_s, codec=v.codec, options=v.options)
    except YolostreamError as e:
        raise type(e)(f"{loaded.where('sinks', 'video')}: {e}") from None
    streams = [s.name for s in loaded.config.sources]
    overlays_by_stream = {name: overlays(loaded.rules, name) for name in streams}
    return RecordingStage(recorder, v.streams or None, overlays=overlays_by_stream, max_queue=v.queue_frames)


def overlays(rules: list[Rule], stream: str) -> dict[str, list[Any]]:
    """Zones and lines of the rules that watch ``stream``, for drawing (recordings, the web live view)."""
    zones: list[Any] = []
    lines: list[Any] = []
    for rule in rules:
        if rule.streams and stream not in rule.streams:
            continue
        if isinstance(rule, ZoneRule) and rule.zone is not None:
            zones.append(list(rule.zone))
        elif isinstance(rule, LineCrossRule):
            lines.append(rule.line)
    return {"zones": zones, "lines": lines}
