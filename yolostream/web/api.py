"""HTTP API read routes: ``POST /v1/detect`` and the pipeline's streams, engine, alarms, counts and config."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Path, Query, Request, UploadFile
from fastapi.responses import FileResponse

from yolostream.errors import ImageReadError
from yolostream.web.images import ImageTooLargeError
from yolostream.web.schemas import (
    ConfigOut,
    CountsOut,
    EngineOut,
    ErrorOut,
    EventsOut,
    PredictRecord,
    RuleOut,
    StreamOut,
    StreamsOut,
)
from yolostream.web.state import BusyError, WebState

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "a body that cannot be parsed (broken multipart or JSON)"},
    401: {"model": ErrorOut, "description": "no or a wrong token"},
    403: {"model": ErrorOut, "description": "a cookie-authenticated change without the CSRF header"},
    422: {"model": ErrorOut, "description": "invalid parameters or body"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "no such item"}}
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
EVENT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

router = APIRouter(prefix="/v1", responses=ERRORS)


def web(request: Request) -> WebState:
    return request.app.state.web


def stream_names(state: WebState) -> list[str]:
    return [s.name for s in state.loaded.config.sources]


def known_stream(state: WebState, name: str) -> str:
    if name not in stream_names(state):
        raise HTTPException(404, f"no stream named {name!r}; streams: {stream_names(state)}")
    return name


def _rule_geometry(state: WebState) -> list[RuleOut]:
    out = []
    for raw, rule in zip(state.loaded.config.rules, state.loaded.rules, strict=True):
        zone, line = raw.get("zone"), raw.get("line")
        out.append(
            RuleOut(
                name=rule.name,
                kind=rule.kind,
                streams=list(rule.streams),
                zone=zone if isinstance(zone, str) else None,
                line=line if isinstance(line, str) else None,
            )
        )
    return out


@router.post(
    "/detect",
    response_model=PredictRecord,
    response_model_exclude_none=True,  # no "track_id": null, exactly as `predict --json` writes a picture
    responses={
        413: {"model": ErrorOut, "description": "upload or picture too large"},
        429: {"model": ErrorOut, "description": "too many uploads waiting"},
    },
    summary="Detect objects in an uploaded picture",
)
async def detect(request: Request, image: Annotated[UploadFile, File(description="JPEG, PNG, BMP, WebP, TIFF, GIF")]):
    """The picture's detections, as ``yolostream predict --json`` writes them (boxes in its own pixels)."""
    state = web(request)
    data = await image.read()
    try:
        return await state.detect(data, image.filename or "upload")
    except ImageTooLargeError as e:
        raise HTTPException(413, str(e)) from None
    except ImageReadError as e:
        raise HTTPException(422, str(e)) from None
    except BusyError as e:
        raise HTTPException(429, str(e), headers={"Retry-After": "1"}) from None


@router.get("/streams", response_model=StreamsOut, summary="Every stream's health")
def streams(request: Request) -> StreamsOut:
    state = web(request)
    snap = state.pipeline.snapshot()
    viewers = state.hub.viewers()
    by_stream: dict[str, tuple[set[str], set[str]]] = {}
    for r in _rule_geometry(state):
        for name in r.streams or stream_names(state):
            zones, lines = by_stream.setdefault(name, (set(), set()))
            zones.update([r.zone] if r.zone else [])
            lines.update([r.line] if r.line else [])
    out = []
    for s in snap.streams:
        latest = state.hub.latest.get(s.stream)
        h, w = latest.frame.shape if latest is not None else (None, None)
        zones, lines = by_stream.get(s.stream, (set(), set()))
        extra = {"width": w, "height": h, "viewers": viewers.get(s.stream, 0)}
        out.append(StreamOut(**vars(s), **extra, zones=sorted(zones), lines=sorted(lines)))
    return StreamsOut(streams=out, uptime_s=snap.uptime_s)


