"""Per-epoch results: ``results.csv`` (one row per epoch, rewritten whole so a resumed run stays consistent)
and ``results.png`` (losses and mAP per epoch)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

log = logging.getLogger("yolostream.train")

COLUMNS = ["epoch", "train/box", "train/cls", "train/dfl", "val/map50", "val/map50_95", "lr", "images_per_s"]


def read_rows(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def write_rows(path: Path, rows: list[dict[str, float]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{row[k]:.6g}" if k in row else "") for k in COLUMNS})
    tmp.replace(path)


def plot_rows(path: Path, rows: list[dict[str, float]], third_loss: str = "dfl") -> bool:
    """Draw the losses and mAP per epoch to ``path``; False (and one log line) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed: no results.png (pip install 'yolostream[bench]')")
        return False
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    epochs = [r["epoch"] for r in rows]
    for ax, key, title in zip(
        axes[:3], ["train/box", "train/cls", "train/dfl"], ["box", "cls", third_loss], strict=True
    ):
        ax.plot(epochs, [r.get(key, float("nan")) for r in rows], marker=".")
        ax.set_title(f"train {title} loss")
        ax.set_xlabel("epoch")
    val = [r for r in rows if "val/map50_95" in r]
    axes[3].plot([r["epoch"] for r in val], [r["val/map50"] for r in val], marker="o", label="mAP50")
    axes[3].plot([r["epoch"] for r in val], [r["val/map50_95"] for r in val], marker="o", label="mAP50-95")
    axes[3].set_ylim(0, 1)
    axes[3].set_title("validation")
    axes[3].set_xlabel("epoch")
    axes[3].legend(loc="lower right")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
