"""Preprocessing: OpenCV-exact resizing, Ultralytics' letterbox rules, box mapping, input conversion.

OpenCV (opencv-python-headless, a dev extra) is the reference for pixels: every resize must equal
``cv2.resize`` exactly (tolerance 0), since that is what Ultralytics feeds its models. Two references
made by Ultralytics itself need no OpenCV: the letterboxed ``input_rgb_uint8`` of the raw fixtures and
the letterboxed training batch in ``loss-batch.npz``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from yolostream.errors import ImageReadError, ShapeError
from yolostream.preprocess import (
    Letterbox,
    apply_letterbox,
    apply_val_letterbox,
    boxes_to_original,
    boxes_to_original_batched,
    inverse_params,
    plan_batch,
    plan_letterbox,
    plan_val_letterbox,
    read_image,
    rect_batch_shape,
    resize_area_u8,
    resize_linear_u8,
    to_rgb_chw,
    val_boxes_to_original,
)


@pytest.fixture(scope="module")
def cv2():
    return pytest.importorskip("cv2")


def _chw(hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(hwc)).permute(2, 0, 1).contiguous()


def _hwc(chw: torch.Tensor) -> np.ndarray:
    return chw.permute(1, 2, 0).numpy()


def _random_image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _fixture_jpegs(fixtures: Path) -> list[Path]:
    return sorted((fixtures / "images").rglob("*.jpg"))


# (src_h, src_w, dst_h, dst_w): each row exercises a separate branch of OpenCV's resize.
RESIZE_CASES = [
    (360, 480, 480, 640),  # 1.333x up (480x360 -> 640x480, w x h): fixed-point bilinear, both edges clamp
    (600, 900, 427, 640),  # 0.711x down (900x600 -> 640x427): fixed-point bilinear
    (900, 600, 640, 427),  # the same, portrait
    (120, 160, 240, 320),  # exact 2x up: weights 0.25/0.75
    (240, 320, 120, 160),  # exact 2x down: INTER_LINEAR becomes INTER_AREA's 2x2 mean, rounded half up
    (240, 320, 120, 320),  # 2x down on one axis only: stays bilinear
    (300, 300, 100, 100),  # 3x down: bilinear for LINEAR, integer-block mean (half-even) for AREA
    (101, 67, 33, 95),  # odd sizes, shrink one axis and grow the other
    (1, 1, 5, 7),  # 1-pixel source: every output is that pixel
    (1, 9, 1, 4),  # 1-pixel-high source
    (9, 1, 4, 1),  # 1-pixel-wide source
    (7, 5, 1, 1),  # down to one pixel
    (3, 3, 640, 640),  # extreme enlargement
    (640, 640, 213, 213),  # non-integer shrink, AREA's float32 general path
]


@pytest.mark.parametrize(("sh", "sw", "dh", "dw"), RESIZE_CASES)
@pytest.mark.parametrize("interp", ["linear", "area"])
def test_resize_bit_exact_vs_cv2(cv2, sh: int, sw: int, dh: int, dw: int, interp: str) -> None:
    img = _random_image(sh, sw, seed=sh * 1000 + sw)
    flag, fn = (cv2.INTER_LINEAR, resize_linear_u8) if interp == "linear" else (cv2.INTER_AREA, resize_area_u8)
    ref = cv2.resize(img, (dw, dh), interpolation=flag).reshape(dh, dw, 3)
    got = _hwc(fn(_chw(img), (dh, dw)))
    np.testing.assert_array_equal(got, ref)  # bit-exact: tolerance 0


def test_resize_random_sizes_bit_exact(cv2) -> None:
    """A seeded sweep of random sizes and contents (including saturated 0/255 pictures)."""
    rng = np.random.default_rng(2024)
    for i in range(40):
        sh, sw, dh, dw = (int(v) for v in rng.integers(1, 160, 4))
        img = rng.integers(0, 256, (sh, sw, 3), dtype=np.uint8)
        if i % 4 == 0:
            img = rng.choice(np.array([0, 255], np.uint8), (sh, sw, 3))
        for flag, fn in ((cv2.INTER_LINEAR, resize_linear_u8), (cv2.INTER_AREA, resize_area_u8)):
            ref = cv2.resize(img, (dw, dh), interpolation=flag).reshape(dh, dw, 3)
            got = _hwc(fn(_chw(img), (dh, dw)))
            assert np.array_equal(got, ref), f"{(sh, sw)} -> {(dh, dw)} flag {flag}"


def test_resize_batched_equals_single() -> None:
    imgs = [_random_image(50, 70, seed=s) for s in range(3)]
    batch = torch.stack([_chw(im) for im in imgs])  # [3, 3, 50, 70]
    for fn in (resize_linear_u8, resize_area_u8):
        out = fn(batch, (37, 41))
        for i, im in enumerate(imgs):
            assert torch.equal(out[i], fn(_chw(im), (37, 41)))


@pytest.mark.parametrize(
    ("img", "size"),
    [
        (torch.zeros(3, 4, 4, dtype=torch.float32), (2, 2)),  # wrong dtype
        (torch.zeros(4, 4, dtype=torch.uint8), (2, 2)),  # no channel dim
        (torch.zeros(3, 4, 4, dtype=torch.uint8), (0, 2)),  # empty target
        (torch.zeros(3, 0, 4, dtype=torch.uint8), (2, 2)),  # empty source
    ],
)
def test_resize_rejects_bad_input(img: torch.Tensor, size: tuple[int, int]) -> None:
    with pytest.raises(ShapeError):
        resize_linear_u8(img, size)


# Hand-computed predict plans, imgsz 640, stride 32 (sizes given w x h as in the file names):
# | picture  | r             | resized (h, w) | square: input, top, left | rect: input, top, left |
# | 1280x720 | 640/1280=0.5  | (360, 640)     | (640, 640), 140, 0       | 280%32=24 -> (384, 640), 12, 0 |
# | 480x360  | 640/480=1.333 | (480, 640)     | (640, 640), 80, 0        | 160%32=0  -> (480, 640), 0, 0  |
# | 360x480  | 640/480=1.333 | (640, 480)     | (640, 640), 0, 80        | (640, 480), 0, 0               |
# | 320x320  | 2             | (640, 640)     | (640, 640), 0, 0         | (640, 640), 0, 0               |
# | 600x900  | 640/900=0.711 | (640, 427)     | dw 213: left round(106.4)=106, right 107 -> (640, 640), 0, 106 |
# |          |               |                | rect: 213%32=21: left round(10.4)=10, right 11 -> (640, 448), 0, 10 |
PLAN_CASES = [
    ((720, 1280), "square", (360, 640), (640, 640), 140, 0),
    ((720, 1280), "rect", (360, 640), (384, 640), 12, 0),
    ((360, 480), "square", (480, 640), (640, 640), 80, 0),
    ((360, 480), "rect", (480, 640), (480, 640), 0, 0),
    ((480, 360), "square", (640, 480), (640, 640), 0, 80),
    ((480, 360), "rect", (640, 480), (640, 480), 0, 0),
    ((320, 320), "square", (640, 640), (640, 640), 0, 0),
    ((320, 320), "rect", (640, 640), (640, 640), 0, 0),
    ((900, 600), "square", (640, 427), (640, 640), 0, 106),
    ((900, 600), "rect", (640, 427), (640, 448), 0, 10),
]


@pytest.mark.parametrize(("orig", "mode", "resized", "inp", "top", "left"), PLAN_CASES)
def test_plan_letterbox_table(orig, mode, resized, inp, top, left) -> None:
    assert plan_letterbox(orig, 640, mode) == Letterbox(orig, resized, inp, top, left)


def test_plan_letterbox_matches_fixture_images(fixtures: Path) -> None:
    """The table's sizes are the fixture pictures' real sizes (so the table is about them)."""
    sizes = {Image.open(p).size for p in _fixture_jpegs(fixtures)}  # PIL gives (w, h)
    assert sizes == {(1280, 720), (480, 360), (360, 480), (320, 320), (600, 900)}


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # scaleup=False keeps a small picture at 1:1 and only pads: 320x320 into 640 -> 160 each side.
        ({"orig_hw": (320, 320), "scaleup": False}, Letterbox((320, 320), (320, 320), (640, 640), 160, 160)),
        # Non-square target (h, w) = (384, 640): r = min(384/720, 640/1280) = 0.5, no padding.
        ({"orig_hw": (720, 1280), "imgsz": (384, 640)}, Letterbox((720, 1280), (360, 640), (384, 640), 12, 0)),
    ],
)
def test_plan_letterbox_options(kwargs, expected) -> None:
    assert plan_letterbox(**kwargs) == expected


@pytest.mark.parametrize(
    "kwargs",
    [{"orig_hw": (0, 5)}, {"orig_hw": (5, 5), "mode": "stretch"}, {"orig_hw": (5, 5), "imgsz": (1, 2, 3)}],
)
def test_plan_letterbox_rejects(kwargs) -> None:
    with pytest.raises(ShapeError):
        plan_letterbox(**kwargs)


def test_plan_batch_rect_only_for_equal_shapes() -> None:
    same = plan_batch([(720, 1280), (720, 1280)], 640, "rect")
    assert [p.input_hw for p in same] == [(384, 640)] * 2  # rect kept
    mixed = plan_batch([(720, 1280), (900, 600)], 640, "rect")
    assert [p.input_hw for p in mixed] == [(640, 640)] * 2  # falls back to square
    assert mixed[1].pad_left == 106  # and each picture is planned in square mode
    with pytest.raises(ShapeError):
        plan_batch([], 640)


def test_reference_input_reproduced_from_file(fixtures: Path) -> None:
    """Ultralytics' own letterboxed input of scene_1280x720.jpg, reproduced exactly from the JPEG."""
    ref = np.load(fixtures / "reference" / "yolov8n-random.raw.npz")["input_rgb_uint8"]
    img = read_image(fixtures / "images" / "scene_1280x720.jpg")
    out = apply_letterbox(img, plan_letterbox(tuple(img.shape[1:]), 640, "square"))
    np.testing.assert_array_equal(out.numpy(), ref)  # bit-exact


