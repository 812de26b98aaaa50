"""`create_app`: the FastAPI application of `yolostream serve` around a `WebState`.

Layers, outermost first: `AuthGuard` (token or session cookie on every path but ``/healthz`` and the login
page), `BodyLimit` (upload size), then FastAPI with JSON error handlers: every error is ``{"error", "status"}``
with a 4xx status; an unexpected exception is logged here and answered 500 without its traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from yolostream.web import api, views
from yolostream.web.auth import AuthGuard
from yolostream.web.limits import BodyLimit
from yolostream.web.schemas import HealthOut
from yolostream.web.state import WebState

log = logging.getLogger("yolostream.web")
STATIC = Path(__file__).parent / "static"
_MULTIPART_SLACK = 64 << 10  # part headers and boundaries around an upload of the largest allowed size

DESCRIPTION = """The dashboard and HTTP API of a running yolostream pipeline.

Every path but `/healthz` needs `Authorization: Bearer <token>` (the token is `server.web.token`,
`$YOLOSTREAM_TOKEN`, or the one `yolostream serve` printed at start). Errors are JSON: `{"error": ..., "status": ...}`.
"""


def _error(status: int, message: str, detail: list[dict[str, Any]] | None = None, **headers: str) -> JSONResponse:
    body: dict[str, Any] = {"error": message, "status": status}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=headers or None)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, e: StarletteHTTPException) -> JSONResponse:
        message = e.detail if isinstance(e.detail, str) else str(e.detail)
        return _error(e.status_code, message, **(e.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, e: RequestValidationError) -> JSONResponse:
        detail = [
            {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", "")), "type": str(err.get("type"))}
            for err in e.errors()
        ]
        first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
        return _error(422, f"{'.'.join(first['loc'])}: {first['msg']}", detail)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal error (logged by the server)")


def _examples(schema: dict[str, Any], state: WebState) -> None:
    """Parameter examples from this config (a stream, a zone, a line name), for readers of /docs and for
    generated tests, which could never guess a valid name."""
    cfg = state.loaded.config
    names = {
        "/v1/streams/": cfg.sources[0].name,
        "/v1/zones/": next(iter(cfg.zones), None),
        "/v1/lines/": next(iter(cfg.lines), None),
    }
    for path, operations in schema["paths"].items():
        for op in operations.values():
            for param in op.get("parameters", []):
                if param["name"] == "stream":
                    param["example"] = cfg.sources[0].name
                elif param["name"] == "name":
                    example = next((v for k, v in names.items() if path.startswith(k)), None)
                    if example is not None:
                        param["example"] = example


def _openapi(app: FastAPI, state: WebState) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        schema["security"] = [{"bearer": []}]
        schema["paths"]["/healthz"]["get"]["security"] = []
        _examples(schema, state)
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(state: WebState) -> FastAPI:
    """The ASGI application."""
    from yolostream import __version__

    app = FastAPI(title="yolostream", version=__version__, description=DESCRIPTION, redoc_url=None)
    app.state.web = state
    app.openapi = lambda: _openapi(app, state)  # type: ignore[method-assign]
    _install_errors(app)
    app.include_router(api.router)
    app.include_router(views.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/login", include_in_schema=False)
    def login() -> FileResponse:
        return FileResponse(STATIC / "login.html")

    @app.get(
        "/healthz",
        response_model=HealthOut,
        responses={503: {"model": HealthOut, "description": "the inference thread failed"}},
        summary="Liveness (no token needed)",
    )
    def healthz() -> Any:
        p = state.pipeline
        body = {"status": "failed" if p.failed else "ok", "uptime_s": p.snapshot().uptime_s}
        return JSONResponse(body, status_code=503 if p.failed else 200)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={**api.ERRORS, 200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
        summary="Prometheus metrics of the pipeline",
    )
    def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    app.add_middleware(BodyLimit, max_bytes=state.max_upload_bytes + _MULTIPART_SLACK)
    app.add_middleware(AuthGuard, auth=state.auth)  # added last: outermost, so it runs first
    return app
