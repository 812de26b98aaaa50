"""Detect objects in images, folders, globs and video files (frame by frame).

Sources may be image files (jpg, png, bmp, webp, tiff...), video files (mp4, avi, mkv, mov, webm...),
folders (their images and videos, sorted) and globs ('frames/*.jpg', quoted). An unreadable or corrupt
input gets one error line naming it; the others are still processed; the exit code is 1 at the end.

--json writes JSON Lines, one line per image or video frame:
  {"source": "<path as given>", "frame": 0, "height": H, "width": W,
   "detections": [{"xyxy": [x1, y1, x2, y2], "conf": 0.91, "cls": 0, "name": "person"}]}
Boxes are in pixels of the original image. --save-dir writes annotated copies (videos as .mp4).

MODEL (a .pt, .safetensors or .pt2 file) may be left out: the bundled demo model is used (it knows the
demo scene's bolt, nut, gear and bracket; `yolostream demo` makes pictures and a video of them).
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from pathlib import Path
from typing import IO, Any

from yolostream.cli.common import MODEL_SUFFIXES, add_head_arguments, add_model_arguments, error_line, progress_bar

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".dng", ".mpo", ".pfm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".gif"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "sources",
        nargs="+",
        metavar="[MODEL] SOURCE",
        help="a model file (.pt/.safetensors/.pt2; default: the bundled demo model), then image/video files, "
        "folders or quoted globs",
    )
    add_model_arguments(p, positional=False)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--rect", dest="mode", action="store_const", const="rect", help="pad the short side only to a multiple of 32"
    )
    mode.add_argument(
        "--square", dest="mode", action="store_const", const="square", help="letterbox to IMGSZ x IMGSZ (default)"
    )
    p.set_defaults(mode="square")
    add_head_arguments(p)
    p.add_argument("--agnostic", action="store_true", help="class-agnostic NMS")
    p.add_argument("--classes", type=int, nargs="+", help="keep only these class ids")
    p.add_argument("--json", metavar="PATH", help="write JSON Lines to PATH ('-' for stdout)")
    p.add_argument("--save-dir", metavar="DIR", help="write annotated images (and .mp4 for videos) here")


def split_model(values: list[str]) -> tuple[str | None, list[str]]:
    """``[MODEL] SOURCE...`` -> (model file or None for the demo model, sources)."""
    if values and Path(values[0]).suffix.lower() in MODEL_SUFFIXES:
        if len(values) == 1:
            raise SystemExit(f"yolostream predict: error: {values[0]} is a model file; give at least one SOURCE")
        return values[0], values[1:]
    return None, values


def expand_sources(sources: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """``[(path as given or found, "image"|"video")]`` and error messages for sources that match nothing."""
    items, errors = [], []
    for src in sources:
        if any(ch in src for ch in "*?["):
            matches = sorted(glob.glob(src, recursive=True))
            found = [(m, kind) for m in matches if (kind := _kind(Path(m)))]
            if not found:
                errors.append(f"{src}: the pattern matches no image or video")
            items += found
        elif Path(src).is_dir():
            found = [(str(f), kind) for f in sorted(Path(src).iterdir()) if f.is_file() and (kind := _kind(f))]
            if not found:
                errors.append(f"{src}: the folder holds no image or video")
            items += found
        elif Path(src).is_file():
            items.append((src, _kind(Path(src)) or "image"))  # unknown suffix: try it as an image
        else:
            errors.append(f"{src}: no such file or folder")
    return items, errors


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "video" if suffix in VIDEO_SUFFIXES else None


def prediction_record(source: str, frame: int, det: Any) -> dict[str, Any]:
    """The ``--json`` record of one image or frame (also what ``POST /v1/detect`` answers)."""
    return {
        "source": source,
        "frame": frame,
        "height": det.image_shape[0],
        "width": det.image_shape[1],
        "detections": det.to_list(),
    }


def _record(source: str, frame: int, det: Any) -> str:
    return json.dumps(prediction_record(source, frame, det))


class Predictor:
    """Runs the detector over sources, writing JSON Lines and annotated copies."""

    def __init__(self, detector: Any, json_out: IO[str] | None, save_dir: Path | None) -> None:
        self.detector = detector
        self.json_out = json_out
        self.save_dir = save_dir
        self.errors = 0
        self.images = 0
        self.frames = 0
        self.boxes = 0

    def image(self, path: str) -> None:
        import numpy as np

        from yolostream.preprocess.inputs import read_image

        rgb = read_image(path)  # raises ImageReadError naming the file
        det = self.detector(rgb)[0]
        self._emit(path, 0, det)
        self.images += 1
        if self.save_dir is not None:
            from PIL import Image

            from yolostream.pipeline.annotate import draw_detections

            out = self.save_dir / f"{Path(path).stem}.jpg"
            Image.fromarray(draw_detections(np.ascontiguousarray(rgb.permute(1, 2, 0).numpy()), det)).save(
                out, quality=90
            )

    def video(self, path: str, on_frame: Any) -> None:
        from yolostream.pipeline.sources import VideoFileSource

        writer = None
        source = VideoFileSource("predict", path, realtime=False, queue_size=4).start()
        try:
            while True:
                frame = source.get(timeout=0.2)
                if frame is None:
                    if source.finished:
                        break
                    continue
                det = self.detector(frame.image)[0]
                self._emit(path, frame.index, det)
                self.frames += 1
                if self.save_dir is not None:
                    writer = writer or _VideoWriter(self.save_dir / f"{Path(path).stem}.mp4", source)
                    writer.write(frame.image, det)
                on_frame()
        finally:
            source.stop()
            if writer is not None:
                writer.close()
        stats = source.stats
        if stats.state == "failed" or stats.decode_errors:
            why = stats.last_error or f"{stats.decode_errors} frames could not be decoded"
            raise _VideoError(f"{path}: {why} ({stats.frames_delivered} frames processed)")

    def _emit(self, source: str, frame: int, det: Any) -> None:
        self.boxes += len(det)
        if self.json_out is not None:
            self.json_out.write(_record(source, frame, det) + "\n")


class _VideoError(Exception):
    pass


class _VideoWriter:
    """Annotated H.264 MP4 at the source's frame rate."""

    def __init__(self, path: Path, source: Any) -> None:
        import av

        self.container = av.open(str(path), mode="w")
        rate = getattr(source, "frame_rate", None) or 25
        self.stream = self.container.add_stream("libx264", rate=round(float(rate)))
        self.stream.pix_fmt = "yuv420p"
        self.started = False

    def write(self, image: Any, det: Any) -> None:
        import av

        from yolostream.pipeline.annotate import draw_detections

        if not self.started:
            # libx264 needs even sizes.
            self.stream.height, self.stream.width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
            self.started = True
        frame = av.VideoFrame.from_ndarray(draw_detections(image, det)[: self.stream.height, : self.stream.width])
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def _video_frames(path: str) -> int | None:
    try:
        import av

        with av.open(path) as c:
            return c.streams.video[0].frames or None
    except Exception:
        return None