def test_training_batch_letterbox_reproduced(fixtures: Path) -> None:
    """``loss-batch.npz`` holds shapes/0000-0003 letterboxed by Ultralytics to 320: a 0.667x bilinear shrink."""
    batch = np.load(fixtures / "reference" / "loss-batch.npz")["img_rgb_uint8"]
    files = sorted((fixtures / "datasets" / "shapes" / "images" / "val").glob("*.jpg"))[:4]
    for i, f in enumerate(files):
        img = read_image(f)
        out = apply_letterbox(img, plan_letterbox(tuple(img.shape[1:]), 320))
        np.testing.assert_array_equal(out.numpy(), batch[i])  # bit-exact


@pytest.mark.parametrize("mode", ["square", "rect"])
def test_letterbox_fixture_jpegs_vs_cv2(cv2, fixtures: Path, mode: str) -> None:
    """Every fixture picture letterboxed like Ultralytics does it with OpenCV (resize + 114 border)."""
    for path in _fixture_jpegs(fixtures):
        bgr = cv2.imread(str(path))
        plan = plan_letterbox(bgr.shape[:2], 640, mode)
        ref = bgr
        if plan.resized_hw != plan.orig_hw:
            ref = cv2.resize(bgr, plan.resized_hw[::-1], interpolation=cv2.INTER_LINEAR)
        bottom = plan.input_hw[0] - plan.resized_hw[0] - plan.pad_top
        right = plan.input_hw[1] - plan.resized_hw[1] - plan.pad_left
        ref = cv2.copyMakeBorder(
            ref, plan.pad_top, bottom, plan.pad_left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114)
        )
        got = apply_letterbox(read_image(path), plan)
        np.testing.assert_array_equal(_hwc(got), ref[..., ::-1], err_msg=str(path))


