"""Routes for the browser: the session cookie, the live view (MJPEG), single frames, and saving zones/lines."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from yolostream.errors import ConfigError
from yolostream.pipeline import assemble
from yolostream.pipeline.config import LoadedConfig
from yolostream.web.api import ERRORS, NAME_PATTERN, NOT_FOUND, known_stream, web
from yolostream.web.auth import COOKIE
from yolostream.web.geometry import Table, save_geometry
from yolostream.web.live import BOUNDARY, multipart_part
from yolostream.web.schemas import LineIn, SaveOut, ZoneIn

log = logging.getLogger("yolostream.web")
router = APIRouter(prefix="/v1", responses=ERRORS)
_RESTART_SECTIONS = ("model", "sources", "tracking", "batcher", "sinks", "server")
_JPEG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/jpeg": {}}, "description": "a JPEG"}}
Name = Annotated[str, Path(pattern=NAME_PATTERN)]


@router.post("/session", status_code=204, summary="Exchange the bearer token for a browser session cookie")
def session(request: Request) -> Response:
    """Called by the login page with ``Authorization: Bearer <token>``; sets an HttpOnly, SameSite=Strict
    cookie (an HMAC of the token, not the token) that the dashboard's requests and ``<img>`` tags carry."""
    response = Response(status_code=204)
    response.set_cookie(COOKIE, web(request).auth.session, httponly=True, samesite="strict", path="/")
    return response


@router.delete("/session", status_code=204, summary="Log out: drop the session cookie")
def logout() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get(
    "/streams/{name}/live",
    responses={**NOT_FOUND, 200: {"content": {f"multipart/x-mixed-replace; boundary={BOUNDARY}": {}}}},
    response_class=StreamingResponse,
    summary="Live annotated view of a stream (MJPEG, for an <img> tag)",
)
async def live(request: Request, name: Name) -> StreamingResponse:
    state = web(request)
    known_stream(state, name)

    async def parts() -> AsyncIterator[bytes]:
        async for jpeg in state.hub.frames(name):
            yield multipart_part(jpeg)

    return StreamingResponse(
        parts(),
        media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/streams/{name}/frame.jpg",
    response_class=Response,
    responses={**NOT_FOUND, **_JPEG},
    summary="The newest frame of a stream (annotated, or raw for drawing zones on)",
)
async def frame(request: Request, name: Name, annotate: Annotated[bool, Query()] = True) -> Response:
    state = web(request)
    result = state.hub.latest.get(known_stream(state, name))
    if result is None:
        raise HTTPException(404, f"stream {name!r} has delivered no frame yet")
    jpeg = await asyncio.to_thread(state.hub.render, result, annotate)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


async def _save(request: Request, table: Table, name: str, points: list[Any] | None) -> SaveOut:
    state = web(request)
    pipeline = state.pipeline

    def check(loaded: LoadedConfig) -> None:  # what the running model needs, before the file is written
        assemble.check_rules(loaded, pipeline.detector.names)

    try:
        loaded, backup = await asyncio.to_thread(save_geometry, state.config_path, table, name, points, check)
    except ConfigError as e:
        raise HTTPException(422, str(e)) from None
    changed = pipeline.update_rules(loaded)
    restart = [s for s in _RESTART_SECTIONS if getattr(loaded.config, s) != getattr(state.started_config, s)]
    what = "removed" if points is None else "saved"
    log.info("%s.%s %s to %s; rules updated: %s", table, name, what, state.config_path, changed or "none")
    return SaveOut(path=str(state.config_path), backup=str(backup), rules_updated=changed, restart_required=restart)


@router.put("/zones/{name}", response_model=SaveOut, summary="Create or redraw a named zone, saved to the config")
async def put_zone(request: Request, name: Name, body: ZoneIn) -> SaveOut:
    return await _save(request, "zones", name, [list(p) for p in body.points])


@router.delete("/zones/{name}", response_model=SaveOut, summary="Remove a named zone no rule uses")
async def delete_zone(request: Request, name: Name) -> SaveOut:
    return await _save(request, "zones", name, None)


@router.put("/lines/{name}", response_model=SaveOut, summary="Create or redraw a named line, saved to the config")
async def put_line(request: Request, name: Name, body: LineIn) -> SaveOut:
    return await _save(request, "lines", name, [list(p) for p in body.points])


@router.delete("/lines/{name}", response_model=SaveOut, summary="Remove a named line no rule uses")
async def delete_line(request: Request, name: Name) -> SaveOut:
    return await _save(request, "lines", name, None)
