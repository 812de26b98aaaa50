"""Read a YOLO-format detection dataset (``data.yaml`` + ``images/`` + ``labels/``) for validation.

Layout: ``data.yaml`` holds ``path`` (dataset root), a split key such as ``val`` (a folder of
images, a ``.txt`` list of image paths, a single image, or a list of those) and ``names`` (a list,
or a dict ``id: name``). Each image ``.../images/.../x.jpg`` has its labels in
``.../labels/.../x.txt``, one object per line: ``cls cx cy w h``, normalised to [0, 1]. A line with
more values is a polygon ``cls x1 y1 x2 y2 ...`` and is reduced to its bounding box. Images are not
opened here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from yolostream.errors import ConfigError

log = logging.getLogger("yolostream.val")

IMAGE_SUFFIXES = frozenset({".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic"})


@dataclass(frozen=True)
class YoloDataset:
    """One split of a YOLO dataset.

    Attributes:
        root: dataset root folder (``path`` of the yaml, resolved).
        names: class id -> name.
        items: ``(image_path, labels)`` per image, sorted by path; labels are float32 [M, 5],
            rows ``cls cx cy w h`` normalised to the image size ([0, 5] when the image has no objects).
        skipped: ``(image_path, reason)`` of images left out because their label file is malformed
            (only with ``load_yolo_dataset(..., on_error="skip")``).
    """

    root: Path
    names: dict[int, str]
    items: list[tuple[Path, np.ndarray]]
    skipped: tuple[tuple[Path, str], ...] = ()

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[tuple[Path, np.ndarray]]:
        return iter(self.items)

    def __getitem__(self, index: int) -> tuple[Path, np.ndarray]:
        return self.items[index]

    @property
    def n_boxes(self) -> int:
        """Number of labelled objects over every image."""
        return sum(len(labels) for _, labels in self.items)


def label_path(image_path: Path) -> Path:
    """``.../images/.../x.jpg`` -> ``.../labels/.../x.txt`` (the last ``images`` folder is swapped)."""
    parts = list(image_path.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def labels_to_xyxy(
    labels: np.ndarray, size_hw: tuple[int, int], pad_xy: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """Ground-truth boxes in pixels: labels [M, 5] -> xyxy float32 [M, 4].

    ``size_hw`` is the size the picture has in the target frame and ``pad_xy`` its (left, top)
    offset there. Ultralytics' validator matches in the network-input frame, so pass the
    letterboxed picture's size and padding (the original size and no padding give original pixels).
    """
    h, w = size_hw
    cx, cy, bw, bh = (labels[:, i].astype(np.float32) for i in range(1, 5))
    x1, y1, x2, y2 = cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2
    left, top = pad_xy
    return np.stack((x1 * w + left, y1 * h + top, x2 * w + left, y2 * h + top), axis=-1).astype(np.float32)


def _parse_names(raw: Any, source: Path) -> dict[int, str]:
    if isinstance(raw, Mapping):
        try:
            return {int(k): str(v) for k, v in raw.items()}
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{source}: 'names' keys must be integer class ids, got {list(raw)}") from e
    if isinstance(raw, list | tuple):
        return {i: str(v) for i, v in enumerate(raw)}
    raise ConfigError(f"{source}: 'names' must be a list or a mapping of class id to name, got {raw!r}")


def read_labels(path: Path, n_classes: int | None = None) -> np.ndarray:
    """Labels of one image as float32 [M, 5] (``cls cx cy w h``); a missing file means no objects.

    Raises:
        ConfigError: naming the file and line of a malformed row (not numbers, wrong count of
            values, a class that is not a whole number in range, coordinates outside [0, 1]).
    """
    if not path.is_file():
        return np.zeros((0, 5), dtype=np.float32)
    rows: list[list[float]] = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{lineno}"
        try:
            values = [float(v) for v in fields]
        except ValueError as e:
            raise ConfigError(f"{where}: label values must be numbers, got {line.strip()!r}") from e
        cls, coords = values[0], np.asarray(values[1:], dtype=np.float64)
        if len(coords) == 4:
            box = coords
        elif len(coords) >= 6 and len(coords) % 2 == 0:  # polygon: its bounding box
            xs, ys = coords[0::2], coords[1::2]
            x1, y1, x2, y2 = xs.min(), ys.min(), xs.max(), ys.max()
            box = np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
        else:
            raise ConfigError(
                f"{where}: expected 'cls cx cy w h' (or a polygon 'cls x1 y1 x2 y2 x3 y3 ...'), "
                f"got {len(fields)} values"
            )
        if not cls.is_integer() or cls < 0 or (n_classes is not None and cls >= n_classes):
            limit = f" (dataset has {n_classes} classes)" if n_classes is not None else ""
            raise ConfigError(f"{where}: class must be a whole number >= 0{limit}, got {fields[0]!r}")
        if not np.all((coords >= 0) & (coords <= 1)):
            raise ConfigError(f"{where}: coordinates must be normalised to [0, 1], got {line.strip()!r}")
        rows.append([cls, *box.tolist()])
    labels = np.asarray(rows, dtype=np.float32).reshape(-1, 5)
    # A row repeated verbatim is one object labelled twice; Ultralytics drops the copies too.
    _, first = np.unique(labels, axis=0, return_index=True)
    return labels[np.sort(first)] if len(first) < len(labels) else labels


def _images_of(entry: Path, key: str, source: Path) -> list[Path]:
    if not entry.exists():
        raise ConfigError(f"{source}: '{key}' entry {str(entry)!r} does not exist")
    if entry.is_dir():
        return [p for p in entry.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if entry.is_file() and entry.suffix.lower() == ".txt":
        listed = [line.strip() for line in entry.read_text().splitlines() if line.strip()]
        return [p if p.is_absolute() else entry.parent / p for p in map(Path, listed)]
    if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
        return [entry]
    raise ConfigError(f"{source}: '{key}' entry {str(entry)!r} is not an image folder, list file or image")


def load_yolo_dataset(
    data_yaml: str | Path, split: str = "val", on_error: Literal["raise", "skip"] = "raise"
) -> YoloDataset:
    """Read the ``split`` images of the dataset described by ``data_yaml`` and their labels.

    A relative ``path`` is taken from the yaml's folder, and relative split entries from ``path``
    (the yaml's folder when ``path`` is absent). Lines of a ``.txt`` image list resolve against the
    list's own folder. ``on_error="skip"`` (training) leaves out an image whose label file is malformed,
    with a warning naming the file and line, and lists it in ``YoloDataset.skipped``.

    Raises:
        ConfigError: unreadable yaml, a missing ``split`` or ``names`` key, a split entry that does
            not exist, no images found, or (``on_error="raise"``) a malformed label line (naming file
            and line).
    """
    source = Path(data_yaml)
    try:
        data = yaml.safe_load(source.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{source}: cannot read dataset yaml: {e}") from e
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: dataset yaml must be a mapping, got {type(data).__name__}")
    if "names" not in data:
        raise ConfigError(f"{source}: missing key 'names' (class names)")
    names = _parse_names(data["names"], source)
    if data.get(split) is None:
        raise ConfigError(f"{source}: missing key {split!r} (images of that split)")

    root = Path(str(data.get("path") or "."))
    if not root.is_absolute():
        root = source.parent / root
    root = root.resolve()
    entries = data[split] if isinstance(data[split], list | tuple) else [data[split]]
    images: list[Path] = []
    for raw in entries:
        entry = Path(str(raw))
        images += _images_of(entry if entry.is_absolute() else root / entry, split, source)
    if not images:
        raise ConfigError(f"{source}: no images found for {split!r} in {entries}")

    n_classes = max(names) + 1 if names else None
    if on_error == "raise":
        items = [(p, read_labels(label_path(p), n_classes)) for p in sorted(images, key=str)]
        return YoloDataset(root=root, names=names, items=items)
    items, skipped = [], []
    for p in sorted(images, key=str):
        try:
            items.append((p, read_labels(label_path(p), n_classes)))
        except ConfigError as e:
            log.warning("skipping %s: %s", p, e)
            skipped.append((p, str(e)))
    return YoloDataset(root=root, names=names, items=items, skipped=tuple(skipped))
