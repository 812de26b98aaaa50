"""The training data pipeline: labels follow every geometric step, determinism, bad input.

Label consistency is checked by drawing: each labelled box of a synthetic dataset is a filled rectangle
of its own colour (one colour per class, each class used once), so after mosaic / affine / flips the
pixels of a colour must be where its label says, and nowhere else.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from yolostream.errors import ConfigError
from yolostream.train.augment import hsv_matrix
from yolostream.train.data import AugmentConfig, TrainDataset, collate, make_loader
from yolostream.val.dataset import load_yolo_dataset

S = 320
BACKGROUND = 60  # grey of the synthetic pictures; the pad is 114
# Colours far from each other and from both greys (checked in `test_palette_is_unambiguous`).
PALETTE = [c for c in itertools.product((0, 128, 255), repeat=3) if len(set(c)) > 1][:12]
# A pixel "has" a colour when every channel is within this of it. Inside a warped rectangle bilinear
# sampling of equal neighbours gives the colour exactly; a pixel straddling an edge is a blend of the
# colour and grey, which `test_palette_is_unambiguous` shows never falls this close to another colour.
TOL = 10
# How far a colour's pixel extent may sit inside its label's edges: an edge pixel is a blend (no match).
# The blend reaches 1 output pixel for the bilinear warp plus up to 1 for PIL's antialiased load-time
# resize (kernel 1/r source pixels, r >= 2/3 here), and half a pixel of box rounding.
EDGE = 2.5
SIZES = [(320, 256), (400, 300), (256, 320), (300, 300), (480, 360), (320, 240)]  # (w, h) per picture


def _write_dataset(root: Path, rng: np.random.Generator) -> Path:
    """Six PNGs with two rectangles each (classes 0..11, one rectangle per class), and data.yaml."""
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    for i, (w, h) in enumerate(SIZES):
        img = np.full((h, w, 3), BACKGROUND, np.uint8)
        rows, placed = [], []
        for k in (2 * i, 2 * i + 1):
            while True:  # 6 px from the picture's border and 8 px from the other rectangle: no colour blends
                bw, bh = rng.integers(24, 90, size=2)
                x1, y1 = rng.integers(6, w - bw - 6), rng.integers(6, h - bh - 6)
                if all(x1 > p[2] + 8 or x1 + bw + 8 < p[0] or y1 > p[3] + 8 or y1 + bh + 8 < p[1] for p in placed):
                    break
            placed.append((x1, y1, x1 + bw, y1 + bh))
            img[y1 : y1 + bh, x1 : x1 + bw] = PALETTE[k]
            rows.append(f"{k} {(x1 + bw / 2) / w:.6f} {(y1 + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}")
        Image.fromarray(img).save(root / "images" / "train" / f"{i:02d}.png")
        (root / "labels" / "train" / f"{i:02d}.txt").write_text("\n".join(rows) + "\n")
    names = "\n".join(f"  {k}: c{k}" for k in range(len(PALETTE)))
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/train\nnames:\n{names}\n")
    return root / "data.yaml"


@pytest.fixture(scope="module")
def colour_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_dataset(tmp_path_factory.mktemp("colours"), np.random.default_rng(7))


def test_palette_is_unambiguous() -> None:
    """No blend of a palette colour with either grey comes within TOL (+4 for rounding) of another colour."""
    a = np.linspace(0, 1, 401)[:, None]
    for p, q in itertools.permutations(PALETTE, 2):
        for grey in (BACKGROUND, 114):
            blend = np.asarray(q) * (1 - a) + grey * a
            assert np.abs(blend - np.asarray(p)).max(axis=1).min() > TOL + 4, (p, q, grey)


def _original_areas(yaml: Path) -> dict[int, float]:
    """Class -> rectangle area in load-time pixels (long side S), for the bound on dropped boxes."""
    areas = {}
    for path, labels in load_yolo_dataset(yaml, "train"):
        w, h = Image.open(path).size
        r = S / max(w, h)
        for c, _, _, bw, bh in labels:
            areas[int(c)] = bw * w * r * bh * h * r
    return areas


def _check_sample(img: torch.Tensor, labels: torch.Tensor, cfg: AugmentConfig, areas: dict[int, float]) -> int:
    """Assert every label sits on its colour and every visible colour has a label; return labels checked."""
    assert img.dtype == torch.uint8 and img.shape == (3, S, S)
    assert labels.dtype == torch.float32 and labels.shape[1] == 5
    pix = img.permute(1, 2, 0).numpy().astype(np.int16)
    classes = labels[:, 0].long().tolist()
    assert len(set(classes)) == len(classes), "each colour is in the picture once"
    zoom_max = 1 + cfg.scale
    rotated = cfg.degrees > 0 or cfg.shear > 0
    for k, colour in enumerate(PALETTE):
        mask = (np.abs(pix - np.asarray(colour)) <= TOL).all(axis=2)
        ys, xs = np.nonzero(mask)
        if k not in classes:
            # Dropped (or never picked): what shows is a sliver, thinner than min_side (+ blend) or under
            # min_visible of the largest area the rectangle could take (plus a blended one-pixel rim).
            if len(xs):
                w, h = xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()
                bound = cfg.min_visible * areas[k] * zoom_max**2 + 2 * (w + h)
                assert min(w, h) < cfg.min_side + 2 * EDGE or len(xs) <= bound, (k, w, h, len(xs))
            continue
        cx, cy, bw, bh = (labels[classes.index(k), 1:] * S).tolist()
        x1, y1, x2, y2 = cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2
        assert len(xs) > 0, f"label of class {k} where its colour is not"
        # The colour is nowhere outside its box (pixel [x, x + 1) overlaps the box grown by 1 px).
        assert xs.min() + 1 > x1 - 1 and xs.max() < x2 + 1 and ys.min() + 1 > y1 - 1 and ys.max() < y2 + 1, k
        on_edge = x1 < 0.5 or y1 < 0.5 or x2 > S - 0.5 or y2 > S - 0.5
        if rotated and on_edge:
            continue  # the corners' box cut by the frame may be looser than the visible part: standard
        extent = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert np.allclose(extent, (x1, y1, x2, y2), atol=EDGE), (k, extent, (x1, y1, x2, y2))
    return len(classes)


CASES = {
    # name: (augment, config)
    "letterbox": (False, AugmentConfig()),
    "affine+flips": (True, AugmentConfig(mosaic=0.0, translate=0.25, scale=0.5, fliplr=0.5, flipud=0.5)),
    "mosaic+affine+flips": (True, AugmentConfig(mosaic=1.0, translate=0.1, scale=0.5, fliplr=0.5, flipud=0.5)),
    "rotation+shear": (True, AugmentConfig(mosaic=0.5, degrees=25.0, shear=5.0, scale=0.3, fliplr=0.5)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_labels_follow_geometry(colour_yaml: Path, case: str) -> None:
    augment, cfg = CASES[case]
    cfg = AugmentConfig(**{**cfg.__dict__, "hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0})  # colours must stay
    ds = TrainDataset(load_yolo_dataset(colour_yaml, "train"), S, augment=augment, aug=cfg, seed=1)
    areas = _original_areas(colour_yaml)
    checked, edges = 0, 0
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            img, labels = ds[i]
            checked += _check_sample(img, labels, cfg, areas)
            xyxy = torch.cat([labels[:, 1:3] - labels[:, 3:] / 2, labels[:, 1:3] + labels[:, 3:] / 2], 1) * S
            edges += int(((xyxy < 0.5) | (xyxy > S - 0.5)).any(1).sum())
    assert checked >= 4 * len(ds), "too few labels survived to test anything"
    if augment and cfg.translate >= 0.1:
        assert edges > 0, "no label was cut by the frame: the clipping path went untested"


def test_hsv_changes_pixels_not_labels(colour_yaml: Path) -> None:
    split = load_yolo_dataset(colour_yaml, "train")
    base = dict(mosaic=0.0, fliplr=0.5)
    plain = TrainDataset(split, S, True, AugmentConfig(hsv_h=0, hsv_s=0, hsv_v=0, **base), seed=3)
    jitter = TrainDataset(split, S, True, AugmentConfig(hsv_h=0.05, hsv_s=0.7, hsv_v=0.4, **base), seed=3)
    for i in range(len(split)):
        (a, la), (b, lb) = plain[i], jitter[i]
        assert torch.equal(la, lb)
        assert (a.int() - b.int()).abs().float().mean() > 1.0


def test_hsv_matrix_turns_hue_and_keeps_greys() -> None:
    red, grey = np.array([1.0, 0.0, 0.0]), np.array([0.4, 0.4, 0.4])
    third = hsv_matrix(1 / 3, 1.0, 1.0)  # a third of the hue circle: red -> green -> blue -> red
    assert np.allclose(third @ red, [0, 1, 0], atol=1e-9) and np.allclose(third @ third @ red, [0, 0, 1], atol=1e-9)
    assert np.allclose(hsv_matrix(0.123, 0.3, 1.0) @ grey, grey)  # hue and saturation leave greys alone
    assert np.allclose(hsv_matrix(0.0, 0.0, 1.0) @ np.array([0.9, 0.3, 0.0]), [0.4, 0.4, 0.4])  # no saturation
    assert np.allclose(hsv_matrix(0.0, 1.0, 1.5), 1.5 * np.eye(3))  # value: a gain


def _batches(ds: TrainDataset, workers: int, seed: int, epoch: int) -> list[dict[str, torch.Tensor]]:
    return list(make_loader(ds, batch=4, workers=workers, shuffle=True, seed=seed, epoch=epoch))


def _same(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> bool:
    return len(a) == len(b) and all(torch.equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)


def test_batches_depend_on_seed_epoch_index_only(colour_yaml: Path) -> None:
    split = load_yolo_dataset(colour_yaml, "train")
    cfg = AugmentConfig(mosaic=0.7)
    ref = _batches(TrainDataset(split, S, True, cfg, seed=5), 0, 5, 3)
    # A fresh dataset (a resumed run) and two worker processes give the very same batches.
    fresh = TrainDataset(split, S, True, cfg, seed=5)
    fresh.set_epoch(9)  # whatever it was set to before, make_loader sets the epoch
    assert _same(ref, _batches(fresh, 2, 5, 3))
    cached = TrainDataset(split, S, True, cfg, seed=5, cache=True)  # decoded once, shared with the workers
    assert _same(ref, _batches(cached, 2, 5, 3))
    assert not _same(ref, _batches(fresh, 0, 5, 4)), "another epoch must give other samples"
    assert not _same(ref, _batches(TrainDataset(split, S, True, cfg, seed=6), 0, 6, 3)), "another seed too"
    first = torch.cat([b["img"][:1] for b in ref])
    assert len(ref) == 2 and first.shape == (2, 3, S, S)


def test_set_mosaic_switches_it_off(colour_yaml: Path) -> None:
    ds = TrainDataset(load_yolo_dataset(colour_yaml, "train"), S, True, AugmentConfig(mosaic=1.0), seed=0)
    n_mosaic = [len(ds[i][1]) for i in range(len(ds))]
    ds.set_mosaic(False)
    n_single = [len(ds[i][1]) for i in range(len(ds))]
    assert max(n_single) <= 2 < max(n_mosaic)  # one picture holds 2 rectangles, a mosaic up to 8


def test_collate_layout() -> None:
    items = [
        (torch.zeros(3, 8, 8, dtype=torch.uint8), torch.tensor([[1, 0.5, 0.5, 0.2, 0.2], [0, 0.1, 0.1, 0.1, 0.1]])),
        (torch.ones(3, 8, 8, dtype=torch.uint8), torch.zeros((0, 5))),
        (torch.ones(3, 8, 8, dtype=torch.uint8), torch.tensor([[2, 0.3, 0.3, 0.2, 0.4]])),
    ]
    b = collate(items)
    assert b["img"].shape == (3, 3, 8, 8) and b["img"].dtype == torch.uint8
    assert b["batch_idx"].tolist() == [0.0, 0.0, 2.0]
    assert b["cls"].tolist() == [1.0, 0.0, 2.0]
    assert b["bboxes"].shape == (3, 4) and b["bboxes"][2].tolist() == pytest.approx([0.3, 0.3, 0.2, 0.4])


# ---- bad input --------------------------------------------------------------------------------------


def _small_dataset(root: Path, n: int = 4) -> Path:
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    for i in range(n):
        img = np.full((64, 80, 3), 90, np.uint8)
        img[10:30, 20:50] = (200, 40, 40)
        Image.fromarray(img).save(root / "images" / "train" / f"{i}.jpg", quality=95)
        (root / "labels" / "train" / f"{i}.txt").write_text("0 0.4375 0.3125 0.375 0.3125\n")
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nnames: [part, other]\n")
    return root / "data.yaml"


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    yaml = _small_dataset(tmp_path)
    yaml.write_text(f"path: {tmp_path}\ntrain: images/nowhere\nnames: [part]\n")
    with pytest.raises(ConfigError, match=r"images/nowhere.* does not exist"):
        load_yolo_dataset(yaml, "train", on_error="skip")


@pytest.mark.parametrize(
    ("label", "reason"),
    [("5 0.5 0.5 0.1 0.1", "dataset has 2 classes"), ("0 0.5 zero 0.1 0.1", "must be numbers"), ("0 0.5 0.5", "got 3")],
)
def test_bad_label_file_is_skipped_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, label: str, reason: str
) -> None:
    yaml = _small_dataset(tmp_path)
    bad = tmp_path / "labels" / "train" / "2.txt"
    bad.write_text(f"0 0.5 0.5 0.2 0.2\n{label}\n")
    with pytest.raises(ConfigError, match=reason):  # validation keeps refusing it
        load_yolo_dataset(yaml, "train")
    with caplog.at_level(logging.WARNING):
        split = load_yolo_dataset(yaml, "train", on_error="skip")
    ds = TrainDataset(split, 64, augment=True)
    assert len(ds) == 3 and [p.name for p, _ in ds.skipped] == ["2.jpg"]
    assert reason in ds.skipped[0][1] and f"{bad}:2" in ds.skipped[0][1]
    assert str(tmp_path / "images" / "train" / "2.jpg") in caplog.text


@pytest.mark.parametrize("cache", [False, True])
@pytest.mark.parametrize("damage", ["empty", "truncated", "not-an-image"])
def test_bad_picture_is_skipped_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str, cache: bool
) -> None:
    yaml = _small_dataset(tmp_path)
    bad = tmp_path / "images" / "train" / "1.jpg"
    data = bad.read_bytes()
    bad.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "not-an-image": b"hello"}[damage])
    with caplog.at_level(logging.WARNING):
        ds = TrainDataset(load_yolo_dataset(yaml, "train", on_error="skip"), 64, augment=True, cache=cache)
    assert len(ds) == 3 and [p for p, _ in ds.skipped] == [bad]
    assert str(bad) in caplog.text
    assert len(list(make_loader(ds, batch=2, workers=0, shuffle=True, seed=0, epoch=0))) == 2


def test_picture_broken_after_start_is_replaced_in_workers(tmp_path: Path) -> None:
    ds = TrainDataset(load_yolo_dataset(_small_dataset(tmp_path), "train"), 64, augment=True)
    (tmp_path / "images" / "train" / "0.jpg").write_bytes(b"")  # breaks after the up-front check
    batches = list(make_loader(ds, batch=2, workers=2, shuffle=False, seed=0, epoch=0))
    assert sum(len(b["img"]) for b in batches) == 4  # every sample came, the broken one replaced
    assert all(len(b["cls"]) >= 1 for b in batches)