def test_apply_letterbox_batched_and_errors() -> None:
    plan = plan_letterbox((30, 40), 64)
    batch = torch.stack([_chw(_random_image(30, 40, seed=s)) for s in range(2)])
    out = apply_letterbox(batch, plan)
    assert out.shape == (2, 3, 64, 64) and out.dtype == torch.uint8
    assert torch.equal(out[1], apply_letterbox(batch[1], plan))
    assert int(out[0, 0, 0, 0]) == 114  # padding value (64x48 picture, 8 rows above)
    with pytest.raises(ShapeError):
        apply_letterbox(batch[..., :39], plan)  # size differs from the plan
    with pytest.raises(ShapeError):
        apply_letterbox(batch.float(), plan)


def test_boxes_to_original_hand_computed() -> None:
    # 600x900 (w x h) in a 640 square: g = 640/900, resized to 427 x 640, so gain_x = 427/600 and
    # gain_y = 640/900 (per axis, Ultralytics 8.4); pad_x round((640 - 427) / 2 - 0.1) = 106, pad_y 0.
    boxes = torch.tensor(
        [
            [106.0, 0.0, 533.0, 640.0],  # the whole picture: x2 = 427 / (427/600) = 600
            [320.0, 320.0, 320.0, 320.0],  # the input centre: ((320 - 106) * 600 / 427, 320 * 900 / 640)
            [0.0, -5.0, 50.0, 700.0],  # inside the padding / outside the input: clipped to 0 and 900
        ]
    )
    out = boxes_to_original(boxes, (640, 640), (900, 600))
    cx = 214 * 600 / 427
    expected = torch.tensor([[0.0, 0.0, 600.0, 900.0], [cx, 450.0, cx, 450.0], [0.0, 0.0, 0.0, 900.0]])
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)  # float32 rounding of /gain, ~1e-5 px
    # Before 8.4 both axes were divided by g: x of the centre (320 - 106) * 900 / 640 = 300.9375.
    single = boxes_to_original(boxes[1:2], (640, 640), (900, 600), per_axis=False)
    torch.testing.assert_close(single[0, 0], torch.tensor(300.9375), atol=1e-4, rtol=0)
    # Pre-March-2026 Ultralytics rounded after subtracting the unrounded 426.67: pad_x 107, 1 px off.
    legacy = boxes_to_original(boxes[1:2], (640, 640), (900, 600), legacy_pad=True, per_axis=False)
    torch.testing.assert_close(legacy[0, 0], torch.tensor((320 - 107) * 900 / 640), atol=1e-4, rtol=0)


