"""`make_dataset`: labelled stills of the demo scene in YOLO format, for training and validation.

Each still is a random moment of the same scene the video shows: the belt at a random position, parts in
and between its lanes (some cut by the frame's left or right edge), sometimes a part in the reject tray,
being pushed there (paddle down) or dropping out of it, under random light, noise and blur. About 6% are
empty belts, about 20% crowded (9 to 16 parts). Parts never overlap, so every label is a whole, visible
object, or the visible part of one at the frame edge (at least 30% of its width or height shows: no
slivers).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from yolostream.demo.layout import CLASS_NAMES, SceneLayout, scene_layout
from yolostream.demo.render import Look, Placement, Renderer

__all__ = ["make_dataset", "sample_still", "still_size"]

Box = tuple[float, float, float, float]


def still_size(imgsz: int) -> tuple[int, int]:
    """``(width, height)`` of a still whose long side is ``imgsz``: the video's 5:3 aspect, even sides."""
    return imgsz, max(48, 2 * round(imgsz * 0.3))


def _free(box: Box, taken: list[Box], margin: float) -> bool:
    x1, y1, x2, y2 = box
    return all(x1 >= b[2] + margin or x2 + margin <= b[0] or y1 >= b[3] + margin or y2 + margin <= b[1] for b in taken)


def sample_still(
    rng: np.random.Generator, layout: SceneLayout, renderer: Renderer, index: int = 0
) -> tuple[float, list[Placement], float | None, Look]:
    """A random scene moment: ``(t, placements, paddle bottom or None, look)`` for `Renderer.render`."""
    lay, bank = layout, renderer.bank
    u, w = lay.unit, lay.width
    kind = rng.random()
    n_belt = 0 if kind < 0.06 else int(rng.integers(9, 17)) if kind < 0.26 else int(rng.integers(2, 9))
    parts: list[Placement] = []
    taken: list[Box] = []
    paddle = None

    def place(cls: int, sprite: int, x: float, y: float) -> bool:
        sw, sh = bank[cls][sprite].size
        box = (x - sw / 2, y - sh / 2, x + sw / 2, y + sh / 2)
        if not _free(box, taken, 4 * u):
            return False
        shade = tuple(float(v) for v in rng.uniform(0.84, 1.12) * rng.uniform(0.95, 1.05, 3))
        parts.append(Placement(len(parts) + 1, cls, sprite, x, y, shade))  # type: ignore[arg-type]
        taken.append(box)
        return True

    tray = rng.random()
    if tray < 0.4:  # a part in the tray, being pushed into it, or dropping out of it
        cls, sprite = int(rng.integers(len(bank))), int(rng.integers(len(bank[0])))
        sw, sh = bank[cls][sprite].size
        x1, y1, x2, y2 = lay.zone_box
        if tray < 0.25:
            x, y = rng.uniform(x1 + sw / 2, x2 - sw / 2), rng.uniform(y1 + sh / 2, max(y1 + sh / 2 + 1, y2 - sh / 2))
        elif tray < 0.33:
            x, y = lay.push_x, rng.uniform(lay.belt_top + sh / 2 + 4, lay.zone_centre[1])
            paddle = y - sh / 2 - 1
        else:
            x, y = lay.push_x, rng.uniform(lay.zone_centre[1], lay.height + 0.2 * sh)
        place(cls, sprite, x, y)
    if paddle is not None:  # the paddle's column is not free for belt parts
        taken.append((lay.push_x - 33 * u, lay.belt_top - lay.rail, lay.push_x + 33 * u, paddle))
    for _ in range(n_belt):
        cls, sprite = int(rng.integers(len(bank))), int(rng.integers(len(bank[0])))
        sw, sh = bank[cls][sprite].size
        for _try in range(25):
            x = rng.uniform(-0.2 * sw, w + 0.2 * sw)  # cut by the frame edge, but never to a sliver
            if rng.random() < 0.7:
                y = lay.lanes[int(rng.integers(len(lay.lanes)))] + rng.normal(0, 0.04) * (
                    lay.belt_bottom - lay.belt_top
                )
            else:
                y = rng.uniform(lay.belt_top, lay.belt_bottom)
            y = min(max(y, lay.belt_top + sh / 2 + 2), lay.belt_bottom - sh / 2 - 2)
            if place(cls, sprite, x, y):
                break
    look = Look(
        gain=float(rng.uniform(0.78, 1.18)),
        grad_x=float(rng.uniform(-0.2, 0.2)),
        grad_y=float(rng.uniform(-0.2, 0.2)),
        vignette=float(rng.uniform(0.0, 0.25)),
        noise=float(rng.choice([0.5, 1.0, 1.0, 2.0])),
        noise_index=index,
        blur=float(rng.uniform(0.4, 1.0)) if rng.random() < 0.25 else 0.0,
    )
    return float(rng.uniform(0, 1000)), parts, paddle, look


