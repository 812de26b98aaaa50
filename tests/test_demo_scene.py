"""The demo scene generator: determinism, boxes on the drawn parts, events from the boxes, files readable.

Small frames (320 x 192) keep these fast; the scene is the same at every size (all sizes are fractions).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yolostream.cli.main import main
from yolostream.demo import CLASS_NAMES, make_dataset, make_video, scene_layout
from yolostream.demo.backdrop import FLAT_GREY
from yolostream.demo.render import Renderer
from yolostream.demo.score import score_video
from yolostream.demo.script import make_script
from yolostream.demo.sprites import BASE_COLOURS
from yolostream.demo.stills import sample_still
from yolostream.pipeline.config import load_config
from yolostream.train.data import TrainDataset, make_loader
from yolostream.val.dataset import load_yolo_dataset

REPO = Path(__file__).resolve().parents[1]
W, H = 320, 192
FPS = 10


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """10 s at 10 fps: the default script has one long hold (alarm) and one short one in that time."""
    path = tmp_path_factory.mktemp("video") / "conveyor.mp4"
    truth = make_video(path, seconds=10, fps=FPS, size=(W, H), seed=4)
    return path, truth


def _chroma(rgb: np.ndarray) -> np.ndarray:
    """Brightness-free colour: ``(r, g) / (r + g + b)``; light, shading and shade gains cancel out."""
    rgb = np.asarray(rgb, np.float64).reshape(-1, 3)
    return rgb[:, :2] / np.maximum(rgb.sum(axis=1, keepdims=True), 1)


def _nearest_class(pixels: np.ndarray) -> int:
    ref = _chroma(np.array([BASE_COLOURS[n] for n in CLASS_NAMES]))
    return int(np.argmin(np.abs(ref - np.median(_chroma(pixels), axis=0)).sum(axis=1)))


def _check_flat_picture(img: np.ndarray, boxes: list, tol: float, edge: int) -> int:
    """Boxes tight on the part pixels, part pixels only inside boxes, right classes.

    A pixel is "part" when it differs from the flat grey by more than ``tol``; "solid" when by more than
    ``tol + 10``. A box's edge is where a part covers half a pixel: every box side has solid pixels within
    ``edge`` pixels, and part pixels (down to the faintest fringe) lie within ``edge + 1`` of some box.
    """
    diff = np.abs(img.astype(np.int16) - FLAT_GREY).max(axis=2)
    part, solid = diff > tol, diff > tol + 10
    covered = np.zeros_like(part)
    for _, cls, x1, y1, x2, y2, *_ in boxes:
        inside = part[y1:y2, x1:x2]
        g = edge + 1
        covered[max(0, y1 - g) : y2 + g, max(0, x1 - g) : x2 + g] = True
        core = solid[y1:y2, x1:x2]
        rows, cols = np.nonzero(core.any(axis=1))[0], np.nonzero(core.any(axis=0))[0]
        assert len(rows) and rows[0] <= edge and rows[-1] >= y2 - y1 - 1 - edge, (cls, x1, y1, x2, y2)
        assert cols[0] <= edge and cols[-1] >= x2 - x1 - 1 - edge, (cls, x1, y1, x2, y2)
        # On the part: the thinnest case is a bolt at 45 degrees or a cut-off corner, still > 15% of its box.
        assert inside.mean() > 0.15, (cls, inside.mean())
        assert _nearest_class(img[y1:y2, x1:x2][inside]) == cls, (cls, x1, y1, x2, y2)
    assert not (part & ~covered).any(), "part pixels outside every box"
    return len(boxes)


def test_boxes_lie_on_drawn_parts() -> None:
    layout = scene_layout(W, H)
    renderer = Renderer(layout, seed=0, flat=True)
    n = 0
    for i in range(40):
        t, parts, paddle, look = sample_still(np.random.default_rng([9, i]), layout, renderer, i)
        img, boxes = renderer.render(t, parts, paddle, look)
        n += _check_flat_picture(img, boxes, tol=0, edge=0)  # flat render: exact
        xyxy = np.array([b[2:6] for b in boxes]).reshape(-1, 4)
        for j in range(len(xyxy)):
            others = np.delete(xyxy, j, axis=0)
            ix = np.minimum(others[:, 2], xyxy[j, 2]) - np.maximum(others[:, 0], xyxy[j, 0])
            iy = np.minimum(others[:, 3], xyxy[j, 3]) - np.maximum(others[:, 1], xyxy[j, 1])
            assert not ((ix > 0) & (iy > 0)).any(), "two parts overlap: every label must be a whole object"
    assert n > 150


def test_same_seed_same_scene(tmp_path: Path) -> None:
    layout = scene_layout(W, H)
    frames = []
    for seed in (2, 2, 3):
        renderer = Renderer(layout, seed)
        script = make_script(layout, renderer.bank, 6.0, FPS, seed)
        frames.append([renderer.render(t, script.placements(t), script.paddle(t))[0] for t in (0.0, 2.3, 4.1)])
    assert all(np.array_equal(a, b) for a, b in zip(frames[0], frames[1], strict=True))
    assert not any(np.array_equal(a, c) for a, c in zip(frames[0], frames[2], strict=True))

    def digest(root: Path) -> str:
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "data.yaml")
        return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()

    digests = [digest(Path(make_dataset(tmp_path / f"d{k}", 5, 3, W, seed)["data_yaml"]).parent) for k, seed in
               enumerate((1, 1, 2))]  # fmt: skip
    assert digests[0] == digests[1] != digests[2]


def test_dataset_readable_with_right_class_ids(tmp_path: Path) -> None:
    summary = make_dataset(tmp_path / "flat", n_train=16, n_val=8, imgsz=W, seed=5, flat=True)
    n = 0
    for split, count in (("train", 16), ("val", 8)):
        ds = load_yolo_dataset(summary["data_yaml"], split)
        assert ds.names == dict(enumerate(CLASS_NAMES)) and len(ds) == count
        assert ds.n_boxes == summary["splits"][split]["boxes"]
        for path, labels in ds:
            img = np.asarray(Image.open(path).convert("RGB"))
            assert img.shape == (H, W, 3)
            assert set(labels[:, 0].astype(int).tolist()) <= set(range(len(CLASS_NAMES)))
            c, cx, cy, bw, bh = (labels[:, k] for k in range(5))
            boxes = [(0, int(k), round((x - w / 2) * W), round((y - h / 2) * H), round((x + w / 2) * W),
                      round((y + h / 2) * H)) for k, x, y, w, h in zip(c, cx, cy, bw, bh, strict=True)]  # fmt: skip
            # JPEG (quality 90) rings around sharp edges: grey is "part" only beyond 30 levels, edges +-2 px
            # (the 8x8 DCT blocks smear an edge over a pixel or two).
            n += _check_flat_picture(img, boxes, tol=30, edge=2)
    assert n > 50


def test_real_dataset_feeds_the_trainer(tmp_path: Path) -> None:
    summary = make_dataset(tmp_path / "real", n_train=8, n_val=2, imgsz=W, seed=0)
    text = Path(summary["data_yaml"]).read_text()
    assert f"path: {tmp_path / 'real'}" in text and "train: images/train" in text and "val: images/val" in text
    ds = TrainDataset(load_yolo_dataset(summary["data_yaml"], "train", on_error="skip"), 160, augment=True)
    assert len(ds) == 8 and not ds.skipped
    batch = next(iter(make_loader(ds, batch=4, workers=0, shuffle=True, seed=0, epoch=0)))
    assert batch["img"].shape == (4, 3, 160, 160) and len(batch["cls"]) > 0


def _crossings(frames: list, line_x: float) -> set[tuple[int, int]]:
    """(part, frame) where the box centre passes line_x between consecutive frames (own reading of the rule)."""
    last: dict[int, tuple[int, float]] = {}
    out = set()
    for f, boxes in enumerate(frames):
        for pid, _, x1, _, x2, _, _ in boxes:
            cx = (x1 + x2) / 2
            if pid in last and last[pid][0] == f - 1 and last[pid][1] < line_x <= cx:
                out.add((pid, f))
            last[pid] = (f, cx)
    return out


def test_events_consistent_with_boxes(video: tuple[Path, dict]) -> None:
    _, truth = video
    frames, events, line_x = truth["frames"], truth["events"], truth["geometry"]["line"][0][0]
    assert len(frames) == truth["n_frames"] == 10 * FPS
    crossed = {(e["part_id"], e["frame"]) for e in events if e["type"] == "line_cross"}
    assert crossed == _crossings(frames, line_x) and len(crossed) >= 5
    assert all(e["direction"] == "in" for e in events if e["type"] == "line_cross")
    assert len({pid for pid, _ in crossed}) == len(crossed), "a part crosses once"

    rejected = {p["id"]: p["reject"] for p in truth["parts"] if p["reject"]}
    assert {e["part_id"] for e in events if e["type"].startswith("zone")} == set(rejected)
    assert not set(rejected) & {pid for pid, _ in crossed}, "rejected parts leave the belt before the line"
    holds = []
    for pid, plan in rejected.items():
        (enter,) = [e for e in events if e["type"] == "zone_enter" and e["part_id"] == pid]
        (leave,) = [e for e in events if e["type"] == "zone_exit" and e["part_id"] == pid]
        stay = (leave["frame"] - enter["frame"]) / FPS
        assert stay == pytest.approx(leave["dwell_s"])
        # The stay is the hold plus the part of the push (0.5 s) and of the drop (0.7 s) the centre spends
        # inside the tray, to a frame.
        assert plan["hold_s"] - 1 / FPS <= stay <= plan["hold_s"] + 1.2 + 1 / FPS, (pid, stay, plan)
        dwell = [e for e in events if e["type"] == "dwell" and e["part_id"] == pid]
        assert len(dwell) == (stay >= truth["dwell_s"])
        if dwell:
            assert dwell[0]["frame"] == enter["frame"] + round(truth["dwell_s"] * FPS)
        # Still while in the tray (between push and drop): the same box on every frame of the hold.
        held = [b[2:6] for f in range(enter["frame"], leave["frame"]) for b in frames[f] if b[0] == pid]
        assert max(held.count(b) for b in held) >= plan["hold_s"] * FPS - 1
        holds.append(plan["hold_s"])
    assert sorted(holds) == [0.8, 3.0]  # the default script: one alarm, one stay too short for one
    assert truth["summary"]["dwell_alarms"] == 1 and truth["summary"]["line_in"] == len(crossed)


def test_video_decodes_as_rendered(video: tuple[Path, dict]) -> None:
    import av

    path, truth = video
    assert json.loads(path.with_suffix(".json").read_text()) == truth
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == truth["n_frames"] and decoded[0].shape == (H, W, 3)
    layout = scene_layout(W, H)
    renderer = Renderer(layout, seed=4)
    script = make_script(layout, renderer.bank, 10, FPS, seed=4)
    from yolostream.demo.render import Look

    for f in (0, 37, 71):
        look = Look(gain=1.0, grad_x=0.12, grad_y=-0.08, vignette=0.12, noise=1.0, noise_index=f)
        img, boxes = renderer.render(f / FPS, script.placements(f / FPS), script.paddle(f / FPS), look)
        assert [list(b) for b in boxes] == truth["frames"][f]
        # H.264 at crf 18 with 4:2:0 chroma: a few grey levels of error on average.
        assert np.abs(decoded[f].astype(np.int16) - img).mean() < 6


def test_cli_help_and_demo_config(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["demo", "--help"])
    assert e.value.code == 0 and "conveyor.mp4" in capsys.readouterr().out
    loaded = load_config(REPO / "yolostream" / "demo" / "pipeline.yaml")  # what `yolostream demo` runs
    cfg, lay = loaded.config, scene_layout(640, 384)
    assert cfg.model.path is None  # no path: the bundled demo model
    # The yaml's geometry is the scene's, rounded to 0.1 px.
    assert np.allclose(cfg.lines["count-line"], lay.line, atol=0.05)
    assert np.allclose(cfg.zones["reject-tray"], lay.zone, atol=0.05)
    assert {r.kind for r in loaded.rules} == {"line_cross", "dwell"}


def test_score_video_counts_found_and_false(video: tuple[Path, dict]) -> None:
    _, truth = video
    frames = truth["frames"]
    perfect = [np.array([[*b[2:6], 0.9, b[1]] for b in fr]).reshape(-1, 6) for fr in frames]
    s = score_video(truth, perfect)
    partial = sum(b[6] < 0.5 for fr in frames for b in fr)
    assert partial > 0, "the video must have parts entering/leaving to test the ignore rule"
    assert s["recall"] == 1.0 and s["false"] == 0 and s["parts"] == sum(len(fr) for fr in frames) - partial
    # Drop every 10th box to find, shift the rest by 1 px (IoU stays > 0.5 for boxes >= 5 px a side), predict
    # the left half of each ignored box (mostly outside the frame: neither found nor false), add a box where
    # no part is on frames 0, 10, 20..., and predict a wrong class on top of each frame's first part.
    preds, dropped, extra = [], 0, 0
    k = 0
    for f, fr in enumerate(frames):
        rows = []
        for b in fr:
            if b[6] < 0.5:
                rows.append([b[2], b[3], (b[2] + b[4]) / 2, b[5], 0.6, b[1]])
                continue
            k += 1
            if k % 10 == 0:
                dropped += 1
                continue
            rows.append([b[2] + 1, b[3] + 1, b[4] + 1, b[5] + 1, 0.8, b[1]])
        if f % 10 == 0:
            rows.append([0, 0, 8, 8, 0.95, 0])  # the floor's top-left corner: no part there
            extra += 1
        if fr and fr[0][6] >= 0.5:
            b = fr[0]
            rows.append([b[2], b[3], b[4], b[5], 0.3, (b[1] + 1) % 4])
            extra += 1
        preds.append(np.array(rows).reshape(-1, 6))
    s = score_video(truth, preds)
    assert s["found"] == s["parts"] - dropped and s["false"] == extra
    assert s["predictions"] == s["found"] + extra
    assert sum(c["found"] for c in s["per_class"].values()) == s["found"]
    with pytest.raises(ValueError, match="frames"):
        score_video(truth, preds[:-1])
