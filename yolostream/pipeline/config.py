"""The pipeline's YAML config as typed pydantic models; `load_config` validates a file and names the line.

Sections: ``model`` (detector and engine), ``sources`` (cameras, streams, files, folders), ``zones`` and
``lines`` (named geometry that rules refer to), ``rules`` (alarm rules, see `yolostream.pipeline.rules`),
``tracking``, ``batcher``, ``sinks`` and ``server``. ``examples/pipeline.yaml`` documents every key.
Relative paths are taken from the config file's folder; ``${VAR}`` and ``${VAR:-default}`` in any string
are read from the environment (keep passwords out of the file).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from yolostream.errors import ConfigError
from yolostream.pipeline.rules import Rule, parse_rule
from yolostream.pipeline.yaml_lines import KeyPath, format_path, line_of, read_yaml, resolve

Fraction01 = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
Point = tuple[float, float]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Section):
    """The detector: see `yolostream.load`. ``engine`` is passed as keywords to it (compile mode, buckets,
    dtype...); ``classes`` may be ids or the model's class names."""

    path: Path | None = None  # None: the bundled demo model
    device: str = "cpu"
    imgsz: Annotated[int, Field(ge=32, multiple_of=32)] = 640
    conf: Fraction01 = 0.25
    iou: Fraction01 = 0.7
    max_det: Annotated[int, Field(ge=1)] = 300
    classes: list[int | str] | None = None
    nms: bool = True
    agnostic: bool = False
    letterbox: Literal["square", "rect"] = "square"
    engine: dict[str, Any] = Field(default_factory=dict)


class SourceConfig(_Section):
    """One input; keys left out take the source class's defaults (see `yolostream.pipeline.sources`)."""

    name: Annotated[str, Field(pattern=_NAME)]
    uri: str | int
    fps: PositiveFloat | None = None
    stride: Annotated[int, Field(ge=1)] | None = None
    loop: bool | None = None
    realtime: bool | None = None
    timeout_s: PositiveFloat | None = None
    backoff: tuple[PositiveFloat, PositiveFloat] | None = None
    queue_size: Annotated[int, Field(ge=1)] | None = None
    rtsp_transport: Literal["tcp", "udp", "udp_multicast", "http", "https"] | None = None
    options: dict[str, str] | None = None
    video_size: str | None = None
    framerate: PositiveFloat | None = None
    pixel_format: str | None = None

    def source_options(self) -> dict[str, Any]:
        """Keyword arguments for `open_source`: only the keys the config sets."""
        return self.model_dump(exclude_unset=True, exclude={"name", "uri"})


class TrackingConfig(_Section):
    """ByteTrack per stream (`yolostream.pipeline.tracking`); ``frame_rate`` None: each source's ``fps``
    (25 where it has none)."""

    enabled: bool = True
    track_thresh: Fraction01 = 0.25
    match_thresh: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8
    lost_buffer: Annotated[int, Field(ge=0)] = 30
    frame_rate: PositiveFloat | None = None


class BatcherConfig(_Section):
    """``max_batch`` None: the engine's largest batch bucket, or 8 for an eager detector."""

    max_batch: Annotated[int, Field(ge=1)] | None = None
    max_wait_ms: Annotated[float, Field(ge=0.0)] = 10.0


class OutboxConfig(_Section):
    """Caps and retry pacing of a network sink's on-disk queue (see `Outbox`)."""

    max_items: Annotated[int, Field(ge=1)] = 100_000
    max_bytes: Annotated[int, Field(ge=1)] = 256 << 20
    batch_size: Annotated[int, Field(ge=1)] = 100
    retry_initial_s: PositiveFloat = 0.5
    retry_max_s: PositiveFloat = 30.0


class SQLiteConfig(_Section):
    path: Path = Path("yolostream.db")
    alarms: bool = True
    summaries: bool = True
    summary_batch: Annotated[int, Field(ge=1)] = 50
    flush_interval_s: PositiveFloat = 1.0


class _NetworkSink(_Section):
    alarms: bool = True
    summaries: bool = True
    include_snapshot: bool = False
    outbox: OutboxConfig = OutboxConfig()


class PostgresConfig(_NetworkSink):
    url: str
    connect_timeout_s: PositiveFloat = 5.0


class MqttConfig(_NetworkSink):
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    prefix: str = "yolostream"
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    tls: bool = False


