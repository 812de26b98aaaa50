"""Training batches from a YOLO dataset: `TrainDataset` (on-the-fly augmentation), `collate`, `make_loader`.

Determinism: every random choice of a sample (mosaic partners, affine, HSV, flips) comes from
``np.random.default_rng([seed, epoch, index])`` and the order of an epoch from
``np.random.default_rng([seed, epoch])``. A batch is therefore a function of ``(seed, epoch, position)``
alone: the same whatever the number of loader workers, and the same in a run resumed at epoch ``k`` as in
one that never stopped.

Bad input never stops a run: an image whose label file is malformed (see `load_yolo_dataset`'s
``on_error="skip"``) or that does not decode is left out with a warning naming it, and listed in
`TrainDataset.skipped`. A picture that breaks after the dataset was built (changed on disk) is replaced in
its sample by the next readable one, with a warning from the worker.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from yolostream.errors import ImageReadError
from yolostream.preprocess.inputs import read_image
from yolostream.preprocess.val_letterbox import apply_val_letterbox, plan_val_letterbox
from yolostream.train.augment import (
    PAD_VALUE,
    AugmentConfig,
    flip_boxes,
    hsv_jitter,
    is_axis_aligned,
    keep_boxes,
    paste_scaled,
    random_affine,
    transform_boxes,
    warp,
)
from yolostream.train.images import load_resized, probe_image
from yolostream.val.dataset import YoloDataset, labels_to_xyxy

__all__ = ["AugmentConfig", "EpochOrder", "TrainDataset", "collate", "make_loader"]

log = logging.getLogger("yolostream.train")
_warned: set[Path] = set()  # per process: a picture that fails in a worker is reported once there


def _to_labels(cls: np.ndarray, xyxy: np.ndarray, size: int) -> torch.Tensor:
    """Class ids [N] and pixel boxes [N, 4] -> float32 [N, 5] ``cls cx cy w h`` normalised to ``size``."""
    xyxy = xyxy.astype(np.float64) / size
    cxcy = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    wh = xyxy[:, 2:] - xyxy[:, :2]
    return torch.from_numpy(np.concatenate([cls[:, None], cxcy, wh], axis=1).astype(np.float32))


class TrainDataset(Dataset):
    """Samples ``(img, labels)`` of one dataset split at training size ``imgsz`` (square).

    ``augment=False``: the picture letterboxed exactly as validation does (long side ``imgsz``, centred,
    pad 114). ``augment=True``: mosaic (probability ``aug.mosaic`` while enabled), random affine, HSV
    jitter, flips (see `yolostream.train.augment`), with the labels carried through every step.

    Args:
        split: from `load_yolo_dataset` (``on_error="skip"`` to skip bad label files instead of raising).
        imgsz: output side in pixels.
        augment: apply the random augmentations.
        aug: their strengths.
        seed: with the epoch and the index, the only source of randomness.
        check_images: decode every picture once here (JPEGs at 1/8 scale) so corrupt ones are skipped
            and reported up front rather than found by a worker.
        cache: keep every picture decoded at its load-time size in memory (``3 * imgsz**2`` bytes at
            most each), filled here; loader workers share it (fork, copy-on-write). Mosaic samples need
            four pictures, so decoding is most of their cost without it.

    Attributes:
        items: ``(image path, labels float32 [M, 5])`` of the usable pictures.
        skipped: ``(path, reason)`` of every picture left out.
        names: class id -> name.
    """

    def __init__(
        self,
        split: YoloDataset,
        imgsz: int,
        augment: bool,
        aug: AugmentConfig | None = None,
        seed: int = 0,
        check_images: bool = True,
        cache: bool = False,
    ) -> None:
        self.imgsz, self.augment, self.aug, self.seed = int(imgsz), bool(augment), aug or AugmentConfig(), int(seed)
        self.names = dict(split.names)
        self.skipped: list[tuple[Path, str]] = list(split.skipped)
        self.items: list[tuple[Path, np.ndarray]] = []
        self._cache: list[tuple[np.ndarray, Any]] | None = [] if cache else None
        for path, labels in split.items:
            why = None
            if self._cache is not None:
                try:
                    img, plan = load_resized(path, self.imgsz)
                    self._cache.append((np.asarray(img), plan))
                except ImageReadError as e:
                    why = str(e)
            elif check_images:
                why = probe_image(path)
            if why is not None:
                log.warning("skipping %s: %s", path, why)
                self.skipped.append((path, why))
            else:
                self.items.append((path, labels))
        self.epoch = 0
        self.mosaic = True

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Samples drawn from now on are those of ``epoch`` (set it before the epoch's loader starts)."""
        self.epoch = int(epoch)

    def set_mosaic(self, enabled: bool) -> None:
        """Allow mosaic samples (switched off for the last epochs: ``close_mosaic``)."""
        self.mosaic = bool(enabled)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 [3, S, S] RGB and float32 [M, 5] rows ``cls cx cy w h`` normalised to the S x S picture."""
        if not self.augment:
            return self._letterboxed(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        s, aug = self.imgsz, self.aug
        use_mosaic = rng.random() < aug.mosaic and self.mosaic  # always drawn: later draws keep their place
        if use_mosaic:
            pieces, cls, boxes, whole = self._mosaic(index, rng)
            matrix, _ = random_affine(rng, aug, (float(s), float(s)), s)
            out = self._draw_mosaic(pieces, matrix)
        else:
            img, plan, labels = self._load(index)
            cls, boxes = labels[:, 0], labels_to_xyxy(labels, plan.loaded_hw)
            whole = boxes
            left, top = plan.pad_xy
            matrix, _ = random_affine(rng, aug, (s / 2 - left, s / 2 - top), s)
            out = warp(img, matrix, s)
        boxes, keep = keep_boxes(transform_boxes(boxes, matrix), s, aug, transform_boxes(whole, matrix))
        cls, boxes = cls[keep], boxes[keep]
        out = hsv_jitter(out, rng, aug)
        lr, ud = rng.random(2) < (aug.fliplr, aug.flipud)
        arr = np.asarray(out)
        if lr:
            arr = arr[:, ::-1]
        if ud:
            arr = arr[::-1]
        boxes = flip_boxes(boxes, s, bool(lr), bool(ud))
        img_t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
        return img_t, _to_labels(cls, boxes, s)

    # ---- loading ----------------------------------------------------------------------------------

    def _readable(self, index: int, load: Any) -> tuple[int, Any]:
        """``load(index)``, or of the next index whose picture decodes (warning once per picture)."""
        n = len(self.items)
        for k in range(n):
            j = (index + k) % n
            try:
                return j, load(self.items[j][0])
            except ImageReadError as e:
                if self.items[j][0] not in _warned:
                    _warned.add(self.items[j][0])
                    log.warning("skipping %s in training samples: %s", self.items[j][0], e)
        raise ImageReadError(f"no picture of the training split can be decoded (tried {n})")

    def _load(self, index: int) -> tuple[Image.Image, Any, np.ndarray]:
        if self._cache is not None:
            arr, plan = self._cache[index]
            return Image.fromarray(arr), plan, self.items[index][1]
        j, (img, plan) = self._readable(index, lambda p: load_resized(p, self.imgsz))
        return img, plan, self.items[j][1]

    def _letterboxed(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Validation's own preprocessing (OpenCV-exact resize, centred, pad 114) and labels in its frame."""
        j, img = self._readable(index, read_image)
        plan = plan_val_letterbox((int(img.shape[1]), int(img.shape[2])), self.imgsz, rect=False)
        labels = self.items[j][1]
        xyxy = labels_to_xyxy(labels, plan.loaded_hw, plan.pad_xy)
        return apply_val_letterbox(img, plan, PAD_VALUE), _to_labels(labels[:, 0], xyxy, self.imgsz)

    def _mosaic(self, index: int, rng: np.random.Generator) -> tuple[list[Any], np.ndarray, np.ndarray, np.ndarray]:
        """Four pictures around a random centre of a ``2S x 2S`` canvas (pad 114 elsewhere).

        This picture goes top-left of the centre, three others (distinct, drawn from ``rng``) top-right,
        bottom-left and bottom-right, each touching the centre with a corner and cut by the canvas edge.

        Returns:
            ``(picture, (x0, y0) on the canvas, the rectangle of it inside the canvas)`` per piece, class
            ids [N], boxes [N, 4] cut to what is visible, boxes [N, 4] whole; canvas pixels.
        """
        s, n = self.imgsz, len(self.items)
        others = rng.choice(n - 1, size=3, replace=n - 1 < 3) if n > 1 else np.zeros(3, dtype=np.int64)
        picks = [index] + ([int(j) + int(j >= index) for j in others] if n > 1 else [index] * 3)
        xc, yc = (int(v) for v in rng.uniform(s / 2, 3 * s / 2, size=2))
        pieces, cls_all, vis_all, whole_all = [], [], [], []
        for quadrant, j in enumerate(picks):
            img, plan, labels = self._load(j)
            h, w = plan.loaded_hw
            x0 = xc - w if quadrant in (0, 2) else xc
            y0 = yc - h if quadrant in (0, 1) else yc
            pieces.append((img, (x0, y0), (max(0, -x0), max(0, -y0), min(w, 2 * s - x0), min(h, 2 * s - y0))))
            whole = labels_to_xyxy(labels, (h, w), (x0, y0)).astype(np.float64)
            lo = np.array([max(x0, 0), max(y0, 0)] * 2, dtype=np.float64)
            hi = np.array([min(x0 + w, 2 * s), min(y0 + h, 2 * s)] * 2, dtype=np.float64)
            cls_all.append(labels[:, 0])
            vis_all.append(np.clip(whole, lo, hi))
            whole_all.append(whole)
        return pieces, np.concatenate(cls_all), np.concatenate(vis_all), np.concatenate(whole_all)

    def _draw_mosaic(self, pieces: list[Any], matrix: np.ndarray) -> Image.Image:
        """The warped mosaic: each piece scaled straight into the output when the map is scale + shift
        (no ``2S x 2S`` canvas, no resampling of pad), else via the canvas and one affine warp."""
        s = self.imgsz
        if is_axis_aligned(matrix):
            out = Image.new("RGB", (s, s), (PAD_VALUE,) * 3)
            for img, (x0, y0), src in pieces:
                shift = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
                paste_scaled(out, img, matrix @ shift, src)
            return out
        canvas = Image.new("RGB", (2 * s, 2 * s), (PAD_VALUE,) * 3)
        for img, xy, _ in pieces:
            canvas.paste(img, xy)  # PIL cuts what falls outside the canvas
        return warp(canvas, matrix, s)


def collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Samples -> ``{"img": uint8 [B, 3, S, S], "batch_idx": float32 [N], "cls": float32 [N],
    "bboxes": float32 [N, 4]}``; boxes ``cx cy w h`` normalised, ``batch_idx`` the picture each belongs to."""
    imgs = torch.stack([img for img, _ in items])
    labels = torch.cat([lab for _, lab in items]) if items else torch.zeros((0, 5))
    counts = torch.tensor([len(lab) for _, lab in items], dtype=torch.long)
    batch_idx = torch.repeat_interleave(torch.arange(len(items), dtype=torch.float32), counts)
    return {
        "img": imgs,
        "batch_idx": batch_idx,
        "cls": labels[:, 0].contiguous(),
        "bboxes": labels[:, 1:5].contiguous(),
    }


class EpochOrder(Sampler[int]):
    """The indices of one epoch: a permutation drawn from ``default_rng([seed, epoch])``, or in order."""

    def __init__(self, n: int, shuffle: bool, seed: int, epoch: int) -> None:
        self.n, self.shuffle, self.seed, self.epoch = n, shuffle, seed, epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Any:
        if not self.shuffle:
            return iter(range(self.n))
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist())


def make_loader(
    ds: TrainDataset,
    batch: int,
    workers: int,
    shuffle: bool,
    seed: int,
    epoch: int,
    *,
    pin_memory: bool = False,
) -> DataLoader:
    """The loader of one epoch (make a new one per epoch): sets ``ds``'s epoch, fixes the order.

    Workers are started when the loader is iterated and copy ``ds`` as it is then (epoch, mosaic
    switch), so they are not kept between epochs. The last batch may be smaller.
    """
    ds.set_epoch(epoch)
    return DataLoader(
        ds,
        batch_size=batch,
        sampler=EpochOrder(len(ds), shuffle, seed, epoch),
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        drop_last=False,
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
    )