def run(args: argparse.Namespace) -> int:
    import logging

    from yolostream.api import load
    from yolostream.errors import YolostreamError

    logging.getLogger("yolostream.sources").setLevel(logging.WARNING)  # per-video state changes are noise here
    model, sources = split_model(args.sources)
    items, errors = expand_sources(sources)
    for message in errors:
        error_line(message)
    detector = load(
        model,
        device=args.device,
        imgsz=args.imgsz,
        conf=args.conf,
        iou=args.iou,
        max_det=args.max_det,
        mode=args.mode,
        nms=args.nms,
        agnostic=args.agnostic,
        classes=args.classes,
    )
    save_dir = Path(args.save_dir) if args.save_dir else None
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
    json_out = sys.stdout if args.json == "-" else open(args.json, "w") if args.json else None  # noqa: SIM115
    predictor = Predictor(detector, json_out, save_dir)
    start = time.perf_counter()
    total = sum(1 if kind == "image" else (_video_frames(p) or 1) for p, kind in items)
    try:
        with progress_bar(enabled=len(items) > 1 or total > 1) as progress:
            task = progress.add_task("predict", total=total, status="")
            for path, kind in items:
                progress.update(task, status=Path(path).name)
                try:
                    if kind == "image":
                        predictor.image(path)
                        progress.advance(task)
                    else:
                        predictor.video(path, lambda: progress.advance(task))
                except (YolostreamError, _VideoError, OSError) as e:
                    errors.append(str(e))
                    error_line(str(e))  # through the progress bar's stderr redirect, on the shared console
    finally:
        if json_out is not None and json_out is not sys.stdout:
            json_out.close()
    elapsed = time.perf_counter() - start
    summary = (
        f"{predictor.images} images, {predictor.frames} video frames, {predictor.boxes} detections "
        f"in {elapsed:.1f}s ({detector!r})"
    )
    if save_dir is not None:
        summary += f"; annotated copies in {save_dir}"
    print(summary, file=sys.stderr)
    if errors:
        print(f"{len(errors)} input(s) failed", file=sys.stderr)
    return 1 if errors else 0