def test_inverse_pad_equals_letterbox_pad() -> None:
    """Ultralytics' scale_boxes pad, recomputed from the shapes, is the pad the letterbox applied."""
    rng = np.random.default_rng(7)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 3000, 2))
        for mode in ("square", "rect"):
            plan = plan_letterbox((h, w), 640, mode)
            _, pad, _ = inverse_params([plan])
            assert pad[0].tolist() == [plan.pad_left, plan.pad_top], (h, w, mode)


def test_boxes_round_trip_and_batched() -> None:
    plans = plan_batch([(720, 1280), (900, 600), (480, 360)], 640, "rect")  # mixed -> square
    gain, pad, orig = inverse_params(plans)
    gen = torch.Generator().manual_seed(0)
    boxes0 = []
    for p in plans:
        h0, w0 = p.orig_hw
        xy = torch.rand(5, 2, generator=gen) * torch.tensor([w0 / 2, h0 / 2])
        boxes0.append(torch.cat([xy, xy + torch.tensor([w0 / 2, h0 / 2])], dim=1))
    b0 = torch.stack(boxes0)  # [3, 5, 4] inside each original picture
    b_in = b0 * gain.repeat(1, 2).unsqueeze(1) + pad.repeat(1, 2).unsqueeze(1)  # forward map to input pixels
    back = boxes_to_original_batched(b_in, gain, pad, orig)
    # float32 forward + backward on coordinates up to 1280: error ~1e-4 px; 1e-3 leaves margin.
    torch.testing.assert_close(back, b0, atol=1e-3, rtol=0)
    for i, p in enumerate(plans):
        assert torch.equal(back[i], boxes_to_original(b_in[i], p.input_hw, p.orig_hw))


