"""`make_video`: the demo clip (H.264 MP4 through PyAV) and its ground truth (JSON beside it).

Ground truth, ``<video>.json``::

    {"video": "conveyor.mp4", "width": 640, "height": 384, "fps": 15, "n_frames": 300, "seed": 0,
     "names": ["bolt", "nut", "gear", "bracket"], "dwell_s": 2.0,
     "geometry": {"line": [[x, y], [x, y]], "zone": [[x, y], ...], "belt": [x1, y1, x2, y2]},
     "parts": [{"id": 1, "cls": 2, "name": "gear", "reject": null | {"t_push": s, "hold_s": s}}, ...],
     "box_fields": ["id", "cls", "x1", "y1", "x2", "y2", "visible"],
     "frames": [[[id, cls, x1, y1, x2, y2, visible], ...], ...],  # per frame; pixels, x2/y2 exclusive;
                                       # visible: fraction of the part inside the frame (1.0 = whole)
     "events": [{"type": "line_cross" | "zone_enter" | "zone_exit" | "dwell", "frame": f, "time": s,
                 "part_id": id, "cls": c, "name": n, ...}, ...],   # see yolostream.demo.events
     "summary": {"parts_seen": n, "boxes": n, "line_in": n, "line_in_per_class": {...},
                 "zone_visits": n, "dwell_alarms": n}}
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

from yolostream.demo.events import events_from_boxes
from yolostream.demo.layout import CLASS_NAMES, scene_layout
from yolostream.demo.render import Look, Renderer
from yolostream.demo.script import Part, make_script

__all__ = ["make_video"]


def _part_entry(p: Part) -> dict[str, Any]:
    reject = None if p.reject is None else {"t_push": round(p.reject.t_push, 4), "hold_s": p.reject.hold_s}
    return {"id": p.part_id, "cls": p.cls, "name": CLASS_NAMES[p.cls], "reject": reject}


def make_video(
    out_path: str | Path,
    seconds: float = 20.0,
    fps: int = 15,
    size: tuple[int, int] = (640, 384),
    seed: int = 0,
    dwell_s: float = 2.0,
    rejects: list[tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """Write the demo video to ``out_path`` (``.mp4``) and its ground truth to ``out_path`` with ``.json``.

    Args:
        seconds, fps: length and rate (frame ``f`` shows time ``f / fps``).
        size: ``(width, height)``, even numbers (H.264 4:2:0).
        seed: the same seed gives the same video, frame for frame.
        dwell_s: the dwell time of the reject zone; the default script's holds are 1 s longer and
            1.2 s shorter than it, alternately.
        rejects: ``(time, hold_s)`` of each push into the reject tray (default: `default_rejects`).

    Returns:
        the ground truth (as written to the JSON file).
    """
    import av

    width, height = size
    if width % 2 or height % 2:
        raise ValueError(f"video size must be even (H.264 4:2:0), got {width}x{height}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    layout = scene_layout(width, height)
    renderer = Renderer(layout, seed)
    script = make_script(layout, renderer.bank, seconds, fps, seed, rejects)
    look = Look(gain=1.0, grad_x=0.12, grad_y=-0.08, vignette=0.12, noise=1.0)
    frames: list[list[list[int]]] = []
    with av.open(str(out_path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        options = {"preset": "ultrafast", "crf": "18", "g": str(fps), "bf": "0"}
        stream = container.add_stream("libx264", rate=Fraction(fps), options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for f in range(script.n_frames):
            t = f / fps
            look_f = Look(**{**look.__dict__, "noise_index": f})
            img, boxes = renderer.render(t, script.placements(t), script.paddle(t), look_f)
            frames.append([list(b) for b in boxes])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode(None))
    events = events_from_boxes(frames, layout, fps, dwell_s)
    seen = {b[0] for fr in frames for b in fr}
    crossings = [e for e in events if e["type"] == "line_cross" and e["direction"] == "in"]
    truth = {
        "video": out_path.name,
        "width": width,
        "height": height,
        "fps": fps,
        "n_frames": script.n_frames,
        "seed": seed,
        "names": list(CLASS_NAMES),
        "dwell_s": dwell_s,
        "geometry": {
            "line": [list(p) for p in layout.line],
            "zone": [list(p) for p in layout.zone],
            "belt": [0, layout.belt_top, width, layout.belt_bottom],
        },
        "parts": [_part_entry(p) for p in script.parts if p.part_id in seen],
        "box_fields": ["id", "cls", "x1", "y1", "x2", "y2", "visible"],
        "frames": frames,
        "events": events,
        "summary": {
            "parts_seen": len(seen),
            "boxes": sum(len(fr) for fr in frames),
            "line_in": len(crossings),
            "line_in_per_class": {n: sum(e["cls"] == c for e in crossings) for c, n in enumerate(CLASS_NAMES)},
            "zone_visits": sum(e["type"] == "zone_enter" for e in events),
            "dwell_alarms": sum(e["type"] == "dwell" for e in events),
        },
    }
    out_path.with_suffix(".json").write_text(json.dumps(truth, separators=(",", ":")))
    return truth
