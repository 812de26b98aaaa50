"""Write the example pictures the README's quickstart runs `yolostream predict` on.

    python examples/make_example_images.py      # -> examples/images/shapes-*.jpg

Two frames of the demo scene in `yolostream.pipeline.synthetic` (a box, a disc and a triangle on a noisy
grey background): the objects the small `shapes` models of the test fixtures were trained to find.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from yolostream.pipeline.synthetic import background, render

FRAMES = {"shapes-1.jpg": (0.2, 640, 480), "shapes-2.jpg": (0.6, 960, 540)}


def main() -> None:
    out = Path(__file__).parent / "images"
    out.mkdir(exist_ok=True)
    for name, (phase, width, height) in FRAMES.items():
        Image.fromarray(render(phase, background(width, height, seed=1))).save(out / name, quality=92)
        print(f"wrote {out / name} ({width}x{height})")


if __name__ == "__main__":
    main()
