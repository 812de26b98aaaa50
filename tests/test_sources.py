"""Frame sources: files (offline and real time), truncated/corrupt media, the newest-frames buffer, RTSP with a
real server that is killed, restarted and stalled, image folders, and `open_source` dispatch and errors.

Waits use generous deadlines only to fail instead of hanging; nothing asserts how long anything took.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from media import Scene, corrupted_copy, ground_truth, render, truncated_copy, write_mp4
from PIL import Image
from rtsp_server import rtsp_server  # noqa: F401  (pytest fixture)

from yolostream.errors import ConfigError
from yolostream.pipeline.frames import Frame
from yolostream.pipeline.sources import (
    CameraSource,
    ImageFolderSource,
    Source,
    StreamSource,
    VideoFileSource,
    open_source,
)

pytest.importorskip("av")

SCENE = Scene(width=640, height=360, fps=25, n_frames=50)  # 2 s; the default shapes
COLOUR = {shape.kind: shape.color for shape in SCENE.shapes}


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("media")
    write_mp4(d / "clip.mp4", SCENE)
    truncated_copy(d / "clip.mp4", d / "truncated.mp4", keep=0.5)
    corrupted_copy(d / "clip.mp4", d / "corrupt.mp4", frames=(10, 15))  # P-frames; keyframes at 0 and 25
    # Index (moov) at the end, as a recorder that crashed leaves it: cut, the file cannot be opened at all.
    write_mp4(d / "tail_index.mp4", SCENE, faststart=False)
    truncated_copy(d / "tail_index.mp4", d / "no_index.mp4", keep=0.5)
    (d / "garbage.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 5000, np.uint8).tobytes())
    return d


def wait_for(what: Callable[[], bool], timeout_s: float = 30.0, message: str = "") -> None:
    """Poll ``what`` until true; the deadline only turns a hang into a failure."""
    deadline = time.monotonic() + timeout_s
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message or what}")
        time.sleep(0.02)


def drain(source: Source, timeout_s: float = 30.0) -> list[Frame]:
    """Every frame until the source finishes."""
    out: list[Frame] = []
    deadline = time.monotonic() + timeout_s
    while (frame := source.get(timeout=1.0)) is not None or not source.finished:
        if frame is not None:
            out.append(frame)
        assert time.monotonic() < deadline, "source never finished"
    return out


def assert_accounting(source: Source, buffered: int = 0) -> None:
    s = source.stats
    assert s.frames_decoded == s.frames_skipped + s.frames_dropped + s.frames_delivered + buffered, s


def colour_at(image: np.ndarray, xyxy: tuple[float, float, float, float]) -> np.ndarray:
    """Mean colour of a 5x5 patch at the centre of a box (inside every shape, away from its edges)."""
    cx, cy = int((xyxy[0] + xyxy[2]) / 2), int((xyxy[1] + xyxy[3]) / 2)
    return image[cy - 2 : cy + 3, cx - 2 : cx + 3].reshape(-1, 3).mean(0)


# ---- video files ---------------------------------------------------------------------------------


def test_file_offline_delivers_every_frame_in_order(media_dir: Path) -> None:
    src = VideoFileSource("cam", media_dir / "clip.mp4", realtime=False).start()
    frames = drain(src)
    assert [f.index for f in frames] == list(range(50))
    assert all(b.timestamp >= a.timestamp for a, b in itertools.pairwise(frames))
    assert {f.stream for f in frames} == {"cam"}
    img = frames[25].image
    assert img.shape == (360, 640, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    # RGB order and the right picture: shape centres keep their flat colour. Tolerance 12 levels: H.264 at
    # crf 23 plus yuv420p round trip on a flat interior (measured error is a few levels); a BGR swap
    # would be off by >= 100 for the disc (40,170,160) and the triangle (230,150,50).
    for gt in ground_truth(SCENE, 25):  # all three shapes are in view at 1 s
        np.testing.assert_allclose(colour_at(img, gt.xyxy), COLOUR[gt.name], atol=12)
    s = src.stats
    assert (s.state, s.decode_errors, s.frames_dropped, s.reconnects) == ("finished", 0, 0, 0)
    assert src.finished and src.get(timeout=0.1) is None
    assert_accounting(src)


# Media time of frame i is i / 25 s. The fps cap admits on a 1/fps schedule starting at the first frame.
@pytest.mark.parametrize(
    ("stride", "fps", "expected"),
    [
        (1, None, list(range(50))),  # nothing left out
        (3, None, list(range(0, 50, 3))),  # 0, 3, ..., 48
        # cap 10: the m-th slot at m*0.1 s takes the first frame at or after it: index ceil(2.5 m)
        (1, 10, [math.ceil(2.5 * m) for m in range(20)]),
        # stride 2 then cap 10: even frames at 0.08 s spacing; slots at 0.1 s miss 2, 12, 22, ... (0.08 <
        # 0.1 but 0.16 >= 0.1; and 0.48 < 0.5 again every 10 frames)
        (2, 10, [i for i in range(0, 50, 2) if i % 10 != 2]),
        (1, 50, list(range(50))),  # a cap above the file's 25 fps changes nothing
        # stride 4 (frame 4k at 0.16 k s) then cap 5: slot m*0.2 s takes k = ceil(1.25 m), a full 5 fps
        (4, 5, [4 * math.ceil(1.25 * m) for m in range(10)]),
    ],
)
def test_file_stride_and_fps_cap(media_dir: Path, stride: int, fps: float | None, expected: list[int]) -> None:
    src = VideoFileSource("cam", media_dir / "clip.mp4", realtime=False, stride=stride, fps=fps).start()
    assert [f.index for f in drain(src)] == expected
    assert src.stats.frames_skipped == 50 - len(expected)
    assert_accounting(src)


def test_file_loop_continues_index_and_media_time(media_dir: Path) -> None:
    src = VideoFileSource("cam", media_dir / "clip.mp4", realtime=False, loop=True, fps=10).start()
    try:
        frames = [src.get(timeout=10.0) for _ in range(45)]
    finally:
        src.stop()
    assert all(f is not None for f in frames)
    # Media time goes on across loops (frame 50 is at 2.0 s), so the fps-10 schedule from the one-pass case
    # continues unchanged into the second and third passes.
    assert [f.index for f in frames] == [math.ceil(2.5 * m) for m in range(45)]
    first, again = frames[0], frames[20]  # index 0 and index 50: the same picture, one loop apart
    assert again.index == 50 and np.array_equal(first.image, again.image)
    assert src.stats.state == "finished"


def test_realtime_file_ends_cleanly(media_dir: Path) -> None:
    src = VideoFileSource("cam", media_dir / "clip.mp4", realtime=True).start()
    frames = drain(src)
    # A real-time source may drop frames if this consumer is descheduled; everything is accounted for.
    s = src.stats
    assert s.state == "finished" and s.frames_decoded == 50 and s.frames_delivered == len(frames)
    assert [f.index for f in frames] == sorted({f.index for f in frames})
    assert_accounting(src)


def test_slow_consumer_gets_newest_frames_and_drops_are_counted(media_dir: Path) -> None:
    src = VideoFileSource("cam", media_dir / "clip.mp4", realtime=True, queue_size=3).start()
    wait_for(lambda: src.stats.state == "finished", message="file played to its end")  # nobody reads
    # The buffer kept the 3 newest of 50; the 47 older ones were dropped as they were pushed out.
    assert src.stats.frames_dropped == 47
    newest = src.latest(max_items=2)
    assert [f.index for f in newest] == [48, 49]
    assert src.stats.frames_dropped == 48  # latest() also discards the older frame it skipped (47)
    assert src.finished and src.latest() == []
    assert_accounting(src)


def test_lossless_latest_returns_oldest_first_without_dropping(media_dir: Path) -> None:
    src = VideoFileSource("cam", media_dir / "clip.mp4", realtime=False, queue_size=4).start()
    wait_for(lambda: src.stats.frames_decoded >= 4, message="buffer filled")
    got = src.latest(max_items=3)
    assert [f.index for f in got] == [0, 1, 2]
    rest = drain(src)
    assert [f.index for f in rest] == list(range(3, 50)) and src.stats.frames_dropped == 0


def test_truncated_file_delivers_what_decodes_then_finishes(media_dir: Path) -> None:
    src = VideoFileSource("cam", media_dir / "truncated.mp4", realtime=False).start()
    frames = drain(src)
    s = src.stats
    # Half the bytes: some frames, not all; the partial last packet is a counted decode error.
    assert 0 < len(frames) < 50 and s.decode_errors >= 1 and s.state == "finished"
    assert [f.index for f in frames] == list(range(len(frames)))
    for gt in ground_truth(SCENE, 0):  # frames before the cut are intact (tolerance as above)
        np.testing.assert_allclose(colour_at(frames[0].image, gt.xyxy), COLOUR[gt.name], atol=12)


def test_corrupted_file_counts_errors_and_goes_on(media_dir: Path) -> None:
    src = VideoFileSource("cam", media_dir / "corrupt.mp4", realtime=False).start()
    frames = drain(src)
    s = src.stats
    assert s.decode_errors >= 1 and s.state == "finished" and s.last_error is not None
    idx = [f.index for f in frames]  # frames the decoder flags corrupt are left out: gaps, never repeats
    assert idx == sorted(set(idx)) and len(frames) == s.frames_decoded - s.frames_skipped
    # Decoding recovers at the keyframe (frame 25): the last frame shows the shapes where the last scene
    # frame has them (a picture frozen at the damage would have the box ~190 px away). Tolerance as above.
    for gt in ground_truth(SCENE, 49):
        np.testing.assert_allclose(colour_at(frames[-1].image, gt.xyxy), COLOUR[gt.name], atol=12)
    assert_accounting(src)


@pytest.mark.parametrize(
    ("file", "error"),
    [
        ("no_index.mp4", "cannot open"),  # recording cut before its index was written
        ("garbage.mp4", "cannot open"),  # not a video at all
    ],
)
def test_unreadable_file_fails_without_crashing(media_dir: Path, file: str, error: str) -> None:
    src = VideoFileSource("cam", media_dir / file, realtime=False).start()
    assert drain(src) == []
    s = src.stats
    assert s.state == "failed" and error in (s.last_error or "") and file in (s.last_error or "")


# ---- RTSP ----------------------------------------------------------------------------------------


def test_rtsp_stream_reads_frames(rtsp_server) -> None:  # noqa: F811
    src = StreamSource("rtsp", rtsp_server.url, timeout_s=2.0).start()
    try:
        frames = [src.get(timeout=15.0) for _ in range(10)]
    finally:
        src.stop()
    assert all(f is not None for f in frames)
    assert [f.image.shape for f in frames] == [(180, 320, 3)] * 10
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))
    # It is our clip: the picture is within a few levels (mean abs difference; compression noise on a
    # noisy background is about 3-5 levels, any other picture > 20) of one of its 50 frames.
    scene = Scene(width=320, height=180, fps=25, n_frames=50)
    diffs = [np.abs(frames[-1].image.astype(int) - render(scene, i)).mean() for i in range(50)]
    assert min(diffs) < 8
    assert src.stats.reconnects == 0 and src.stats.decode_errors == 0


def test_rtsp_reconnects_after_server_restart_while_file_keeps_going(rtsp_server, media_dir: Path) -> None:  # noqa: F811
    stream = StreamSource("rtsp", rtsp_server.url, timeout_s=2.0, backoff=(0.1, 0.4)).start()
    video = VideoFileSource("file", media_dir / "clip.mp4", loop=True, realtime=True).start()
    file_frames: list[Frame] = []

    def pump(until: Callable[[], bool], message: str) -> None:
        """Keep reading the file source (as the pipeline would) until ``until``."""

        def step() -> bool:
            file_frames.extend(video.latest())
            stream.latest()
            return until()

        wait_for(step, message=message)

    try:
        pump(lambda: stream.stats.state == "running", "stream up")
        rtsp_server.kill()
        at_kill = len(file_frames)
        # Server down: reconnection attempts fail while the file source goes on delivering.
        pump(lambda: stream.stats.reconnects >= 2 and len(file_frames) > at_kill + 3, "outage")
        assert stream.stats.state == "reconnecting"
        during_outage = len(file_frames)
        before = stream.stats.frames_decoded
        rtsp_server.start()
        pump(lambda: stream.stats.frames_decoded > before + 5, "frames after restart")
        pump(lambda: len(file_frames) > during_outage + 5, "file frames")
    finally:
        stream.stop()
        video.stop()
    s = stream.stats
    assert s.reconnects >= 2 and s.state == "finished" and "refused" in (s.last_error or "").lower()
    v = video.stats
    assert (v.reconnects, v.decode_errors) == (0, 0)
    idx = [f.index for f in file_frames]
    assert idx == sorted(set(idx)) and idx[-1] > 50  # it kept going, into its second loop


def test_rtsp_stall_is_detected_and_recovered_and_stop_works_while_blocked(rtsp_server) -> None:  # noqa: F811
    src = StreamSource("rtsp", rtsp_server.url, timeout_s=1.0, backoff=(0.1, 0.4)).start()
    try:
        wait_for(lambda: src.stats.state == "running", message="stream up")
        rtsp_server.pause()  # the connection stays open but nothing flows
        wait_for(lambda: src.stats.state in ("stalled", "reconnecting"), message="stall seen")
        assert "no frame for 1 s" in (src.stats.last_error or "")
        rtsp_server.resume()
        before = src.stats.frames_decoded
        wait_for(lambda: src.stats.frames_decoded > before + 5, message="frames after the stall")
        assert src.stats.reconnects >= 1 and src.stats.state == "running"
        rtsp_server.pause()
        time.sleep(0.2)  # let the worker block in a read that gets no data, then stop it there
    finally:
        src.stop()
        rtsp_server.resume()
    src.latest()  # what was buffered before the stop is still there to read
    assert src.finished and src.stats.state == "finished"


# ---- cameras ---------------------------------------------------------------------------------------


def test_camera_that_cannot_be_opened_keeps_retrying(tmp_path: Path) -> None:
    # /dev/null is a character device but no camera: the V4L2 open fails, and the source retries with
    # backoff (the path a USB camera takes while unplugged) without ending.
    src = CameraSource("usb", "/dev/null", backoff=(0.05, 0.1)).start()
    try:
        wait_for(lambda: src.stats.reconnects >= 2, message="retries")
        assert src.stats.state == "reconnecting" and "/dev/null" in (src.stats.last_error or "")
        assert not src.finished
    finally:
        src.stop()
    assert src.finished


# ---- image folders ---------------------------------------------------------------------------------


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    for i, name in [(0, "a.png"), (10, "c.png"), (20, "e.png")]:
        Image.fromarray(render(SCENE, i)).save(tmp_path / name)
    Image.fromarray(render(SCENE, 30)[..., 0]).save(tmp_path / "f_gray.png")  # one channel
    (tmp_path / "b_garbage.jpg").write_bytes(b"not an image at all")
    Image.fromarray(render(SCENE, 5)).save(tmp_path / "d_cut.jpg")
    data = (tmp_path / "d_cut.jpg").read_bytes()
    (tmp_path / "d_cut.jpg").write_bytes(data[: len(data) // 3])  # truncated JPEG
    (tmp_path / "notes.txt").write_text("not a picture, not counted")
    return tmp_path


def test_image_folder_skips_unreadable_files(image_folder: Path) -> None:
    src = ImageFolderSource("folder", image_folder).start()
    frames = drain(src)
    # a, c, e and f_gray in name order; b (garbage) and d (truncated) are decode errors; notes.txt ignored
    assert [f.index for f in frames] == [0, 1, 2, 3]
    for f, i in zip(frames, (0, 10, 20), strict=False):
        assert np.array_equal(f.image, render(SCENE, i))  # PNG is lossless
    gray = frames[3].image
    assert gray.shape == (360, 640, 3) and np.array_equal(gray[..., 1], render(SCENE, 30)[..., 0])
    s = src.stats
    assert (s.decode_errors, s.state) == (2, "finished") and "d_cut.jpg" in (s.last_error or "")


def test_image_folder_loops(image_folder: Path) -> None:
    src = ImageFolderSource("folder", image_folder, loop=True).start()
    try:
        frames = [src.get(timeout=10.0) for _ in range(9)]
    finally:
        src.stop()
    assert [f.index for f in frames] == list(range(9))  # type: ignore[union-attr]
    assert np.array_equal(frames[4].image, frames[0].image)  # type: ignore[union-attr]


def test_image_folder_at_a_frame_rate_is_lossy(image_folder: Path) -> None:
    src = ImageFolderSource("folder", image_folder, fps=200.0, queue_size=2).start()
    wait_for(lambda: src.stats.state == "finished", message="folder played")  # nobody reads
    # 4 readable pictures; played like a camera, the 2 newest stay and the 2 older ones were pushed out.
    assert [f.index for f in src.latest(max_items=2)] == [2, 3]
    assert (src.stats.frames_dropped, src.stats.decode_errors) == (2, 2)


# ---- open_source and configuration errors -----------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "cls"),
    [
        ("rtsp://127.0.0.1:1/cam", StreamSource),
        ("RTMP://127.0.0.1:1/live/x", StreamSource),  # schemes are case-insensitive
        ("http://127.0.0.1:1/stream.mjpg", StreamSource),
        ("udp://127.0.0.1:5000", StreamSource),
        ("{media}/clip.mp4", VideoFileSource),
        ("file://{media}/clip.mp4", VideoFileSource),
        ("{media}", ImageFolderSource),  # a folder (it holds a .png, written below)
    ],
)
def test_open_source_picks_the_class(media_dir: Path, uri: str, cls: type) -> None:
    Image.fromarray(render(SCENE, 0)).save(media_dir / "still.png")
    src = open_source("s", uri.format(media=media_dir))
    assert type(src) is cls and src.name == "s" and not src.finished


@pytest.mark.parametrize(
    ("uri", "opts", "match"),
    [
        ("/dev/video97", {}, "camera device not found: /dev/video97"),
        ("97", {}, "camera device not found: /dev/video97"),  # a bare number is a camera index
        ("ftp://host/x.mp4", {}, "unsupported URL scheme 'ftp'"),
        ("{media}/missing.mp4", {}, "input not found"),
        ("{media}/notes.txt", {}, "is not a video"),
        ("{media}/still.png", {}, "single image"),
        ("{media}/clip.mp4", {"bogus": 1}, "bad options for VideoFileSource"),
        ("{media}/clip.mp4", {"stride": 0}, "stride must be an integer >= 1"),
        ("{media}/clip.mp4", {"fps": 0}, "fps must be > 0"),
        ("{media}/clip.mp4", {"queue_size": 0}, "queue_size must be"),
        ("rtsp://127.0.0.1:1/x", {"timeout_s": 0}, "timeout_s must be > 0"),
        ("rtsp://127.0.0.1:1/x", {"backoff": (0.0, 1.0)}, "backoff must be"),
        ("rtsp://127.0.0.1:1/x", {"rtsp_transport": "carrier-pigeon"}, "unknown rtsp_transport"),
        ("{empty}", {}, "no images"),
    ],
)
def test_open_source_errors(media_dir: Path, tmp_path: Path, uri: str, opts: dict, match: str) -> None:
    (media_dir / "notes.txt").write_text("x")
    Image.fromarray(render(SCENE, 0)).save(media_dir / "still.png")
    with pytest.raises(ConfigError, match=match):
        open_source("s", uri.format(media=media_dir, empty=tmp_path), **opts)


def test_camera_path_that_is_not_a_device(tmp_path: Path) -> None:
    (tmp_path / "video0").write_bytes(b"")
    with pytest.raises(ConfigError, match="not a camera device"):
        CameraSource("usb", str(tmp_path / "video0"))


def test_importing_sources_does_not_import_av() -> None:
    code = "import sys, yolostream.pipeline.sources; assert 'av' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
