"""A real `yolostream serve` stack for the web tests: the shapes model, a generated looping clip, the
pipeline, and uvicorn on a free loopback port. Nothing is mocked; requests go over TCP.

The clip (640x360, 10 fps, looping every 6 s): a purple box crosses left to right along the middle
(centre x = 0.1 -> 0.9 of the width over 0-4 s, then stands at the right until the loop starts it again
on the left) and a triangle stands still at the top left. The config has a zone ``bay`` over the right
40 % of the frame (the box's bottom centre enters it at 2.5 s into each loop, raising ``box-in-bay``), a
zone ``dock`` in the bottom-left corner that nothing enters (so ``box-at-dock`` stays quiet until a test
redraws it), and a line ``gate`` at mid width.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from media import Scene, Shape, write_mp4

TOKEN = "test-token-0123456789abcdef"
WIDTH, HEIGHT, FPS = 640, 360, 10
LOOP_S = 6.0
BAY = [[384, 0], [640, 0], [640, 360], [384, 360]]  # x >= 0.6 of the width
DOCK = [[0, 300], [60, 300], [60, 360], [0, 360]]  # bottom-left corner: empty in every frame
GATE = [[320, 0], [320, 360]]


def scene() -> Scene:
    box = Shape("box", (130, 30, 140), (0.15, 0.3), ((0.0, 0.1, 0.5), (4.0, 0.9, 0.5), (LOOP_S, 0.9, 0.5)))
    triangle = Shape("triangle", (230, 150, 50), (0.1, 0.18), ((0.0, 0.1, 0.15), (LOOP_S, 0.1, 0.15)))
    return Scene(width=WIDTH, height=HEIGHT, fps=FPS, n_frames=int(LOOP_S * FPS), shapes=(box, triangle))


def write_config(fixtures: Path, folder: Path, **server: Any) -> Path:
    """A commented YAML config like an operator's (the editor must keep the comments)."""
    clip = write_mp4(folder / "clip.mp4", scene())
    model = fixtures / "checkpoints" / "yolo11n-shapes.pt"
    data = {
        "model": {"path": str(model), "imgsz": 320},
        "sources": [{"name": "cam1", "uri": str(clip), "loop": True, "realtime": True, "fps": FPS}],
        "zones": {"bay": BAY, "dock": DOCK},
        "lines": {"gate": GATE},
        "rules": [
            {"name": "box-in-bay", "kind": "presence", "zone": "bay", "classes": ["box"], "cooldown_s": 1.0},
            {"name": "box-at-dock", "kind": "presence", "zone": "dock", "classes": ["box"], "cooldown_s": 1.0},
            {"name": "gate", "kind": "line_cross", "line": "gate", "classes": ["box"]},
        ],
        "tracking": {"frame_rate": FPS},
        "sinks": {
            "state_dir": str(folder / "state"),
            "sqlite": {"path": str(folder / "alarms.db")},
            "snapshots": {"dir": str(folder / "snapshots")},
        },
        "server": {"metrics": False, "web": {"port": 0, "token": TOKEN, **server}},
    }
    text = "# test config: an operator's comment that must survive edits\n"
    for key, value in data.items():
        text += yaml.safe_dump({key: value}, default_flow_style=None, sort_keys=False)
        if key == "zones":
            text += "# comment after the zones\n"
    path = folder / "config.yaml"
    path.write_text(text)
    return path


@dataclass
class Served:
    url: str
    config: Path
    pipeline: Any
    state: Any
    server: Any

    def headers(self, token: str = TOKEN) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


def start(config: Path, start_pipeline: bool = True) -> Served:
    from yolostream.pipeline.app import Pipeline
    from yolostream.pipeline.config import load_config
    from yolostream.web.app import create_app
    from yolostream.web.server import WebServer
    from yolostream.web.state import WebState

    loaded = load_config(config)
    pipeline = Pipeline(loaded)
    state = WebState(pipeline, config, TOKEN, loaded.config.server.web)
    server = WebServer(create_app(state), "127.0.0.1", 0, hub=state.hub).start()
    if start_pipeline:
        pipeline.start()
    return Served(server.url, config, pipeline, state, server)


def stop(served: Served) -> None:
    served.server.stop()
    served.state.close()
    served.pipeline.close(1.0)


def wait_for(what: Callable[[], Any], message: str, timeout_s: float = 60.0) -> Any:
    """Poll until ``what()`` is truthy (returned); generous deadline, only to turn a hang into a failure."""
    deadline = time.monotonic() + timeout_s
    while not (value := what()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.1)
    return value


def chromium() -> str | None:
    """Debian's chromium, or None (CI installs it: apt-get install chromium)."""
    return shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
