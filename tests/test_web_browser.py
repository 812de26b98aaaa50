"""The dashboard in a real headless Chromium (Debian's ``chromium`` driven by Playwright; no downloaded
browser): log in, see a live frame with the boxes and zones drawn, see an alarm appear after the scripted
event, draw and save a zone. Screenshots go to the folder printed at the start (pytest's tmp path).

The pipeline starts only once the page is open, so the alarm list is seen empty first and the alarm is
seen arriving. Deadlines are generous, only to turn a hang into a failure.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import web_server as ws
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("av")
playwright_sync = pytest.importorskip("playwright.sync_api")

from yolostream.pipeline.config import load_config  # noqa: E402

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ZONE_RGB = np.array([255, 196, 0])  # the zone outline colour of yolostream.pipeline.annotate


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    exe = ws.chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: CI must install it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def served(fixtures: Path, tmp_path: Path) -> Iterator[ws.Served]:
    served = ws.start(ws.write_config(fixtures, tmp_path), start_pipeline=False)
    yield served
    ws.stop(served)


def _close_to(pixels: np.ndarray, rgb: np.ndarray, tol: int) -> int:
    return int((np.abs(pixels.astype(int) - rgb).max(axis=-1) <= tol).sum())


def test_dashboard_live_frame_alarm_and_zone_editor(browser: Any, served: ws.Served, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nscreenshots: {shots}")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []  # script errors, and any answer >= 500 (the 401 of the wrong token and the 404 of
    # the editor's frame before the first one exists are expected: the browser logs those as console errors)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 500 else None)
    page.on(
        "console",
        lambda m: (
            errors.append(f"console: {m.text}")
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )

    # Log in through the form (the dashboard redirects there without a session).
    page.goto(served.url + "/", wait_until="domcontentloaded")
    assert page.url.endswith("/login")
    page.fill("#token", "not-the-token-at-all")
    page.click("#login-button")
    page.wait_for_selector("#login-error:has-text('invalid token')")
    page.screenshot(path=shots / "login.png")
    page.fill("#token", ws.TOKEN)
    page.click("#login-button")
    page.wait_for_url(served.url + "/", wait_until="domcontentloaded")
    page.wait_for_selector("#live-cam1", state="attached")
    page.wait_for_selector("#alarm-note:has-text('No alarm')")  # nothing yet: the pipeline has not started
    assert page.locator("#alarm-rows tr").count() == 0

    # A live frame: the MJPEG image shows the stream at its own size, with the zone drawn over it.
    served.pipeline.start()
    page.wait_for_function(
        "() => { const i = document.getElementById('live-cam1'); return i && i.naturalWidth === 640; }", timeout=60_000
    )
    page.wait_for_selector("#state-cam1:has-text('running')", timeout=60_000)
    live = np.asarray(Image.open(io.BytesIO(page.locator("#live-cam1").screenshot())).convert("RGB"))
    # The bay outline is a band a few pixels wide down the frame; 60 pixels of it prove the overlay is drawn
    # (the clip itself has no such colour: grey noise, a purple box, an orange triangle; tolerance 40 covers
    # JPEG and the browser's scaling).
    assert _close_to(live, ZONE_RGB, 40) > 60
    assert live.std() > 10  # a picture, not a blank or a single colour

    # The scripted event: the box enters the bay 2.5 s into the clip; its alarm row appears with a snapshot.
    row = page.wait_for_selector("#alarm-rows tr[data-rule='box-in-bay']", timeout=60_000)
    thumb = row.query_selector("img.thumb")
    assert thumb is not None
    page.wait_for_function("(img) => img.complete && img.naturalWidth === 640", arg=thumb, timeout=30_000)
    page.wait_for_function("() => document.getElementById('engine-line').textContent.includes('yolo11n')")
    page.screenshot(path=shots / "dashboard.png", full_page=True)

    # Filters: no alarm of box-at-dock so far (nothing enters the dock), then every rule again.
    page.select_option("#f-rule", "box-at-dock")
    page.wait_for_selector("#alarm-note:has-text('No alarm')")
    page.select_option("#f-rule", "")
    page.wait_for_selector("#alarm-rows tr[data-rule='box-in-bay']")

    # Draw the dock over the box's path (4 clicks on the frame) and save it into the config file.
    page.select_option("#e-existing", "zones/dock")
    assert page.input_value("#e-name") == "dock"
    page.click("#e-clear")
    canvas = page.locator("#e-canvas")
    page.wait_for_function("() => document.getElementById('e-canvas').width === 640")
    box = canvas.bounding_box()
    assert box is not None
    to_css = box["width"] / 640  # canvas pixels are stream pixels; the page shows the canvas scaled
    corners = [(100, 200), (250, 200), (250, 280), (100, 280)]
    for x, y in corners:
        canvas.click(position={"x": x * to_css, "y": y * to_css})
    page.click("#e-save")
    status = page.wait_for_selector("#e-status.ok", timeout=30_000)
    assert "Rules updated live: box-at-dock" in status.text_content()
    page.locator("#editor-section").screenshot(path=shots / "editor.png")
    saved = load_config(served.config).config.zones["dock"]
    # Clicks land on whole CSS pixels, each one ~1/to_css stream pixels: within 1.5 of the intended corner.
    tolerance = 1.5 / to_css if to_css < 1 else 1.5
    assert np.abs(np.array(saved) - np.array(corners)).max() <= tolerance, saved
    assert Path(str(served.config) + ".bak").exists()

    # The running rules took the new zone: the box now raises box-at-dock, and the page lists it.
    page.wait_for_selector("#alarm-rows tr[data-rule='box-at-dock']", timeout=60_000)
    page.screenshot(path=shots / "dashboard-after-edit.png", full_page=True)
    assert errors == [], errors