class WebhookConfig(_NetworkSink):
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: PositiveFloat = 10.0
    summaries: bool = False


class JsonlConfig(_Section):
    path: Path
    alarms: bool = True
    summaries: bool = True


class SnapshotsConfig(_Section):
    dir: Path
    jpeg_quality: Annotated[int, Field(ge=1, le=100)] = 85


class VideoConfig(_Section):
    """Annotated recording; ``streams`` empty: every stream."""

    dir: Path
    streams: list[str] = Field(default_factory=list)
    fps: PositiveFloat = 25.0
    segment_s: PositiveFloat = 300.0
    codec: str = "libx264"
    options: dict[str, str] | None = None
    queue_frames: Annotated[int, Field(ge=1)] = 32


class SinksConfig(_Section):
    """Where alarms and per-frame summaries go. SQLite is on unless set to null; the others are off unless
    given. ``state_dir`` holds the network sinks' outboxes; ``summary_every`` keeps one summary in N per
    stream; ``queue_summaries`` caps summaries waiting for the sink thread (the oldest are dropped, counted;
    alarms are never dropped)."""

    state_dir: Path = Path(".yolostream")
    summary_every: Annotated[int, Field(ge=1)] = 1
    queue_summaries: Annotated[int, Field(ge=1)] = 10_000
    sqlite: SQLiteConfig | None = SQLiteConfig()
    postgres: PostgresConfig | None = None
    mqtt: MqttConfig | None = None
    webhook: WebhookConfig | None = None
    jsonl: JsonlConfig | None = None
    snapshots: SnapshotsConfig | None = None
    video: VideoConfig | None = None


class WebConfig(_Section):
    """The dashboard and HTTP API of `yolostream serve` (see `yolostream.web`), on ``server.host``.

    ``token``: the bearer token every request but ``/healthz`` needs (None: ``$YOLOSTREAM_TOKEN``, else one
    is made at start and logged); ``max_upload_mb`` / ``max_pixels`` bound a ``/v1/detect`` upload and its
    decoded size; the live view encodes at most ``live_fps`` JPEGs per second per watched stream, at most
    ``live_max_width`` pixels wide; ``detect_queue`` bounds the uploads waiting for the detector (more: 429).
    """

    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    token: str | None = None
    max_upload_mb: PositiveFloat = 16.0
    max_pixels: Annotated[int, Field(ge=1)] = 40_000_000
    live_fps: Annotated[float, Field(gt=0.0, le=30.0)] = 5.0
    live_max_width: Annotated[int, Field(ge=64)] = 640
    live_quality: Annotated[int, Field(ge=1, le=100)] = 75
    detect_queue: Annotated[int, Field(ge=1)] = 8


class ServerConfig(_Section):
    """Prometheus ``/metrics`` endpoint of `yolostream run`; ``port: 0`` picks a free port (logged). ``web``:
    `yolostream serve`'s dashboard and API (which serves ``/metrics`` itself, on ``web.port``)."""

    metrics: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9400
    web: WebConfig = WebConfig()


