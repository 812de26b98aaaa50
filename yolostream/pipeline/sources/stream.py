"""`StreamSource` (network streams) and `CameraSource` (V4L2/USB cameras): live inputs that reconnect.

Both open their input through the same `StreamSource._open`. A live source never ends on its own: end of
stream, a network error or a stall (no frame for ``timeout_s``) closes the input, reports it (log + state)
and reconnects after an exponential backoff that starts again from the bottom after a working session.
"""

from __future__ import annotations

import stat
import time
from pathlib import Path
from typing import Any

from yolostream.errors import ConfigError, ImageReadError
from yolostream.pipeline.sources.base import Source, import_av, log

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "rtp", "srt", "tcp")


class _Stalled(Exception):
    """Packets come but no frame decodes (e.g. only broken data) for ``timeout_s``."""


class StreamSource(Source):
    """A network stream (rtsp, rtmp, http(s), udp, srt, ... URL) decoded with PyAV.

    Args:
        url: the stream's address; RTSP is read over TCP unless ``rtsp_transport`` says otherwise.
        fps, stride, queue_size: see `Source`; the fps cap runs on arrival time.
        timeout_s: longest wait for the connection, for any read, and for a decoded frame; past it the
            stream is `stalled` and reconnected. Also bounds how long `stop` may wait for a blocked read.
        backoff: (first, longest) wait in seconds between reconnection attempts; doubles after each
            failed attempt.
        options: extra FFmpeg options for the input (strings).
        demuxer: force an FFmpeg input format (e.g. "v4l2"); None lets FFmpeg probe.
    """

    def __init__(
        self,
        name: str,
        url: str,
        fps: float | None = None,
        stride: int = 1,
        timeout_s: float = 5.0,
        backoff: tuple[float, float] = (0.5, 30.0),
        queue_size: int = 2,
        rtsp_transport: str = "tcp",
        options: dict[str, str] | None = None,
        demuxer: str | None = None,
    ) -> None:
        super().__init__(name, fps=fps, stride=stride, queue_size=queue_size)
        if not timeout_s > 0:
            raise ConfigError(f"source {name!r}: timeout_s must be > 0, got {timeout_s!r}")
        if len(backoff) != 2 or not 0 < backoff[0] <= backoff[1]:
            raise ConfigError(f"source {name!r}: backoff must be (first, longest) with 0 < first <= longest")
        if rtsp_transport not in ("tcp", "udp", "udp_multicast", "http", "https"):
            raise ConfigError(f"source {name!r}: unknown rtsp_transport {rtsp_transport!r}")
        import_av()
        self.url = url
        self.timeout_s = float(timeout_s)
        self.backoff = (float(backoff[0]), float(backoff[1]))
        self.options = {k: str(v) for k, v in (options or {}).items()}
        if url.lower().startswith(("rtsp://", "rtsps://")):
            self.options.setdefault("rtsp_transport", rtsp_transport)
        self.demuxer = demuxer

    @property
    def join_timeout_s(self) -> float:
        # PyAV can only interrupt a blocking read by its timeout: a stop waits for it at worst.
        return self.timeout_s + 1.0

    def _open(self) -> Any:
        av = import_av()
        return av.open(self.url, format=self.demuxer, options=self.options, timeout=self.timeout_s)

    def _run(self) -> None:
        av = import_av()
        delay = self.backoff[0]
        attempts = 0
        while not self._stopping():
            if attempts:
                self._count_reconnect()
                self._set_state("reconnecting")
            attempts += 1
            state, got_frames = "reconnecting", False
            try:
                got_frames = self._session()
                reason = "end of stream"
            except (av.error.ExitError, _Stalled) as e:
                detail = f" ({e})" if isinstance(e, _Stalled) else ""  # ExitError: PyAV's read timeout
                state, reason = "stalled", f"no frame for {self.timeout_s:g} s{detail}"
            except (av.error.FFmpegError, OSError, ImageReadError) as e:
                reason = f"{type(e).__name__}: {e}"
            if self._stopping():
                return
            if got_frames:
                delay = self.backoff[0]
            self._set_state(state, reason)
            log.warning("source %s: %s; reconnecting in %.1f s", self.name, reason, delay)
            if self._sleep(delay):
                return
            delay = min(2 * delay, self.backoff[1])

    def _session(self) -> bool:
        """Read one connection until it ends; True when it delivered at least one frame."""
        av = import_av()
        got = False
        with self._open() as container:
            if not container.streams.video:
                raise ImageReadError(f"{self.url}: no video stream")
            stream = container.streams.video[0]
            last = time.monotonic()
            for packet in container.demux(stream):
                if self._stopping():
                    return got
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as e:
                    self._decode_error(f"{self.url}: decoding packet: {e}")
                    decoded = []
                for frame in decoded:
                    if frame.is_corrupt:
                        self._discard(f"{self.url}: corrupt frame")
                        continue
                    got, last = True, time.monotonic()
                    if not self._offer(lambda f=frame: f.to_ndarray(format="rgb24")):
                        return got
                if time.monotonic() - last > self.timeout_s:
                    raise _Stalled("packets arrive but none decodes")
        return got


class CameraSource(StreamSource):
    """A V4L2 camera (``/dev/videoN``) read through FFmpeg's v4l2 input; reconnects like a stream (a USB
    camera unplugged and plugged back resumes).

    ``video_size`` ("1280x720"), ``framerate`` and ``pixel_format`` (the v4l2 input format, e.g. "mjpeg")
    ask the camera for a mode; None keeps the driver's default.
    """

    def __init__(
        self,
        name: str,
        device: str = "/dev/video0",
        fps: float | None = None,
        stride: int = 1,
        timeout_s: float = 5.0,
        backoff: tuple[float, float] = (0.5, 30.0),
        queue_size: int = 2,
        video_size: str | None = None,
        framerate: float | None = None,
        pixel_format: str | None = None,
    ) -> None:
        path = Path(device)
        if not path.exists():
            raise ConfigError(f"source {name!r}: camera device not found: {device}")
        if not stat.S_ISCHR(path.stat().st_mode):
            raise ConfigError(f"source {name!r}: {device} is not a camera device (not a character device)")
        wanted = {"video_size": video_size, "framerate": framerate, "input_format": pixel_format}
        options = {k: str(v) for k, v in wanted.items() if v is not None}
        super().__init__(name, device, fps, stride, timeout_s, backoff, queue_size, options=options, demuxer="v4l2")
