"""Write the demo clips that examples/pipeline.yaml plays: moving shapes the `shapes` models detect.

    python examples/make_demo_video.py            # -> runs/demo/demo-720p.mp4 and demo-360p.mp4

Each clip is one 8 s period of the scene in `yolostream.pipeline.synthetic` (it loops seamlessly):
a box going right and back along the bottom (through the zone and across the line of the example
config), a disc going up and down on the left, a triangle circling at the top right.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from yolostream.pipeline.synthetic import write_demo_clip

SIZES = {"720p": (1280, 720), "360p": (640, 360)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", type=Path, default=Path("runs/demo"), help="folder for the clips (default runs/demo)")
    p.add_argument("--fps", type=int, default=25, help="frame rate (default 25)")
    p.add_argument("--seconds", type=float, default=8.0, help="clip length = scene period (default 8)")
    args = p.parse_args()
    for name, (width, height) in SIZES.items():
        path = write_demo_clip(args.out_dir / f"demo-{name}.mp4", width, height, args.fps, args.seconds)
        print(f"wrote {path} ({width}x{height}, {args.fps} fps, {args.seconds:g} s)")


if __name__ == "__main__":
    main()