# Hand-computed validation plans, imgsz 640, rect, stride 32, pad 0.5 (w x h):
# | picture  | loaded (h, w)              | ar     | batch shape: ceil(s*20 + 0.5) * 32   | top, left |
# | 1280x720 | (360, 640)                 | 0.5625 | h ceil(11.75)=12 -> 384, w ceil(20.5)=21 -> 672 | 12, 16 |
# | 480x360  | (480, 640)                 | 0.75   | h ceil(15.5)=16 -> 512, w 672        | 16, 16 |
# | 360x480  | (640, 480)                 | 1.333  | [1, 0.75] -> (672, 512)              | 16, 16 |
# | 320x320  | (640, 640)                 | 1      | (672, 672)                           | 16, 16 |
# | 600x900  | (640, ceil(426.67)=427)    | 1.5    | [1, 0.667]: w ceil(13.83)=14 -> 448  | 16, round(10.4)=10 |
VAL_CASES = [
    ((720, 1280), (360, 640), (384, 672), 12, 16),
    ((360, 480), (480, 640), (512, 672), 16, 16),
    ((480, 360), (640, 480), (672, 512), 16, 16),
    ((320, 320), (640, 640), (672, 672), 16, 16),
    ((900, 600), (640, 427), (672, 448), 16, 10),
]


@pytest.mark.parametrize(("orig", "loaded", "inp", "top", "left"), VAL_CASES)
def test_plan_val_letterbox_table(orig, loaded, inp, top, left) -> None:
    plan = plan_val_letterbox(orig, 640, rect=True)
    assert (plan.loaded_hw, plan.input_hw, plan.letterbox.pad_top, plan.letterbox.pad_left) == (
        loaded,
        inp,
        top,
        left,
    )
    assert rect_batch_shape([orig], 640) == inp


def test_plan_val_letterbox_square_and_batch_shape() -> None:
    # rect=False: the loaded 640x360 picture centred in 640x640 -> 140 rows above.
    plan = plan_val_letterbox((720, 1280), 640, rect=False)
    assert (plan.input_hw, plan.letterbox.pad_top, plan.letterbox.pad_left) == ((640, 640), 140, 0)
    # A batch of wide pictures takes the widest-ratio shape: max ar 0.75 -> (512, 672).
    assert rect_batch_shape([(720, 1280), (360, 480)], 640) == (512, 672)
    # Wide and tall mixed -> [1, 1] -> (672, 672).
    assert rect_batch_shape([(720, 1280), (900, 600)], 640) == (672, 672)


