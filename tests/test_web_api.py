"""The HTTP API against the real server on loopback: the shapes model running the pipeline on a generated
looping clip, uvicorn on a free port, httpx over TCP. See tests/web_server.py for the scene and the config.

Waits use generous deadlines only to turn a hang into a failure; nothing asserts how long anything took.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("av")

import web_server as ws  # noqa: E402
from media import render  # noqa: E402
from PIL import Image  # noqa: E402

from yolostream.cli.main import main as cli_main  # noqa: E402
from yolostream.pipeline.config import load_config  # noqa: E402

MAX_UPLOAD_MB = 1.0  # small here so that a test can send more without building a huge body


@pytest.fixture(scope="module")
def served(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ws.Served]:
    folder = tmp_path_factory.mktemp("web-api")
    served = ws.start(ws.write_config(fixtures, folder, max_upload_mb=MAX_UPLOAD_MB, max_pixels=4_000_000))
    yield served
    ws.stop(served)


@pytest.fixture(scope="module")
def client(served: ws.Served) -> Iterator[Any]:
    with httpx.Client(base_url=served.url, headers=served.headers(), timeout=60) as c:
        yield c


def error_of(r: Any, status: int) -> str:
    """The JSON error body of a refused request (never HTML, never a traceback)."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["status"] == status and isinstance(body["error"], str) and "Traceback" not in r.text
    return body["error"]


def wait_events(client: Any, **params: Any) -> list[dict[str, Any]]:
    return ws.wait_for(lambda: client.get("/v1/events", params=params).json()["events"], f"an alarm {params}")


# ---- security --------------------------------------------------------------------------------------------

