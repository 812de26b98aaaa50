"""`yolostream bench` results: accuracy comparisons (hand cases), configuration errors, file names,
reports, and two real runs at 64x64 (structure, ratios exact by construction, accuracy; never a time)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from yolostream.bench import accuracy
from yolostream.bench.accuracy import DetectionDiff, candidate_deviation, compare_detections, output_deviation
from yolostream.bench.config import BenchConfig
from yolostream.bench.engines import cold_start
from yolostream.bench.environment import device_tag, environment, results_name
from yolostream.bench.inputs import noise_frames
from yolostream.bench.report import default_stem, print_report, write_json
from yolostream.bench.suite import add_ratios, comparisons, run_suite
from yolostream.detections import Detections
from yolostream.engine.baselines import OnnxRuntimeRunner, OpenVINORunner, export_available
from yolostream.engine.runtime import cpu_id
from yolostream.errors import ConfigError
from yolostream.postprocess.candidates import Candidates

MS = 1_000_000  # ns per ms


# ---------------------------------------------------------------------------------------------- accuracy


def dets(rows: list[list[float]]) -> Detections:
    """Detections from ``[x1, y1, x2, y2, conf, cls]`` rows."""
    t = torch.tensor(rows, dtype=torch.float32).reshape(-1, 6)
    return Detections(t[:, :4], t[:, 4], t[:, 5].long(), {}, (200, 200))


REF = [[0, 0, 100, 100, 0.9, 1], [120, 120, 180, 180, 0.6, 2]]


@pytest.mark.parametrize(
    ("test_rows", "unchanged", "matched", "kinds", "box_dev"),
    [
        (REF, True, 2, [], 0.0),  # identical
        (REF[::-1], True, 2, [], 0.0),  # same detections in another order
        # Shifted right by 1 px: IoU = 99*100 / (100*100 + 100*100 - 99*100) = 9900/10100 = 0.98 >= 0.9.
        ([[1, 0, 101, 100, 0.89, 1], REF[1]], True, 2, [], 1.0),
        # Shifted by 20 px: IoU = 80*100 / (20000 - 8000) = 0.67 < 0.9: the box counts as a different one.
        ([[20, 0, 120, 100, 0.9, 1], REF[1]], False, 1, ["missing", "extra"], 0.0),
        ([[0, 0, 100, 100, 0.9, 3], REF[1]], False, 1, ["missing", "extra"], 0.0),  # class changed
        ([*REF, [10, 150, 30, 190, 0.3, 0]], False, 2, ["extra"], 0.0),  # one more detection
        ([REF[0]], False, 1, ["missing"], 0.0),  # one lost
        ([], False, 0, ["missing", "missing"], 0.0),  # nothing found
    ],
)
def test_compare_detections(
    test_rows: list[list[float]], unchanged: bool, matched: int, kinds: list[str], box_dev: float
) -> None:
    diff = compare_detections(dets(REF), dets(test_rows), image="a.jpg")
    assert (diff.unchanged, diff.matched, [c["kind"] for c in diff.changes]) == (unchanged, matched, kinds)
    assert diff.box_dev_px == pytest.approx(box_dev)
    assert all(c["image"] == "a.jpg" for c in diff.changes)


def test_compare_detections_conf_deviation_and_merge() -> None:
    a = compare_detections(dets(REF), dets([[0, 0, 100, 100, 0.85, 1], REF[1]]))  # conf 0.9 -> 0.85
    b = compare_detections(dets(REF), dets([REF[0]]))
    assert a.conf_dev == pytest.approx(0.05)
    merged = accuracy.merge([a, b])
    assert (merged.n_ref, merged.n_test, merged.matched, len(merged.changes)) == (4, 3, 3, 1)
    assert merged.conf_dev == pytest.approx(0.05) and not merged.unchanged
    assert DetectionDiff().unchanged  # nothing expected, nothing found


def cands(boxes: list[list[float]], scores: list[float], classes: list[int], valid: list[bool]) -> Candidates:
    return Candidates(torch.tensor([boxes]), torch.tensor([scores]), torch.tensor([classes]), torch.tensor([valid]))


def test_candidate_deviation_ignores_rank_swaps() -> None:
    boxes = [[0.0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]
    ref = cands(boxes, [0.9, 0.5, 0.1], [0, 0, 1], [True, True, False])
    # The first two rows swap places (scores 0.5 and 0.91) and move by 0.5 px; the ranking differs.
    moved = [[20.5, 20, 30, 30], [0.5, 0, 10, 10], [40, 40, 50, 50]]
    test = cands(moved, [0.5, 0.91, 0.1], [0, 0, 1], [True, True, False])
    dev = candidate_deviation(ref, test)
    # Sorted scores (0.9, 0.5, 0.1) vs (0.91, 0.5, 0.1): 0.01, not the 0.4 a row-by-row comparison would give.
    assert dev["score_dev"] == pytest.approx(0.01, abs=1e-6)
    assert dev["box_dev_px"] == pytest.approx(0.5)  # nearest same-class box, not the same-rank one
    assert dev["unmatched"] == 0


def test_candidate_deviation_counts_rows_with_no_box_of_their_class() -> None:
    ref = cands([[0.0, 0, 10, 10]], [0.9], [0], [True])
    test = cands([[0.0, 0, 10, 10]], [0.9], [5], [True])  # same box, another class
    assert candidate_deviation(ref, test) == {"score_dev": 0.0, "box_dev_px": 0.0, "unmatched": 1}


def test_output_deviation_splits_boxes_and_scores() -> None:
    ref = np.zeros((1, 6, 3), dtype=np.float32)  # 4 box rows + 2 classes, 3 anchors
    test = ref.copy()
    test[0, 1, 2] = 0.25  # a box coordinate, in pixels
    test[0, 5, 0] = -0.01  # a class score
    assert output_deviation(ref, test) == pytest.approx({"score_dev": 0.01, "box_dev_px": 0.25})
    with pytest.raises(ValueError, match="4 \\+ nc"):
        output_deviation(ref, ref[:, :, :2])


# ---------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"modes": ("eager", "fast")}, "unknown mode 'fast'"),
        ({"dtypes": ("fp8",)}, "unknown dtype 'fp8'"),
        ({"baselines": ("tensorrt",)}, "unknown baseline 'tensorrt'"),
        ({"modes": ("default", "default")}, "mode listed twice"),
        ({"batches": (1, 0)}, "batch sizes must be >= 1"),
        ({"batches": ()}, "batch sizes must be >= 1"),
        ({"imgsz": 100}, "imgsz=100"),  # not a multiple of 32
        ({"iters": 0}, "iters=0"),
        ({"warmup": -1}, "warmup=-1"),
        ({"threads": 0}, "threads=0"),
        ({"baselines": ("onnxruntime",), "device": "cuda"}, "cannot sit beside cuda"),
        ({"check_images": ("missing.jpg",)}, "missing.jpg: no such file"),
    ],
)
def test_config_errors(fixtures: Path, changes: dict[str, Any], match: str) -> None:
    config = BenchConfig(model=str(fixtures / "checkpoints" / "yolov8n-random.pt"), **changes)
    with pytest.raises(ConfigError, match=match):
        config.validate()


@pytest.mark.parametrize(
    ("modes", "dtypes", "grid"),
    [
        (("default",), ("bf16",), [("eager", "fp32"), ("default", "bf16")]),  # reference added
        (("default", "eager"), ("fp32",), [("eager", "fp32"), ("default", "fp32")]),  # moved to the front
    ],
)
def test_grid_starts_with_the_reference(modes: tuple, dtypes: tuple, grid: list) -> None:
    assert BenchConfig("m.pt", modes=modes, dtypes=dtypes).grid() == grid


# ---------------------------------------------------------------------------------------------- names


CPU_ENV = {"device": "cpu", "cpu_capability": "AVX512", "torch": "2.13.0+cpu"}
GPU_ENV = {"device": "cuda:0", "device_name": "NVIDIA H100 80GB HBM3", "torch": "2.13.0+cu128"}


@pytest.mark.parametrize(
    ("env", "dtypes", "batches", "name"),
    [
        (CPU_ENV, ["fp32", "bf16"], [1], "bench-yolov8n-cpu-avx512-fp32-bf16-pt2.13"),  # batch 1 alone: unnamed
        (GPU_ENV, ["fp16"], [1, 8], "bench-yolov8n-cuda-h100-fp16-b1-8-pt2.13"),  # "NVIDIA" dropped
        (CPU_ENV | {"cpu_capability": "AVX2", "torch": "2.14.1"}, ["fp32"], None, "bench-yolov8n-cpu-avx2-fp32-pt2.14"),
    ],
)
def test_results_name(env: dict[str, str], dtypes: list[str], batches: list[int] | None, name: str) -> None:
    assert results_name("yolov8n", env, dtypes, batches) == name


def test_environment_records_what_results_depend_on() -> None:
    env = environment(torch.device("cpu"), threads=1)
    assert env["torch"] == torch.__version__ and env["threads"] == 1
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert device_tag(env) == f"cpu-{env['cpu_capability'].lower()}"
    for key in ("date", "cpu_model", "cpu_flags", "usable_cores", "load_average"):
        assert key in env
    assert env["cpu_id"] == cpu_id()  # the generation, which "AMD EPYC" alone does not name


def test_noise_frames_are_deterministic() -> None:
    a, b = noise_frames(2, 32, 48, seed=3), noise_frames(2, 32, 48, seed=3)
    assert a[0].shape == (32, 48, 3) and a[0].dtype == np.uint8
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], a[1])  # each batch slot its own frame


# ---------------------------------------------------------------------------------------------- ratios, report


def fake_result(name: str, mode: str, dtype: str, batch: int, p50: float, kind: str = "torch") -> dict[str, Any]:
    stats = {"n": 3, "mean": p50, "std": p50 / 10, "min": p50, "p50": p50, "p90": p50, "p99": p50 * 2, "max": p50 * 2}
    return {
        "kind": kind,
        "name": name,
        "mode": mode,
        "dtype": dtype,
        "batch": batch,
        "compile_s": None if mode == "eager" else 30.0,
        "load_s": 1.0,
        "e2e": None if kind == "baseline" else stats,
        "network": stats,
        "throughput": {"network": batch * 1000 / p50, **({} if kind == "baseline" else {"e2e": batch * 1000 / p50})},
        "memory": {"peak_mib": 100.0, "peak_reset": True},
        "gpu": None,
        "accuracy": {"network": {"score_dev": 1e-6, "box_dev_px": 1e-4}, "detections": None},
        "error": None,
    }


def fake_doc() -> dict[str, Any]:
    results = [
        fake_result("eager-fp32", "eager", "fp32", 1, 20.0),
        fake_result("default-fp32", "default", "fp32", 1, 10.0),
        fake_result("eager-fp32", "eager", "fp32", 8, 100.0),
        fake_result("default-fp32", "default", "fp32", 8, 80.0),
        fake_result("openvino-fp32", "openvino", "fp32", 1, 5.0, kind="baseline"),
        {"kind": "torch", "name": "default-bf16", "mode": "default", "dtype": "bf16", "batch": 1, "error": "Boom: x"},
    ]
    add_ratios(results)
    env = environment(torch.device("cpu"), threads=1)
    settings = {"device": "cpu", "imgsz": 64, "iters": 3, "dtypes": ["fp32"], "batches": [1, 8]}
    settings["check_images"] = ["frame"]
    return {"model": "m.pt", "settings": settings, "environment": env, "results": results, "checks": []} | {
        "comparisons": comparisons(results)
    }


def test_ratios_are_to_eager_fp32_of_the_same_batch() -> None:
    results = fake_doc()["results"]
    assert results[0]["ratios"]["e2e.p50"] == 1.0  # the reference over itself
    assert results[1]["ratios"]["e2e.p50"] == pytest.approx(10 / 20)  # batch 1: 10 ms over 20 ms
    assert results[3]["ratios"]["network.p99"] == pytest.approx(160 / 200)  # batch 8: p99 = 2 x p50
    assert results[3]["ratios"]["throughput.network"] == pytest.approx(100 / 80)
    assert results[1]["ratios"]["compile_s"] is None  # eager compiles nothing: no ratio
    assert "e2e.n" not in results[1]["ratios"]  # sample counts are not figures
    assert results[4]["ratios"]["network.p50"] == pytest.approx(5 / 20)  # a baseline against eager too
    assert results[5]["ratios"] == {}  # failed: nothing to compare


def test_comparisons_against_baselines() -> None:
    rows = fake_doc()["comparisons"]
    # Only batch 1 has a baseline; both torch configurations of batch 1 are compared with it.
    assert [(r["config"], r["baseline"]) for r in rows] == [
        ("eager-fp32", "openvino-fp32"),
        ("default-fp32", "openvino-fp32"),
    ]
    assert rows[1]["network_p50_ratio"] == pytest.approx(10 / 5)
    assert rows[1]["network_throughput_ratio"] == pytest.approx(100 / 200)


def test_print_report_shows_figures_ratios_and_failures() -> None:
    from rich.console import Console

    console = Console(record=True, width=250)
    print_report(fake_doc(), console)
    text = console.export_text()
    assert "10.00 (0.50x)" in text  # default-fp32 e2e p50 and its ratio
    assert "failed: Boom: x" in text
    assert "openvino-fp32" in text and "2.00" in text  # the comparison table


def test_default_stem_names_device_dtypes_batches_and_torch() -> None:
    doc = fake_doc()
    major_minor = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    expected = f"bench-m-cpu-{torch.backends.cpu.get_cpu_capability().lower()}-fp32-b1-8-pt{major_minor}"
    assert default_stem(doc) == expected


def test_write_json_has_no_nan(tmp_path: Path) -> None:
    doc = {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": 2}}
    path = write_json(doc, tmp_path / "sub" / "x.json")
    assert json.loads(path.read_text()) == {"a": None, "b": [1.0, None], "c": {"d": 2}}


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the bench extra (pip install -e '.[bench]')")
    from yolostream.bench.plot import plot

    path = plot(fake_doc(), tmp_path / "x.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------- real runs


def test_cold_start_reports_a_failure_instead_of_raising(tmp_path: Path) -> None:
    result = cold_start(tmp_path / "none.pt2", device="cpu", threads=1, imgsz=64, batch=1)
    assert result["error"].startswith("exit 1")


def available_baselines() -> list[str]:
    if not export_available():
        return []
    return [n for n, r in (("onnxruntime", OnnxRuntimeRunner), ("openvino", OpenVINORunner)) if r.available()]


def test_suite_eager_batches_baselines_and_check_models(fixtures: Path) -> None:
    """Eager fp32 + bf16 at two batch sizes, the available baselines, a trained check model; no compilation."""
    baselines = tuple(available_baselines())
    config = BenchConfig(
        model=str(fixtures / "checkpoints" / "yolov8n-random.pt"),
        imgsz=128,  # the smallest size at which the shapes model finds something in the scene
        batches=(1, 2),
        modes=("eager",),
        dtypes=("fp32", "bf16"),
        iters=2,
        warmup=1,
        threads=1,
        baselines=baselines,
        check_images=(str(fixtures / "images" / "scene_1280x720.jpg"),),
        check_models=(str(fixtures / "checkpoints" / "yolo11n-shapes.pt"),),
    )
    doc = run_suite(config)
    torch_rows = [(r["name"], r["batch"]) for r in doc["results"] if r["kind"] == "torch"]
    assert torch_rows == [("eager-fp32", 1), ("eager-bf16", 1), ("eager-fp32", 2), ("eager-bf16", 2)]
    assert all(r["error"] is None for r in doc["results"])
    for r in doc["results"]:
        assert r["network"]["n"] == 2
        if (r["name"], r["kind"]) == ("eager-fp32", "torch"):
            assert all(v == 1.0 for v in r["ratios"].values() if v is not None)  # the reference over itself
            assert r["accuracy"]["detections"]["unchanged"]  # the reference against itself
            assert r["accuracy"]["network"]["score_dev"] == 0.0
    bf16 = next(r for r in doc["results"] if r["name"] == "eager-bf16")
    # bf16 keeps 8 bits of mantissa: scores must differ from fp32 (else the comparison compared fp32 with
    # itself), and not by more than the conf threshold's order, which would mean a broken cast.
    assert 0 < bf16["accuracy"]["network"]["score_dev"] < 0.1
    base = [r for r in doc["results"] if r["kind"] == "baseline"]
    assert {r["name"] for r in base} >= {f"{b}-fp32" for b in baselines}
    for r in base:
        # fp32 runtimes with other kernels and summation orders: ~1e-7 seen on scores in [0, 1] and ~1e-4 px
        # on boxes up to 128 px; 1e-4 and 1e-2 px leave room for other CPUs' kernels while any real
        # mismatch (a wrong normalisation, a dropped layer) is orders of magnitude above.
        if r["dtype"] == "fp32":
            assert r["accuracy"]["network"]["score_dev"] < 1e-4
            assert r["accuracy"]["network"]["box_dev_px"] < 1e-2
    assert {c["config"] for c in doc["comparisons"]} == ({"eager-fp32", "eager-bf16"} if baselines else set())
    assert [(c["model"], c["name"]) for c in doc["checks"]] == [("yolo11n-shapes.pt", "eager-bf16")]
    assert doc["checks"][0]["detections"]["n_ref"] > 0  # the trained model finds shapes in the scene


@pytest.mark.slow
def test_cli_compiled_run_writes_json_and_plot(fixtures: Path, tmp_path: Path) -> None:
    """The one compilation of this file, through the command line: the trained yolo11n-shapes (its detections
    have margins to the thresholds, unlike a random model's near-tied whole-frame boxes, where a 1e-7 change
    can flip NMS) at 128x128, the smallest size at which it finds shapes in the scene."""
    from yolostream.cli.main import main

    out, png = tmp_path / "r.json", tmp_path / "r.png"
    argv = ["bench", str(fixtures / "checkpoints" / "yolo11n-shapes.pt"), "--imgsz", "128", "--modes", "default"]
    argv += ["--iters", "3", "--warmup", "1", "--threads", "1", "--json", str(out), "--no-progress"]
    if importlib.util.find_spec("matplotlib") is not None:  # the plot itself is tested above, with its skip
        argv += ["--plot", str(png)]
    argv += ["--check-images", str(fixtures / "images" / "scene_1280x720.jpg")]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["environment"]["threads"] == 1 and doc["settings"]["iters"] == 3
    ref, compiled = doc["results"]
    assert (ref["name"], compiled["name"]) == ("eager-fp32", "default-fp32")  # the reference added
    assert ref["compile_s"] is None and compiled["compile_s"] > 0
    assert compiled["compile_s"] <= compiled["load_s"]  # compilation is part of the load, kept apart
    # Compiled fp32 equals eager within 1e-4 on scores in [0, 1] (the engine's own parity bound: Inductor
    # reorders and fuses fp32 sums), so the detections on the picture must come out the same.
    assert compiled["accuracy"]["network"]["score_dev"] <= 1e-4
    assert compiled["accuracy"]["detections"]["unchanged"] and compiled["accuracy"]["detections"]["n_ref"] > 0
    assert set(compiled["ratios"]) >= {"e2e.p50", "e2e.std", "network.p50", "throughput.e2e", "memory.peak_mib"}
    assert png.exists() == ("--plot" in argv)


# ---------------------------------------------------------------------------------------------- paired ratios


def test_paired_ratio_is_round_by_round() -> None:
    from yolostream.bench.backends import paired_ratio

    # The machine halves its speed every other round, alike for both: round by round ours is always 1.1x.
    theirs = [100.0, 200.0, 100.0, 200.0, 100.0]
    p = paired_ratio([1.1 * t for t in theirs], theirs)
    assert p is not None and p["median"] == pytest.approx(1.1) and p["rounds"] == 5
    assert p["q25"] == pytest.approx(1.1) and p["q75"] == pytest.approx(1.1)  # no spread: drift cancelled
    spread = paired_ratio([90.0, 100.0, 110.0, 120.0, 130.0], [100.0] * 5)
    assert spread == {"median": pytest.approx(1.1), "q25": pytest.approx(1.0), "q75": pytest.approx(1.2), "rounds": 5}
    assert paired_ratio([], []) is None
    assert paired_ratio([50.0], [100.0]) == {"median": 0.5, "q25": 0.5, "q75": 0.5, "rounds": 1}
    with pytest.raises(ValueError):
        paired_ratio([1.0, 2.0], [1.0])  # rounds of two rows always pair up


def _backend_row(name: str, dtype: str, rounds: list[float] | None) -> dict[str, Any]:
    row = fake_result(name, name.split("-")[0], dtype, 1, sorted(rounds or [10.0])[len(rounds or [10.0]) // 2])
    row.update(backend=name.split("-")[0], build_s=1.0, accuracy=None)
    if rounds is not None:
        row["round_p50_ms"] = {"network": rounds, "e2e": rounds}
    return row


def test_backend_ratios_pair_rounds_with_the_same_precision() -> None:
    from yolostream.bench.backends import _add_ratios, print_backends

    # Inductor is slower in the run's median (its slow rounds fell where OpenVINO's were fast: 30 against 20)
    # but 0.9x of OpenVINO in every round but one.
    results = [
        _backend_row("inductor-int8", "int8", [9.0, 18.0, 27.0, 36.0, 30.0]),
        _backend_row("openvino-int8", "int8", [10.0, 20.0, 30.0, 40.0, 20.0]),
        _backend_row("openvino-fp32", "fp32", None),  # a row without rounds (an older result): no paired ratio
    ]
    _add_ratios(results)
    assert results[0]["ratios"]["network_vs_openvino"] == pytest.approx(27 / 20)
    paired = results[0]["paired"]["network_vs_openvino"]
    assert paired["median"] == pytest.approx(0.9) and paired["q75"] == pytest.approx(0.9)
    assert results[0]["paired"]["network_vs_inductor"] is None  # no inductor-fp32 row in this run
    assert results[2]["paired"]["network_vs_openvino"] is None
    env = environment(torch.device("cpu"), threads=1)
    doc = {"model": "m.pt", "environment": env, "results": results, "note": ""}
    doc["settings"] = {"imgsz": 64, "batch": 1, "rounds": 5, "calls": 1}
    from rich.console import Console

    console = Console(record=True, width=250)
    print_backends(doc, console)
    text = console.export_text()
    assert "0.90x (0.90-0.90)" in text and "1.35x" in text  # paired beside the ratio of medians
    assert cpu_id() in text  # the title names the CPU generation