@pytest.mark.parametrize(("orig", "downscale"), [((360, 480), "linear"), ((900, 600), "linear"), ((900, 600), "area")])
def test_apply_val_letterbox_vs_cv2(cv2, orig, downscale: str) -> None:
    img = _random_image(*orig, seed=11)
    plan = plan_val_letterbox(orig, 640, rect=True, downscale=downscale)
    flag = cv2.INTER_AREA if plan.load_interpolation == "area" else cv2.INTER_LINEAR
    ref = cv2.resize(img, plan.loaded_hw[::-1], interpolation=flag)
    lb = plan.letterbox
    bottom = lb.input_hw[0] - lb.resized_hw[0] - lb.pad_top
    right = lb.input_hw[1] - lb.resized_hw[1] - lb.pad_left
    ref = cv2.copyMakeBorder(ref, lb.pad_top, bottom, lb.pad_left, right, cv2.BORDER_CONSTANT, value=(114,) * 3)
    np.testing.assert_array_equal(_hwc(apply_val_letterbox(_chw(img), plan)), ref)


def test_val_boxes_to_original() -> None:
    plan = plan_val_letterbox((900, 600), 640)  # loaded (640, 427), pad (left 10, top 16)
    box = torch.tensor([[10.0 + 213.5, 16.0 + 320.0, 10.0 + 427.0, 16.0 + 640.0]])
    # Ultralytics divides both axes by the height ratio 640/900: x 213.5 * 900/640 = 300.234375.
    out = val_boxes_to_original(box, plan)
    torch.testing.assert_close(out, torch.tensor([[300.234375, 450.0, 600.0, 900.0]]), atol=1e-4, rtol=0)
    # per_axis divides x by the width ratio 427/600: 213.5 * 600/427 = 300.0 exactly in the middle.
    out = val_boxes_to_original(box, plan, per_axis=True)
    torch.testing.assert_close(out, torch.tensor([[300.0, 450.0, 600.0, 900.0]]), atol=1e-4, rtol=0)


def test_pil_decode_equals_cv2_imread(cv2, fixtures: Path) -> None:
    paths = _fixture_jpegs(fixtures) + sorted((fixtures / "datasets" / "shapes" / "images" / "val").glob("*.jpg"))
    assert len(paths) > 8
    for p in paths:
        np.testing.assert_array_equal(_hwc(read_image(p)), cv2.imread(str(p))[..., ::-1], err_msg=str(p))


def _exif_jpeg(path: Path, orientation: int) -> None:
    im = Image.fromarray(_random_image(20, 40, seed=3))  # 40 wide, 20 high
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(path, quality=95, exif=exif.tobytes())


@pytest.mark.parametrize("kind", ["exif6", "exif3", "gray", "palette", "rgba"])
def test_read_image_modes_match_cv2(cv2, tmp_path: Path, kind: str) -> None:
    if kind.startswith("exif"):
        path = tmp_path / "x.jpg"
        _exif_jpeg(path, int(kind[-1]))
    else:
        path = tmp_path / "x.png"
        rgb = Image.fromarray(_random_image(12, 17, seed=5))
        im = {"gray": rgb.convert("L"), "palette": rgb.convert("P"), "rgba": rgb.convert("RGBA")}[kind]
        im.save(path)
    got = read_image(path)
    np.testing.assert_array_equal(_hwc(got), cv2.imread(str(path))[..., ::-1])
    if kind == "exif6":
        assert tuple(got.shape) == (3, 40, 20)  # rotated a quarter turn like cv2.imread does


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_random_image(64, 64, seed=9)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("truncated.jpg", _jpeg_bytes()[: len(_jpeg_bytes()) // 2]),  # must fail, not come back gray-filled
        ("corrupt.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4),  # JPEG magic, garbage body
        ("notes.jpg", b"this is not a picture\n"),  # not an image at all
        ("empty.png", b""),
        ("missing.jpg", None),  # no such file
    ],
)
def test_read_image_errors_name_the_file(tmp_path: Path, name: str, content: bytes | None) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError, match=name):
        read_image(path)


RGB = _random_image(2, 3, seed=1)  # [H=2, W=3, 3]
ALPHA = np.full((2, 3, 1), 7, np.uint8)
GRAY_PIL = Image.fromarray(RGB).convert("L")  # PIL's own luma, replicated to 3 channels like cv2 does


