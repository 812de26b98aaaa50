"""Frame sources: video files, network streams, V4L2 cameras and image folders; `open_source` picks one.

PyAV (the ``video`` extra) is imported only when a video, stream or camera source is made.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

from yolostream.errors import ConfigError
from yolostream.pipeline.sources.base import STATES, Source, SourceStats
from yolostream.pipeline.sources.folder import IMAGE_SUFFIXES, ImageFolderSource
from yolostream.pipeline.sources.stream import STREAM_SCHEMES, CameraSource, StreamSource
from yolostream.pipeline.sources.video import VideoFileSource

__all__ = [
    "STATES",
    "VIDEO_SUFFIXES",
    "CameraSource",
    "ImageFolderSource",
    "Source",
    "SourceStats",
    "StreamSource",
    "VideoFileSource",
    "open_source",
]

VIDEO_SUFFIXES = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".flv", ".mpg", ".mpeg", ".wmv",
    ".h264", ".264", ".h265", ".265", ".hevc", ".mjpeg", ".mjpg", ".y4m", ".gif",
)  # fmt: skip

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def open_source(name: str, uri: str | Path | int, **opts: Any) -> Source:
    """Make the source for ``uri`` (not started); ``opts`` go to its constructor.

    ``uri`` is one of: a stream URL (rtsp://, rtmp://, http(s)://, udp://, srt://, ...) -> `StreamSource`;
    ``/dev/videoN`` or a bare camera number N -> `CameraSource`; a folder -> `ImageFolderSource`; a video
    file (by suffix, see ``VIDEO_SUFFIXES``; ``file://`` allowed) -> `VideoFileSource`.
    Raises `ConfigError` for a missing input, an unknown scheme or file type, or an option the chosen
    source does not take.
    """
    if isinstance(uri, int) or (isinstance(uri, str) and uri.isdigit()):
        uri = f"/dev/video{int(uri)}"
    text = str(uri)
    match = _SCHEME.match(text)
    if match:
        scheme = match.group(1).lower()
        if scheme in STREAM_SCHEMES:
            return _build(StreamSource, name, text, opts)
        if scheme != "file":
            raise ConfigError(
                f"source {name!r}: unsupported URL scheme {scheme!r} in {text!r}; "
                f"expected one of {', '.join(STREAM_SCHEMES)} or file"
            )
        text = text[len("file://") :]
    if text.startswith("/dev/"):
        return _build(CameraSource, name, text, opts)
    path = Path(text).expanduser()
    if path.is_dir():
        return _build(ImageFolderSource, name, path, opts)
    if path.is_file():
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return _build(VideoFileSource, name, path, opts)
        kind = "a single image (give its folder)" if path.suffix.lower() in IMAGE_SUFFIXES else "not a video"
        raise ConfigError(f"source {name!r}: {path} is {kind}; video suffixes: {' '.join(VIDEO_SUFFIXES)}")
    raise ConfigError(f"source {name!r}: input not found: {text!r} (no such file, folder or device)")


def _build(cls: type[Source], name: str, uri: str | Path, opts: dict[str, Any]) -> Source:
    try:
        inspect.signature(cls).bind(name, uri, **opts)
    except TypeError as e:
        raise ConfigError(f"source {name!r}: bad options for {cls.__name__}: {e}") from None
    return cls(name, uri, **opts)
