"""The web side's small parts without a server: config text edits, guarded image decoding, token checks,
the per-second counts. The server-level behaviour is in test_web_api.py and test_web_browser.py."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

pytest.importorskip("fastapi")

from yolostream.detections import Detections
from yolostream.errors import ConfigError, ImageReadError
from yolostream.pipeline.frames import Frame, FrameResult
from yolostream.web.auth import COOKIE, TokenAuth, resolve_token
from yolostream.web.counts import CountSeries
from yolostream.web.geometry import patch_text, save_geometry
from yolostream.web.images import ImageTooLargeError, decode_upload

TRIANGLE = [[1, 2], [30, 4.5], [5, 60]]
BASE = "model: {path: m.pt}  # the model\nsources: [{name: a, uri: a.mp4}]\n"


# ---- editing the config text ------------------------------------------------------------------------------

# (config text, table, name, points or None to remove, the table after the edit); comments are checked apart.
EDITS = [
    # a flow value on one line, replaced in place (its comment stays)
    (BASE + "zones:\n  z: [[0, 0], [9, 0], [9, 9]]  # keep me\n", "zones", "z", TRIANGLE, {"z": TRIANGLE}),
    # a block list at the key's own indentation (what yaml.safe_dump writes)
    (
        BASE + "zones:\n  z:\n  - [0, 0]\n  - [9, 0]\n  - [9, 9]\n  y: [[1, 1], [2, 2], [3, 3]]\n",
        "zones",
        "z",
        TRIANGLE,
        {"z": TRIANGLE, "y": [[1, 1], [2, 2], [3, 3]]},
    ),
    # a new entry after the last one of a block mapping
    (
        BASE + "zones:\n  z: [[0, 0], [9, 0], [9, 9]]\n# after\n",
        "zones",
        "new",
        TRIANGLE,
        {"z": [[0, 0], [9, 0], [9, 9]], "new": TRIANGLE},
    ),
    # a flow mapping, and an empty one
    (
        BASE + "lines: {l: [[0, 0], [1, 1]]}\n",
        "lines",
        "m",
        [[2, 2], [3, 3]],
        {"l": [[0, 0], [1, 1]], "m": [[2, 2], [3, 3]]},
    ),
    (BASE + "lines: {}\n", "lines", "m", [[2, 2], [3, 3]], {"m": [[2, 2], [3, 3]]}),
    # `zones:` with nothing, and no section at all
    (BASE + "zones:\nlines: {}\n", "zones", "z", TRIANGLE, {"z": TRIANGLE}),
    (BASE, "zones", "z", TRIANGLE, {"z": TRIANGLE}),
    # removals: one of two entries, the last entry (the section becomes {}), from a flow mapping
    (
        BASE + "zones:\n  z: [[0, 0], [9, 0], [9, 9]]\n  y: [[1, 1], [2, 2], [3, 3]]\n",
        "zones",
        "z",
        None,
        {"y": [[1, 1], [2, 2], [3, 3]]},
    ),
    (BASE + "zones:\n  z: [[0, 0], [9, 0], [9, 9]]  # gone too\nlines: {}\n", "zones", "z", None, {}),
    (BASE + "lines: {l: [[0, 0], [1, 1]], m: [[2, 2], [3, 3]]}\n", "lines", "l", None, {"m": [[2, 2], [3, 3]]}),
    # a name YAML would read as a boolean is written quoted
    (BASE + "zones: {}\n", "zones", "yes", TRIANGLE, {"yes": TRIANGLE}),
]


@pytest.mark.parametrize(("text", "table", "name", "points", "want"), EDITS)
def test_patch_text_changes_only_the_one_entry(text: str, table: str, name: str, points, want) -> None:
    out = patch_text(text, table, name, points)
    data = yaml.safe_load(out)
    assert data[table] == want
    assert data["model"] == {"path": "m.pt"} and out.startswith("model: {path: m.pt}  # the model\n")
    for comment in ("# keep me", "# after"):
        assert (comment in out) == (comment in text)


@pytest.mark.parametrize(
    ("text", "table", "name", "message"),
    [
        (BASE + "zones: {}\n", "zones", "missing", "has no entry 'missing'"),
        (BASE + "zones: [1, 2]\n", "zones", "z", "must be a mapping"),
        ("[1, 2]\n", "zones", "z", "block mapping"),
        ("zones: [\n", "zones", "z", "not valid YAML"),
    ],
)
def test_patch_text_errors(text: str, table: str, name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        patch_text(text, table, name, None if "missing" in name else TRIANGLE)


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(
        "# operator's notes\n"
        "model: {path: m.pt}\n"
        "sources: [{name: cam, uri: cam.mp4}]\n"
        "zones:\n  bay: [[0, 0], [10, 0], [10, 10]]   # the bay\n"
        "rules:\n  - {name: r, kind: presence, zone: bay}\n"
    )
    return path


def test_save_geometry_validates_keeps_a_backup_and_the_comments(tmp_path: Path) -> None:
    path = _config(tmp_path)
    before = path.read_text()
    loaded, backup = save_geometry(path, "zones", "bay", [[1.04, 2], [30, 4], [5, 60.25]])
    assert backup.read_text() == before
    after = path.read_text()
    assert "# operator's notes" in after and "# the bay" in after
    assert loaded.config.zones["bay"] == [(1.0, 2.0), (30.0, 4.0), (5.0, 60.2)]  # tenths of a pixel
    assert loaded.rules[0].zone == ((1.0, 2.0), (30.0, 4.0), (5.0, 60.2))  # the rule sees the new polygon
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed, none left behind


@pytest.mark.parametrize(
    ("table", "name", "points", "message"),
    [
        ("zones", "bay", None, "names no entry of 'zones'"),  # a rule still uses it
        ("zones", "../x", TRIANGLE, "must match"),
        ("lines", "l", [[0, 0], [0, 0]], "two different points"),
    ],
)
def test_save_geometry_refuses_what_would_not_load_and_leaves_the_file(tmp_path, table, name, points, message) -> None:
    path = _config(tmp_path)
    before = path.read_text()
    if table == "lines":  # a rule on line `l`: a degenerate redraw must be stopped by the loader's own check
        with_line = "lines: {l: [[0, 0], [5, 5]]}\nrules:\n  - {name: g, kind: line_cross, line: l}\n"
        path.write_text(before.replace("rules:\n", with_line))
        before = path.read_text()
    with pytest.raises(ConfigError, match=message):
        save_geometry(path, table, name, points)
    assert path.read_text() == before
    assert not path.with_name(path.name + ".bak").exists()


def test_save_geometry_runs_the_callers_check_before_writing(tmp_path: Path) -> None:
    path = _config(tmp_path)
    before = path.read_text()

    def refuse(_loaded) -> None:
        raise ConfigError("class 'cat' is not a class of the model")

    with pytest.raises(ConfigError, match="cat"):
        save_geometry(path, "zones", "bay", TRIANGLE, check=refuse)
    assert path.read_text() == before


# ---- decoding uploads ---------------------------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` (8-bit grey) with a few bytes of data: a decompression bomb's
    header. Decoding it would need width*height bytes; the guard must refuse it from the header alone."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _encoded(fmt: str, size=(40, 30), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 90).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (_png_header_only(50_000, 50_000), ImageTooLargeError, "2500000000 pixels"),
        (b"", ImageReadError, "empty"),
        (b"GIF87a not really", ImageReadError, "cannot decode|not an image"),
        (b"\x00" * 1000, ImageReadError, "not an image in a supported format"),
        (_encoded("JPEG")[:200], ImageReadError, "cannot decode"),  # truncated: header fine, data cut
        (_encoded("ICO", (32, 32)), ImageReadError, "supported format"),  # a real image, a format not allowed
    ],
)
def test_decode_upload_refuses(data: bytes, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        decode_upload(data, max_pixels=10_000_000, name="up")


@pytest.mark.parametrize(
    ("fmt", "mode"), [("PNG", "RGB"), ("PNG", "L"), ("JPEG", "RGB"), ("BMP", "RGB"), ("PNG", "RGBA")]
)
def test_decode_upload_gives_rgb(fmt: str, mode: str) -> None:
    im = decode_upload(_encoded(fmt, (40, 30), mode), max_pixels=40 * 30)  # exactly at the limit is allowed
    assert im.mode == "RGB" and im.size == (40, 30)
    with pytest.raises(ImageTooLargeError):
        decode_upload(_encoded(fmt, (40, 30), mode), max_pixels=40 * 30 - 1)


# ---- tokens ----------------------------------------------------------------------------------------------

TOKEN = "0123456789abcdef-token"


@pytest.mark.parametrize(
    ("method", "path", "headers", "cookies", "allowed"),
    [
        ("GET", "/healthz", {}, {}, True),  # liveness needs nothing
        ("GET", "/login", {}, {}, True),
        ("GET", "/v1/streams", {}, {}, False),
        ("GET", "/v1/streams", {"authorization": f"Bearer {TOKEN}"}, {}, True),
        ("GET", "/v1/streams", {"authorization": f"bearer {TOKEN}"}, {}, True),  # the scheme is case-insensitive
        ("GET", "/v1/streams", {"authorization": f"Bearer {TOKEN}x"}, {}, False),
        ("GET", "/v1/streams", {"authorization": TOKEN}, {}, False),  # no scheme
        ("GET", "/static/app.js", {}, {}, False),  # only the login page's files are public
        ("GET", "/v1/streams", {}, {COOKIE: "session"}, True),
        ("PUT", "/v1/zones/z", {}, {COOKIE: "session"}, False),  # a cookie change without the CSRF header
        ("PUT", "/v1/zones/z", {"x-requested-with": "yolostream"}, {COOKIE: "session"}, True),
        ("PUT", "/v1/zones/z", {"authorization": f"Bearer {TOKEN}"}, {}, True),  # bearer: no CSRF exposure
        ("GET", "/v1/streams", {}, {COOKIE: TOKEN}, False),  # the cookie holds an HMAC, never the token
    ],
)
def test_token_auth(method: str, path: str, headers: dict, cookies: dict, allowed: bool) -> None:
    auth = TokenAuth(TOKEN)
    cookies = {k: auth.session if v == "session" else v for k, v in cookies.items()}
    assert (auth.check(method, path, headers, cookies) is None) == allowed


def test_resolve_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YOLOSTREAM_TOKEN", raising=False)
    assert resolve_token(TOKEN) == (TOKEN, "server.web.token")
    made, where = resolve_token(None)
    assert where == "generated" and len(made) >= 24 and made != resolve_token(None)[0]
    monkeypatch.setenv("YOLOSTREAM_TOKEN", TOKEN + "-env")
    assert resolve_token("") == (TOKEN + "-env", "$YOLOSTREAM_TOKEN")
    with pytest.raises(ConfigError, match="at least 16"):
        resolve_token("short")


# ---- counts over time --------------------------------------------------------------------------------------


def _result(t: float, classes: list[int]) -> FrameResult:
    n = len(classes)
    det = Detections(torch.zeros(n, 4), torch.ones(n), torch.tensor(classes, dtype=torch.int64), {0: "box", 1: "disc"})
    return FrameResult(Frame("cam", 0, t, np.zeros((2, 2, 3), np.uint8)), det, t)


def test_counts_keep_the_most_seen_per_second() -> None:
    series = CountSeries()
    for t, classes in [(100.1, [0]), (100.5, [0, 0, 1]), (100.9, [0]), (101.2, []), (103.0, [1])]:
        series.observe(_result(t, classes))
    got = series.query("cam", seconds=10, now=103.5)
    # second 100: at most 2 boxes and 1 disc in one frame; 101: a frame with nothing; 102: no frame (a gap).
    assert got["times"] == [100, 101, 103]
    assert got["series"] == {"box": [2, 0, 0], "disc": [1, 0, 1]}
    assert series.query("cam", seconds=2, now=103.5)["times"] == [103]
    assert series.query("other", seconds=10, now=103.5)["times"] == []
