"""Request and response bodies of the HTTP API (pydantic models: they make the OpenAPI document at /docs)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Coord = Annotated[float, Field(ge=-1e5, le=1e5, allow_inf_nan=False)]  # pixels; generous, but finite
PointIn = tuple[Coord, Coord]


class ErrorOut(BaseModel):
    """Every 4xx (and the rare 5xx) answer: what went wrong, in words."""

    error: str
    status: int
    detail: list[dict[str, Any]] | None = None


class DetectionOut(BaseModel):
    """One box, in the original image's pixels (as ``predict --json``)."""

    xyxy: list[float]
    conf: float
    cls: int
    name: str
    track_id: int | None = None


class PredictRecord(BaseModel):
    """The ``predict --json`` line of one image."""

    source: str
    frame: int
    height: int
    width: int
    detections: list[DetectionOut]


class StreamOut(BaseModel):
    """Health of one stream (latencies in ms, capture to result; None before any result)."""

    stream: str
    state: str
    fps: float
    frames: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    alarm_latency_p50_ms: float | None
    alarm_latency_p99_ms: float | None
    alarms: int
    drops: int
    reconnects: int
    decode_errors: int
    frames_decoded: int
    last_error: str | None
    width: int | None = Field(None, description="of the newest frame")
    height: int | None = None
    viewers: int = 0
    zones: list[str] = Field(default_factory=list, description="named zones of the rules watching it")
    lines: list[str] = Field(default_factory=list)


class StreamsOut(BaseModel):
    streams: list[StreamOut]
    uptime_s: float


class EngineOut(BaseModel):
    """The detector and its engine, and the pipeline's batch figures (times in ms per detector call)."""

    model: str
    family: str
    device: str
    imgsz: int
    dtype: str
    engine: str = Field(description="eager, or the runner class of a compiled engine / AOT package")
    compile_mode: str | None
    buckets: list[str]
    max_batch: int | None
    batches: int
    frames: int
    mean_batch: float
    batch_sizes: dict[str, int]
    preprocess_ms: float
    infer_ms: float
    postprocess_ms: float
    last_batch_ms: float
    inference_errors: int
    detect_requests: int
    detect_refused_busy: int
    uptime_s: float


class EventOut(BaseModel):
    """An alarm as the SQLite sink stored it; ``time`` is the capture time (epoch seconds)."""

    event_id: str
    rule: str
    stream: str
    time: float
    kind: str
    severity: str
    objects: list[dict[str, Any]]
    details: dict[str, Any]
    snapshot_url: str | None


class EventsOut(BaseModel):
    events: list[EventOut]
    count: int


class CountsOut(BaseModel):
    """Objects per class in view, one point per second (the most seen in a frame of that second)."""

    stream: str
    start: int
    end: int
    times: list[int]
    series: dict[str, list[int]]


class RuleOut(BaseModel):
    name: str
    kind: str
    streams: list[str]
    zone: str | None = Field(None, description="name in `zones`, when the rule names one")
    line: str | None = None


class ConfigOut(BaseModel):
    """The geometry the editor shows: named zones and lines (pixels of the streams that use them)."""

    path: str
    streams: list[str]
    zones: dict[str, list[tuple[float, float]]]
    lines: dict[str, list[tuple[float, float]]]
    rules: list[RuleOut]


class ZoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    points: Annotated[list[PointIn], Field(min_length=3, max_length=200)]


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    points: Annotated[list[PointIn], Field(min_length=2, max_length=2)]


class SaveOut(BaseModel):
    """A geometry edit: written to ``path`` (old file kept at ``backup``), the rules it changed (live from
    the next frame) and the config sections that differ from the running ones (those need a restart)."""

    path: str
    backup: str
    rules_updated: list[str]
    restart_required: list[str]


class HealthOut(BaseModel):
    status: str
    uptime_s: float
