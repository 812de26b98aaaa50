"""A real RTSP server for tests: GStreamer's gst-rtsp-server looping an H.264 access-unit clip forever.

Run with Debian's interpreter (it needs PyGObject and the GStreamer typelibs, not the virtualenv):

    /usr/bin/python3 tests/gst_rtsp_serve.py --port 8554 --mount /test clip.au

The clip is made by ``tests/media.py:write_au_clip``. Access units are pushed into an ``appsrc`` at the
clip's frame rate from a feeder thread, stamped on arrival, so the stream is live and loops seamlessly
(each loop starts at the clip's first keyframe, which carries SPS/PPS). Prints ``READY <port>`` once
listening. Debian packages: python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
gstreamer1.0-plugins-good.
"""

from __future__ import annotations

import argparse
import struct
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

MAGIC = b"YSAU"


def read_clip(path: str) -> tuple[int, int, list[bytes]]:
    """``(fps_num, fps_den, access_units)`` from a clip written by ``write_au_clip``."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != MAGIC:
        raise SystemExit(f"{path}: not an access-unit clip (magic {data[:4]!r})")
    num, den = struct.unpack(">II", data[4:12])
    units, pos = [], 12
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        units.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return num, den, units


class Feeder:
    """Pushes the clip into one media's appsrc at the frame rate until the media goes away."""

    def __init__(self, appsrc: Gst.Element, units: list[bytes], period_s: float) -> None:
        self.appsrc, self.units, self.period_s = appsrc, units, period_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        duration = int(self.period_s * Gst.SECOND)
        i, due = 0, time.monotonic()
        while not self.stop.is_set():
            buf = Gst.Buffer.new_wrapped(self.units[i % len(self.units)])
            buf.duration = duration
            if self.appsrc.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                return  # flushing or shut down: the media is being torn down
            i += 1
            due += self.period_s
            self.stop.wait(max(0.0, due - time.monotonic()))


class Factory(GstRtspServer.RTSPMediaFactory):
    def __init__(self, units: list[bytes], period_s: float) -> None:
        super().__init__()
        self.units, self.period_s = units, period_s
        # No parser: rtph264pay reads SPS/PPS from the byte-stream itself (keeps plugins-bad out of CI).
        self.set_launch(
            "( appsrc name=src is-live=true do-timestamp=true format=time "
            'caps="video/x-h264,stream-format=byte-stream,alignment=au" '
            "! rtph264pay name=pay0 pt=96 config-interval=0 )"
        )
        self.set_shared(True)
        self.connect("media-configure", self.on_configure)

    def on_configure(self, _factory, media: GstRtspServer.RTSPMedia) -> None:
        feeder = Feeder(media.get_element().get_child_by_name("src"), self.units, self.period_s)
        media.connect("unprepared", lambda *_: feeder.stop.set())
        feeder.thread.start()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clip")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mount", default="/test")
    ap.add_argument("--address", default="127.0.0.1")
    args = ap.parse_args()

    Gst.init(None)
    num, den, units = read_clip(args.clip)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(args.mount, Factory(units, den / num))
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on {args.address}:{args.port}")
    print(f"READY {args.port}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    sys.exit(main())