def _label_lines(boxes: list[tuple[int, int, int, int, int, int, float]], w: int, h: int) -> str:
    rows = []
    for _, cls, x1, y1, x2, y2, _ in boxes:
        rows.append(f"{cls} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
    return "".join(r + "\n" for r in rows)


def make_dataset(
    out_dir: str | Path,
    n_train: int = 500,
    n_val: int = 100,
    imgsz: int = 640,
    seed: int = 0,
    quality: int = 90,
    flat: bool = False,
) -> dict[str, Any]:
    """Write a YOLO-format dataset of demo stills to ``out_dir``.

    Layout: ``images/{train,val}/<split>_NNNNN.jpg``, ``labels/{train,val}/<split>_NNNNN.txt`` (``cls cx cy
    w h`` normalised; an empty file for an empty picture) and ``data.yaml`` (absolute ``path``, ``train``,
    ``val``, ``names``). Pictures are ``still_size(imgsz)``; train and val come from different seeds.
    ``flat=True`` draws the parts on a uniform grey (`Renderer`'s test mode), the same layouts otherwise.

    Returns:
        a summary: ``data_yaml``, pictures and boxes per split, boxes per class, empty pictures, seconds.
    """
    out = Path(out_dir).resolve()
    width, height = still_size(imgsz)
    layout = scene_layout(width, height)
    renderer = Renderer(layout, seed, flat=flat)
    t0 = time.perf_counter()
    summary: dict[str, Any] = {"splits": {}, "per_class": dict.fromkeys(CLASS_NAMES, 0)}
    for split, n, stream in (("train", n_train, 1), ("val", n_val, 2)):
        img_dir, lab_dir = out / "images" / split, out / "labels" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        lab_dir.mkdir(parents=True, exist_ok=True)
        n_boxes = n_empty = 0
        for i in range(n):
            rng = np.random.default_rng([seed, stream, i])
            t, parts, paddle, look = sample_still(rng, layout, renderer, i)
            img, boxes = renderer.render(t, parts, paddle, look)
            name = f"{split}_{i:05d}"
            Image.fromarray(img).save(img_dir / f"{name}.jpg", quality=quality)
            (lab_dir / f"{name}.txt").write_text(_label_lines(boxes, width, height))
            n_boxes += len(boxes)
            n_empty += not boxes
            for b in boxes:
                summary["per_class"][CLASS_NAMES[b[1]]] += 1
        summary["splits"][split] = {"pictures": n, "boxes": n_boxes, "empty": n_empty}
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(CLASS_NAMES))
    data_yaml = out / "data.yaml"
    data_yaml.write_text(
        f"# yolostream demo scene: {n_train} train / {n_val} val stills, {width}x{height}, seed {seed}\n"
        f"path: {out}\ntrain: images/train\nval: images/val\nnames:\n{names}"
    )
    summary.update(data_yaml=str(data_yaml), size=[width, height], seconds=round(time.perf_counter() - t0, 2))
    return summary