@router.get("/engine", response_model=EngineOut, summary="The detector, its engine and batch figures")
def engine(request: Request) -> EngineOut:
    state = web(request)
    det = state.pipeline.detector
    snap = state.pipeline.snapshot()
    b = snap.batches
    runner = det.runner
    per_call = 1000.0 / b.calls if b.calls else 0.0
    return EngineOut(
        model=str(det.source),
        family=f"{det.spec.family}{det.spec.scale}",
        device=str(det.device),
        imgsz=det.config.imgsz,
        dtype=det.config.dtype,
        engine=type(runner).__name__ if det.compiled else "eager",
        compile_mode=getattr(runner, "mode", "aot") if det.compiled else None,
        buckets=[str(bk) for bk in getattr(runner, "buckets", ())],
        max_batch=det.max_batch,
        batches=b.calls,
        frames=b.frames,
        mean_batch=b.frames / b.calls if b.calls else 0.0,
        batch_sizes={str(k): v for k, v in sorted(b.sizes.items())},
        preprocess_ms=b.preprocess_s * per_call,
        infer_ms=b.infer_s * per_call,
        postprocess_ms=b.postprocess_s * per_call,
        last_batch_ms=b.last_batch_s * 1000.0,
        inference_errors=snap.inference_errors,
        detect_requests=state.detect_stats.requests,
        detect_refused_busy=state.detect_stats.refused_busy,
        uptime_s=snap.uptime_s,
    )


@router.get("/events", response_model=EventsOut, responses=NOT_FOUND, summary="Alarms, newest first")
def events(
    request: Request,
    since: Annotated[float | None, Query(ge=0, le=1e11, description="capture time >= (epoch seconds)")] = None,
    until: Annotated[float | None, Query(ge=0, le=1e11, description="capture time < (epoch seconds)")] = None,
    stream: Annotated[str | None, Query(max_length=100)] = None,
    rule: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventsOut:
    state = web(request)
    if state.events is None:
        raise HTTPException(404, "alarms are not stored: serve reads them from the SQLite sink (sinks.sqlite)")
    rows = state.events.query(since, until, stream, rule, limit)
    for row in rows:
        row.pop("_snapshot_path")
    return EventsOut(events=rows, count=len(rows))  # type: ignore[arg-type]


@router.get(
    "/events/{event_id}/snapshot",
    response_class=FileResponse,
    responses={**NOT_FOUND, 200: {"content": {"image/jpeg": {}}, "description": "the alarm's annotated frame"}},
    summary="An alarm's snapshot (JPEG)",
)
def snapshot(request: Request, event_id: Annotated[str, Path(pattern=EVENT_ID_PATTERN)]) -> FileResponse:
    state = web(request)
    record = state.events.get(event_id) if state.events is not None else None
    if record is None:
        raise HTTPException(404, f"no alarm with id {event_id!r}")
    path = state.events.snapshot_file(record) if state.events is not None else None
    if path is None:
        raise HTTPException(404, f"alarm {event_id!r} has no snapshot stored (sinks.snapshots)")
    return FileResponse(path, media_type="image/jpeg")


@router.get("/counts", response_model=CountsOut, responses=NOT_FOUND, summary="Objects per class over time")
def counts(
    request: Request,
    stream: Annotated[str, Query(max_length=100)],
    seconds: Annotated[int, Query(ge=10, le=3600)] = 300,
) -> CountsOut:
    state = web(request)
    return CountsOut(**state.counts.query(known_stream(state, stream), seconds, time.time()))


@router.get("/config", response_model=ConfigOut, summary="Named zones and lines, and the rules using them")
def config(request: Request) -> ConfigOut:
    state = web(request)
    cfg = state.loaded.config
    return ConfigOut(
        path=str(state.config_path),
        streams=stream_names(state),
        zones={k: list(v) for k, v in cfg.zones.items()},
        lines={k: list(v) for k, v in cfg.lines.items()},
        rules=_rule_geometry(state),
    )