class PipelineConfig(_Section):
    """The whole config. ``rules`` are kept as given here and parsed by `load_config` (see `rules`)."""

    model: ModelConfig = ModelConfig()
    sources: Annotated[list[SourceConfig], Field(min_length=1)]
    zones: dict[str, Annotated[list[Point], Field(min_length=3)]] = Field(default_factory=dict)
    lines: dict[str, tuple[Point, Point]] = Field(default_factory=dict)
    rules: list[dict[str, Any]] = Field(default_factory=list)
    tracking: TrackingConfig = TrackingConfig()
    batcher: BatcherConfig = BatcherConfig()
    sinks: SinksConfig = SinksConfig()
    server: ServerConfig = ServerConfig()

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        names = [s.name for s in sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique, repeated: {dupes}")
        return sources

    @model_validator(mode="after")
    def _video_streams_exist(self) -> PipelineConfig:
        video = self.sinks.video
        unknown = sorted(set(video.streams) - {s.name for s in self.sources}) if video else []
        if unknown:
            raise ValueError(f"sinks.video.streams names unknown sources {unknown}")
        return self


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config: ``config`` (the models), ``rules`` (parsed), and where each key came from."""

    config: PipelineConfig
    rules: list[Rule]
    source: str = "<config>"
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def where(self, *path: Any) -> str:
        """``<file>:<line>: <key path>`` of a config key, for errors found after validation."""
        return f"{self.source}:{line_of(self.lines, tuple(path))}: {format_path(path)}"


def load_config(path: str | os.PathLike[str]) -> LoadedConfig:
    """Read and validate a pipeline config file. Every error raises `ConfigError` as
    ``<file>:<line>: <key path>: <problem>`` (all problems pydantic found, one per line)."""
    path = Path(path)
    data, lines = read_yaml(path)
    return config_from_data(data, lines, str(path), base_dir=path.parent)


def config_from_data(
    data: Any, lines: dict[KeyPath, int] | None = None, source: str = "<config>", base_dir: Path | None = None
) -> LoadedConfig:
    """Validate already-parsed data (``lines`` from `yaml_lines.load_yaml`, for messages)."""
    lines = lines or {(): 1}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the config must be a mapping of sections, got {type(data).__name__}")
    try:
        config = PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError("\n".join(_describe(err, data, lines, source) for err in e.errors())) from None
    if base_dir is not None:
        config = _resolve_paths(config, base_dir)
    rules = _parse_rules(config, lines, source)
    return LoadedConfig(config, rules, source, lines)


def _describe(err: Any, data: Any, lines: dict[KeyPath, int], source: str) -> str:
    loc = tuple(err["loc"])
    path = resolve(data, loc)
    if err["type"] == "missing" and loc:
        path = (*path, loc[-1])  # not in the file: named, on its parent's line
    where = f"{source}:{line_of(lines, path)}"
    msg = err["msg"]
    if err["type"] != "missing":
        shown = repr(err.get("input"))
        msg += f" (got {shown[:60] + '...' if len(shown) > 60 else shown})"
    return f"{where}: {format_path(path)}: {msg}"


def _parse_rules(config: PipelineConfig, lines: dict[KeyPath, int], source: str) -> list[Rule]:
    rules: list[Rule] = []
    for i, raw in enumerate(config.rules):
        item = dict(raw)
        try:
            for key, table, what in (("zone", config.zones, "zones"), ("line", config.lines, "lines")):
                if isinstance(item.get(key), str):
                    if item[key] not in table:
                        known = sorted(table) or "none defined"
                        raise ConfigError(
                            f"rule {item.get('name', '?')!r}: key {key!r} names no entry of {what!r}: "
                            f"{item[key]!r} (known: {known})"
                        )
                    item[key] = table[item[key]]
            rules.append(parse_rule(item))
        except ConfigError as e:
            key = re.search(r"key\(?s?\)? \[?'(\w+)'", str(e))
            path = ("rules", i, key.group(1)) if key and key.group(1) in raw else ("rules", i)
            raise ConfigError(f"{source}:{line_of(lines, path)}: {format_path(path)}: {e}") from None
    names = [r.name for r in rules]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"{source}:{line_of(lines, ('rules', i, 'name'))}: rules[{i}].name: repeated {name!r}")
    return rules


def _resolve_paths(config: PipelineConfig, base: Path) -> PipelineConfig:
    """Relative file paths (and file-like source URIs) taken from ``base``."""

    def fix(p: Path) -> Path:
        p = p.expanduser()
        return p if p.is_absolute() else base / p

    def fix_uri(uri: str | int) -> str | int:
        if isinstance(uri, int) or uri.isdigit() or _SCHEME.match(uri) or uri.startswith("/"):
            return uri
        return str(fix(Path(uri).expanduser()))

    sinks = config.sinks
    updates: dict[str, Any] = {"state_dir": fix(sinks.state_dir)}
    for name in ("sqlite", "jsonl"):
        section = getattr(sinks, name)
        if section is not None:
            updates[name] = section.model_copy(update={"path": fix(section.path)})
    for name in ("snapshots", "video"):
        section = getattr(sinks, name)
        if section is not None:
            updates[name] = section.model_copy(update={"dir": fix(section.dir)})
    return config.model_copy(
        update={
            "model": config.model.model_copy(
                update={"path": fix(config.model.path) if config.model.path is not None else None}
            ),
            "sources": [s.model_copy(update={"uri": fix_uri(s.uri)}) for s in config.sources],
            "sinks": sinks.model_copy(update=updates),
        }
    )