PROTECTED = [
    ("GET", "/v1/streams"),
    ("GET", "/v1/engine"),
    ("GET", "/v1/events"),
    ("GET", "/v1/config"),
    ("GET", "/v1/counts?stream=cam1"),
    ("GET", "/v1/streams/cam1/frame.jpg"),
    ("GET", "/v1/streams/cam1/live"),
    ("POST", "/v1/detect"),
    ("PUT", "/v1/zones/dock"),
    ("DELETE", "/v1/lines/gate"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
    ("GET", "/static/app.js"),
    ("GET", "/no/such/path"),  # even a 404 says nothing without the token
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("token", [None, "wrong-token-0123456789"])
def test_everything_but_healthz_needs_the_token(served: ws.Served, method: str, path: str, token: str | None) -> None:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    r = httpx.request(method, served.url + path, headers=headers, timeout=30)
    why = error_of(r, 401)
    assert ("invalid token" in why) == (token is not None)
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_healthz_and_the_login_page_are_public_and_the_dashboard_redirects(served: ws.Served) -> None:
    r = httpx.get(served.url + "/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert httpx.get(served.url + "/login").status_code == 200
    r = httpx.get(served.url + "/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_browser_session_cookie_and_csrf(served: ws.Served) -> None:
    r = httpx.post(served.url + "/v1/session", headers=served.headers())
    assert r.status_code == 204
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert ws.TOKEN not in cookie  # an HMAC of the token, not the token
    with httpx.Client(base_url=served.url, cookies=r.cookies, timeout=30) as browser:
        assert browser.get("/v1/streams").status_code == 200
        assert browser.get("/").status_code == 200
        # A change authenticated only by the cookie needs the header a cross-site form cannot send.
        assert "csrf" in error_of(browser.put("/v1/zones/spare", json={"points": [[0, 0], [1, 0], [1, 1]]}), 403)
        r = browser.delete("/v1/session", headers={"X-Requested-With": "yolostream"})
        assert r.status_code == 204 and 'yolostream_session=""' in r.headers["set-cookie"]


# ---- POST /v1/detect -----------------------------------------------------------------------------------


def test_detect_answers_what_predict_json_writes(
    served: ws.Served, client: Any, fixtures: Path, tmp_path: Path
) -> None:
    picture = tmp_path / "frame12.png"
    Image.fromarray(render(ws.scene(), 12)).save(picture)
    out = tmp_path / "predict.jsonl"
    model = str(fixtures / "checkpoints" / "yolo11n-shapes.pt")
    assert cli_main(["predict", model, str(picture), "--imgsz", "320", "--json", str(out)]) == 0
    want = json.loads(out.read_text())
    r = client.post("/v1/detect", files={"image": ("frame12.png", picture.read_bytes(), "image/png")})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["source"] == "frame12.png" and want["source"] == str(picture)
    # Same model, settings, decoding and code path: the very same record (floats included), bar the source.
    assert {**got, "source": None} == {**want, "source": None}
    assert {d["name"] for d in got["detections"]} >= {"box", "triangle"}


def _png_header_only(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(render(ws.scene(), 3)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("files", "status", "message"),
    [
        ({"image": ("x.png", _png_header_only(40_000, 30_000), "image/png")}, 413, "1200000000 pixels"),  # a bomb
        ({"image": ("x.bin", os.urandom(2000), "application/octet-stream")}, 422, "not an image"),
        ({"image": ("x.jpg", _jpeg()[:300], "image/jpeg")}, 422, "cannot decode"),  # truncated
        ({"image": ("x.jpg", b"", "image/jpeg")}, 422, "empty"),
        ({"picture": ("x.jpg", _jpeg(), "image/jpeg")}, 422, "image"),  # wrong field name
        ({"image": ("big.jpg", b"\xff" * int(1.5 * MAX_UPLOAD_MB * 2**20), "image/jpeg")}, 413, "too large"),
    ],
)
def test_detect_refuses_bad_uploads(client: Any, files: dict, status: int, message: str) -> None:
    assert re.search(message, error_of(client.post("/v1/detect", files=files), status))


def test_detect_refuses_a_chunked_upload_past_the_limit(client: Any) -> None:
    def body() -> Iterator[bytes]:  # no Content-Length: the server must count as the bytes come
        yield b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
        for _ in range(64):  # 4 MiB of file data, never closed by a boundary
            yield b"\0" * (64 << 10)

    headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
    r = client.post("/v1/detect", content=body(), headers=headers)
    assert "too large" in error_of(r, 413)


def test_detect_refuses_json_and_no_body(client: Any) -> None:
    error_of(client.post("/v1/detect", json={"image": "abc"}), 422)
    error_of(client.post("/v1/detect"), 422)


# ---- pipeline state --------------------------------------------------------------------------------------


def test_streams_engine_and_metrics(client: Any) -> None:
    cam = ws.wait_for(lambda: next(s for s in client.get("/v1/streams").json()["streams"] if s["frames"] > 0), "frames")
    assert cam["stream"] == "cam1" and cam["state"] == "running"
    assert (cam["width"], cam["height"]) == (ws.WIDTH, ws.HEIGHT)
    assert cam["zones"] == ["bay", "dock"] and cam["lines"] == ["gate"]
    assert cam["latency_p50_ms"] is not None and cam["fps"] > 0
    engine = client.get("/v1/engine").json()
    assert engine["engine"] == "eager" and engine["compile_mode"] is None and engine["buckets"] == []
    assert engine["imgsz"] == 320 and engine["family"] == "yolo11n" and engine["batches"] > 0
    text = client.get("/metrics").text
    assert re.search(r'^yolostream_frames_total\{stream="cam1"\} [1-9]', text, re.M)
    assert re.search(r'^yolostream_web_viewers\{stream="cam1"\} ', text, re.M)


def test_events_filters_and_snapshot(client: Any) -> None:
    events = wait_events(client, rule="box-in-bay")
    assert all(e["rule"] == "box-in-bay" and e["stream"] == "cam1" for e in events)
    first = events[-1]
    assert first["objects"] and first["objects"][0]["name"] == "box" and first["objects"][0]["track_id"] is not None
    times = [e["time"] for e in client.get("/v1/events").json()["events"]]
    assert times == sorted(times, reverse=True)  # newest first
    assert client.get("/v1/events", params={"rule": "nope"}).json() == {"events": [], "count": 0}
    assert client.get("/v1/events", params={"stream": "nope"}).json()["count"] == 0
    assert client.get("/v1/events", params={"since": first["time"] + 1e6}).json()["count"] == 0
    assert client.get("/v1/events", params={"until": first["time"]}).json()["events"] == [
        e for e in client.get("/v1/events").json()["events"] if e["time"] < first["time"]
    ]
    r = client.get(first["snapshot_url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (ws.WIDTH, ws.HEIGHT)
    error_of(client.get("/v1/events/0123abcd/snapshot"), 404)
    error_of(client.get("/v1/events/..%2F..%2Fetc%2Fpasswd/snapshot"), 404)  # not even routed
    error_of(client.get("/v1/events", params={"limit": 0}), 422)
    error_of(client.get("/v1/events", params={"since": "yesterday"}), 422)


def test_counts_and_frames(client: Any) -> None:
    counts = ws.wait_for(lambda: client.get("/v1/counts", params={"stream": "cam1"}).json()["series"], "counts")
    assert "triangle" in counts and max(counts["triangle"]) == 1  # one triangle stands in view all along
    error_of(client.get("/v1/counts", params={"stream": "nope"}), 404)
    for annotate in ("true", "false"):
        r = client.get("/v1/streams/cam1/frame.jpg", params={"annotate": annotate})
        assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (ws.WIDTH, ws.HEIGHT)
    error_of(client.get("/v1/streams/nope/frame.jpg"), 404)


# ---- live view -------------------------------------------------------------------------------------------


def _read_parts(url: str, headers: dict[str, str], n: int, out: list[bytes]) -> None:
    """Read ``n`` JPEG parts of an MJPEG response into ``out``."""
    with httpx.stream("GET", url, headers=headers, timeout=60) as r:
        assert r.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
        buf = b""
        for chunk in r.iter_bytes():
            buf += chunk
            while (
                m := re.search(rb"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: (\d+)\r\n\r\n", buf)
            ) and len(buf) >= m.end() + int(m.group(1)):
                out.append(buf[m.end() : m.end() + int(m.group(1))])
                buf = buf[m.end() + int(m.group(1)) :]
                if len(out) >= n:
                    return


def test_live_view_is_shared_by_viewers_and_rate_capped(served: ws.Served) -> None:
    hub = served.state.hub
    url = served.url + "/v1/streams/cam1/live"
    before = hub.encoded["cam1"]
    start = time.monotonic()
    parts: list[list[bytes]] = [[], [], []]
    viewers = [threading.Thread(target=_read_parts, args=(url, served.headers(), 5, p)) for p in parts]
    for t in viewers:
        t.start()
    for t in viewers:
        t.join(60)
    elapsed = time.monotonic() - start
    made = hub.encoded["cam1"] - before
    assert all(len(p) == 5 for p in parts)
    for p in parts:
        assert all(Image.open(io.BytesIO(j)).size == (ws.WIDTH, ws.HEIGHT) for j in p)
    # Three viewers got 15 pictures between them; one shared encoder made them: about 5, plus the one or two
    # encoded while the last viewer was still connecting. Three private encoders would have made about 15.
    assert made <= 5 + 3, made
    assert len({j for p in parts for j in p}) <= made + 1  # viewers were sent the same bytes, not copies
    # The rate cap: live_fps (5 by default) per second, +2 for the frames at both ends of the window.
    assert made <= 5 * elapsed + 2, (made, elapsed)
    # Nobody watches any more: encoding stops.
    ws.wait_for(lambda: hub.viewers() == {}, "the viewers to leave")
    time.sleep(0.5)
    idle = hub.encoded["cam1"]
    time.sleep(1.0)
    assert hub.encoded["cam1"] == idle


# ---- saving zones and lines -----------------------------------------------------------------------------

# Over the box's path in the left half, its bottom centre (y = 234) inside: the box passes here each loop.
DOCK_OVER_PATH = [[100, 200], [250, 200], [250, 280], [100, 280]]


def test_redrawn_zone_is_saved_validated_and_used_by_the_running_rules(served: ws.Served, client: Any) -> None:
    config = served.config
    before = config.read_text()
    assert client.get("/v1/events", params={"rule": "box-at-dock"}).json()["count"] == 0  # nothing there so far
    r = client.put("/v1/zones/dock", json={"points": DOCK_OVER_PATH})
    assert r.status_code == 200, r.text
    saved = r.json()
    assert saved["rules_updated"] == ["box-at-dock"] and saved["restart_required"] == []
    assert Path(saved["backup"]).read_text() == before
    after = config.read_text()
    assert "# test config: an operator's comment" in after and "# comment after the zones" in after
    assert load_config(config).config.zones["dock"] == [tuple(map(float, p)) for p in DOCK_OVER_PATH]
    assert client.get("/v1/config").json()["zones"]["dock"] == DOCK_OVER_PATH
    # The running rule engine took the new polygon: the box now raises the alarm it never raised before.
    events = wait_events(client, rule="box-at-dock")
    assert events[0]["objects"][0]["name"] == "box"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("PUT", "/v1/zones/bay", {"points": [[0, 0], [1, 1]]}, 422, "at least 3"),
        ("PUT", "/v1/lines/gate", {"points": [[0, 0], [1, 1], [2, 2]]}, 422, "at most 2"),
        ("PUT", "/v1/lines/gate", {"points": [[5, 5], [5, 5]]}, 422, "two different points"),  # the loader's check
        ("PUT", "/v1/zones/bay", {"points": [[0, 0], [1, "x"], [2, 2]]}, 422, "number"),
        ("PUT", "/v1/zones/bay", {"points": [[0, 0], [1, 1e9], [2, 2]]}, 422, "less than or equal"),
        ("PUT", "/v1/zones/bay", {"points": [[0, 0], [1, 1], [2, 2]], "extra": 1}, 422, "Extra inputs"),
        ("DELETE", "/v1/zones/bay", None, 422, "names no entry of 'zones'"),  # a rule still uses it
        ("DELETE", "/v1/zones/never-made", None, 422, "has no entry"),
        ("PUT", "/v1/zones/-bad", {"points": [[0, 0], [1, 0], [1, 1]]}, 422, "pattern"),
    ],
)
def test_geometry_edits_that_would_break_the_config_are_refused(
    served: ws.Served, client: Any, method: str, path: str, body: Any, status: int, message: str
) -> None:
    before = served.config.read_text()
    r = client.request(method, path, json=body)
    assert re.search(message, error_of(r, status))
    assert served.config.read_text() == before


def test_a_new_zone_no_rule_uses_is_saved_and_removed(served: ws.Served, client: Any) -> None:
    r = client.put("/v1/zones/spare", json={"points": [[0, 0], [10.25, 0], [10, 10]]})
    assert r.status_code == 200 and r.json()["rules_updated"] == []
    assert load_config(served.config).config.zones["spare"] == [(0.0, 0.0), (10.2, 0.0), (10.0, 10.0)]
    r = client.delete("/v1/zones/spare")
    assert r.status_code == 200 and "spare" not in load_config(served.config).config.zones


# ---- the command line ------------------------------------------------------------------------------------


def test_serve_command_prints_a_login_link_and_stops_on_time(
    fixtures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ws.write_config(fixtures, tmp_path)
    config.write_text(config.read_text().replace(f"token: {ws.TOKEN}", "token: null"))
    monkeypatch.delenv("YOLOSTREAM_TOKEN", raising=False)
    # In this process (a fresh one would spend most of its time importing torch): what a newcomer sees.
    assert cli_main(["serve", str(config), "--port", "0", "--duration", "2"]) == 0
    err = capsys.readouterr().err
    link = re.search(r"dashboard: (http://127\.0\.0\.1:\d+)/login#token=(\S+)", err)
    assert link, err
    assert re.search(r"API token \(generated.*\): " + re.escape(link.group(2)), err)
