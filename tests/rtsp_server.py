"""A real RTSP server (GStreamer's gst-rtsp-server, see gst_rtsp_serve.py) that tests can kill and restart.

The server runs as a child process of Debian's ``/usr/bin/python3`` (PyGObject lives there, not in the
virtualenv). Debian packages it needs:

    apt-get install -y --no-install-recommends python3-gi gir1.2-gst-rtsp-server-1.0 \\
        gstreamer1.0-plugins-base gstreamer1.0-plugins-good

Use the `rtsp_server` fixture (a started server looping a generated 320x180 clip at 25 fps) or
`RtspServer` directly.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from media import Scene, write_au_clip

GST_PYTHON = os.environ.get("YOLOSTREAM_GST_PYTHON", "/usr/bin/python3")
SERVE = Path(__file__).with_name("gst_rtsp_serve.py")
_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    "missing = [e for e in ('appsrc', 'rtph264pay') if Gst.ElementFactory.find(e) is None]; "
    "assert not missing, missing"
)


def gst_missing() -> str | None:
    """Why the server cannot run here, or None when it can."""
    try:
        r = subprocess.run([GST_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{GST_PYTHON}: {e}"
    return None if r.returncode == 0 else r.stderr.strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """``rtsp://127.0.0.1:<port><mount>`` serving ``clip`` (from `media.write_au_clip`) in a loop."""

    def __init__(self, clip: Path, port: int | None = None, mount: str = "/test", log: Path | None = None):
        self.clip, self.port, self.mount = clip, port or free_port(), mount
        self.log = log or clip.with_suffix(".server.log")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.mount}"

    def start(self, timeout_s: float = 20.0) -> RtspServer:
        """Start (or restart) on the same port; returns once it listens."""
        assert self.proc is None, "already running"
        cmd = [GST_PYTHON, str(SERVE), str(self.clip), "--port", str(self.port), "--mount", self.mount]
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith(b"READY"):
                    return self
            if self.proc.poll() is not None:
                break
        self.kill()
        raise RuntimeError(f"RTSP server did not start on port {self.port}: see {self.log}")

    def kill(self) -> None:
        """SIGKILL, like a crash: clients see their connection drop."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()  # type: ignore[union-attr]
            self.proc = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open but no data flows (a stalled camera)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.resume()  # a stopped process would not die until continued
        self.kill()


def rtsp_clip(folder: Path, scene: Scene | None = None) -> Path:
    """A short looping clip for the server (default: 320x180, 25 fps, 2 s of the default shapes)."""
    return write_au_clip(folder / "clip.au", scene or Scene(width=320, height=180, fps=25, n_frames=50))


@pytest.fixture
def rtsp_server(tmp_path: Path) -> Iterator[RtspServer]:
    """A started `RtspServer`; skipped when GStreamer is missing, except on CI where that is an error."""
    why = gst_missing()
    if why is not None:
        message = f"GStreamer RTSP server unavailable ({why}); see tests/rtsp_server.py for the packages"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with RtspServer(rtsp_clip(tmp_path)) as server:
        yield server