@pytest.mark.parametrize(
    ("value", "kwargs", "expected_hwc"),
    [
        (RGB, {}, RGB),  # numpy HWC RGB
        (RGB, {"bgr": True}, RGB[..., ::-1]),  # numpy HWC BGR (OpenCV order) -> channels swapped
        (RGB[..., 0], {}, np.repeat(RGB[..., :1], 3, axis=2)),  # numpy HxW gray -> replicated
        (RGB[..., :1], {}, np.repeat(RGB[..., :1], 3, axis=2)),  # numpy HxWx1 -> replicated
        (np.concatenate([RGB, ALPHA], 2), {}, RGB),  # RGBA -> alpha dropped
        (np.concatenate([RGB, ALPHA], 2), {"bgr": True}, RGB[..., ::-1]),  # BGRA -> RGB
        (torch.from_numpy(RGB).permute(2, 0, 1), {}, RGB),  # torch [3, H, W]
        (torch.from_numpy(RGB), {}, RGB),  # torch [H, W, 3]
        (torch.from_numpy(RGB), {"bgr": True}, RGB[..., ::-1]),  # torch [H, W, 3] BGR
        (RGB[..., ::-1], {"bgr": True}, RGB),  # negative channel stride (a numpy flip): copied, then read
        (RGB[::-1, ::-1], {}, RGB[::-1, ::-1]),  # negative row and column strides
        (np.concatenate([RGB, RGB], 1)[:, ::2], {}, np.concatenate([RGB, RGB], 1)[:, ::2]),  # strided view
        (torch.from_numpy(np.concatenate([RGB, ALPHA], 2))[..., :3], {"bgr": True}, RGB[..., ::-1]),  # HWC view
        (Image.fromarray(RGB), {}, RGB),  # PIL RGB
        (
            Image.fromarray(RGB).convert("L"),
            {},
            np.repeat(np.array(Image.fromarray(RGB).convert("L"))[..., None], 3, 2),
        ),
        (Image.fromarray(np.concatenate([RGB, ALPHA], 2)), {}, RGB),  # PIL RGBA -> alpha dropped
    ],
)
def test_to_rgb_chw_table(value, kwargs, expected_hwc: np.ndarray) -> None:
    out = to_rgb_chw(value, **kwargs)
    assert out.dtype == torch.uint8 and out.shape[0] == 3 and out.is_contiguous()
    np.testing.assert_array_equal(_hwc(out), expected_hwc)


def test_to_rgb_chw_ambiguous_3x3x3_is_channels_first() -> None:
    t = torch.arange(27, dtype=torch.uint8).reshape(3, 3, 3)
    assert torch.equal(to_rgb_chw(t), t)  # [3, H=3, W=3], not [H, W, 3]


def test_to_rgb_chw_path(fixtures: Path) -> None:
    path = fixtures / "images" / "scene_600x900.jpg"
    assert torch.equal(to_rgb_chw(path), read_image(path))
    assert torch.equal(to_rgb_chw(str(path)), read_image(path))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (RGB.astype(np.float32), "float32"),  # wrong dtype, named
        (np.zeros((2, 3, 2), np.uint8), r"\(2, 3, 2\)"),  # 2 channels, shape named
        (np.zeros((1, 2, 3, 3), np.uint8), r"\(1, 2, 3, 3\)"),  # 4-D
        (torch.zeros(2, 3, 3).float(), "torch.float32"),
        (torch.zeros(4, 5, 6, dtype=torch.uint8), r"\(4, 5, 6\)"),  # neither CHW nor HWC
        (torch.zeros(5, 6, dtype=torch.uint8), r"\(5, 6\)"),  # 2-D tensor
        ([[1, 2], [3, 4]], "list"),
        (None, "NoneType"),
    ],
)
def test_to_rgb_chw_rejects(value, match: str) -> None:
    with pytest.raises(ShapeError, match=match):
        to_rgb_chw(value)
