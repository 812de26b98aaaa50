"""Backends behind the same `Detector`: OpenVINO, ONNX Runtime and AOTInductor give eager fp32's detections on
the fixtures; the runner around another runtime routes buckets like the compiled engine; bad choices fail clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from yolostream.api import load
from yolostream.bench.accuracy import compare_detections
from yolostream.bench.backends import parse_backends
from yolostream.engine.backends import backend_available
from yolostream.engine.buckets import Bucket
from yolostream.engine.external import BranchNetwork, ExternalNetwork, ExternalRunner
from yolostream.engine.runtime import usable_cores
from yolostream.errors import ConfigError, ShapeError
from yolostream.graph import InferenceGraph

MODELS = ["yolo11n-shapes", "yolo26n-shapes"]
IMGSZ = 320  # what the shapes models were trained at; keeps the exports small


def _pictures(fixtures):
    return [*sorted((fixtures / "images" / "synth").glob("*.jpg")), *sorted((fixtures / "images").glob("scene_*.jpg"))]


@pytest.fixture(scope="module")
def references(fixtures):
    return {name: load(fixtures / "checkpoints" / f"{name}.pt", imgsz=IMGSZ) for name in MODELS}


# --- the runner around another runtime, with a torch "runtime" (no export) ---------------------------------


def _torch_session(model, one2one=False):
    branch = BranchNetwork(model, one2one)
    return lambda a: branch(torch.from_numpy(a)).numpy()


def test_external_runner_gives_the_eager_graph_candidates(references):
    ref = references["yolo11n-shapes"]
    buckets = [Bucket(1, IMGSZ, IMGSZ), Bucket(2, IMGSZ, IMGSZ)]
    network = ExternalNetwork({b: _torch_session(ref.model) for b in buckets}, one2one=False)
    runner = ExternalRunner(network, InferenceGraph(network, ref.graph_config), backend="fake", dtype="fp32")
    x = torch.randint(0, 256, (1, 3, IMGSZ, IMGSZ), dtype=torch.uint8)
    conf = torch.tensor(0.01)
    with torch.inference_mode():
        # An external network gives the decoded [B, 4 + nc, A] output: the graph's all-scores path is the
        # code around it (`InferenceGraph.forward` takes the per-level path only for networks with levels).
        want, got = ref.graph.all_scores(ref.graph.network_input(x), conf), runner(x, conf)
    # Same torch code around the same network weights: bit-identical, no tolerance needed.
    for a, b in zip(want, got, strict=True):
        assert torch.equal(a, b)
    assert runner.bucket_for(2, IMGSZ, IMGSZ) == Bucket(2, IMGSZ, IMGSZ) and runner.max_batch == 2


def test_external_runner_outside_the_buckets(references):
    ref = references["yolo11n-shapes"]
    network = ExternalNetwork({Bucket(1, IMGSZ, IMGSZ): _torch_session(ref.model)}, one2one=False)
    graph = InferenceGraph(network, ref.graph_config)
    x = torch.full((1, 3, IMGSZ + 32, IMGSZ), 114, dtype=torch.uint8)
    strict = ExternalRunner(network, graph, backend="fake", dtype="fp32")
    with pytest.raises(ShapeError, match=r"fits none of the fake buckets \(1x320x320\)"):
        strict(x, torch.tensor(0.25))
    lenient = ExternalRunner(network, graph, backend="fake", dtype="fp32", fallback=ref.graph, outside="eager")
    assert lenient(x, torch.tensor(0.25)).boxes.shape[0] == 1  # ran the eager fp32 graph instead


def test_external_network_refuses_another_head_branch(references):
    network = ExternalNetwork({Bucket(1, IMGSZ, IMGSZ): _torch_session(references["yolo26n-shapes"].model)}, False)
    with pytest.raises(ShapeError, match="one2one=False"):
        network(torch.zeros(1, 3, IMGSZ, IMGSZ), one2one=True)


# --- choices that cannot work ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "tensorrt"}, "unknown backend 'tensorrt'"),
        ({"backend": "onnxruntime", "dtype": "int8"}, "runs fp32, not 'int8'"),
        ({"backend": "openvino", "compile": "max-autotune"}, "applies to the inductor backend"),
        ({"backend": "inductor", "dtype": "int8", "outside": "eager"}, "outside='eager' is not supported"),
        ({"backend": "openvino", "inductor_options": {"cpp_wrapper": True}}, "apply to the inductor backend"),
        ({"inductor_options": {"cpp_wrapper": True}}, "only apply to a compiled engine"),
        ({"compile": "aoti", "outside": "eager"}, "compile='aoti' serves only its buckets"),
    ],
)
def test_bad_backend_choices(fixtures, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        load(fixtures / "checkpoints" / "yolo11n-shapes.pt", imgsz=IMGSZ, calib=_pictures(fixtures)[:1], **kwargs)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (["tensorrt"], "unknown backend"),
        (["onnxruntime-int8"], "runs fp32, not 'int8'"),
        (["openvino-fp32+cpp_wrapper"], "inductor only"),
        (["inductor-fp32+turbo"], "unknown variant"),
    ],
)
def test_parse_backends_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_backends(text)


def test_parse_backends_expands_to_what_runs_here():
    configs = parse_backends(["all", "inductor-fp32+cpp_wrapper"])
    names = [c.name for c in configs]
    assert names[-1] == "inductor-fp32+cpp_wrapper"
    assert all(backend_available(c.backend, c.dtype) for c in configs)
    # bf16 is a candidate only with native bf16 (emulated it is several times slower than fp32).
    assert ("inductor-bf16" in names) == backend_available("inductor", "bf16")


_BUILT: list[dict] = []


class _Recorder:
    """Stands in for `CompiledRunner`: records what it was built with (in `_BUILT`), compiles nothing."""

    def __init__(self, graph, buckets, mode="default", **kwargs):
        _BUILT.append({"mode": mode, "graph": graph, **kwargs})


@pytest.mark.parametrize(
    "route", [{"compile": "default"}, {"backend": "inductor"}, {"backend": "inductor", "dtype": "bf16"}]
)
def test_inductor_options_reach_the_compiler(fixtures, monkeypatch, route):
    # `bench --backends` variants (cpp_wrapper, no-freezing, ...) go through `load` like every other row: the
    # settings must arrive at the runner on both the plain compile path and the backend path.
    import yolostream.engine.compiled as compiled

    monkeypatch.setattr(compiled, "CompiledRunner", _Recorder)
    _BUILT.clear()
    options = {"cpp_wrapper": True, "freezing": False}
    load(fixtures / "checkpoints" / "yolo11n-shapes.pt", imgsz=IMGSZ, inductor_options=options, **route)
    assert len(_BUILT) == 1 and _BUILT[0]["inductor_options"] == options


# --- the real runtimes: same detections as eager fp32 ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "extra"),
    [("openvino", {}), ("onnxruntime", {}), ("inductor", {"compile": "aoti"})],
    ids=["openvino", "onnxruntime", "inductor-aoti"],
)
@pytest.mark.parametrize("name", MODELS)
def test_backend_detections_match_eager(fixtures, references, name, backend, extra):
    if not backend_available(backend):
        pytest.skip(f"{backend} not installed")
    ref = references[name]
    det = load(fixtures / "checkpoints" / f"{name}.pt", imgsz=IMGSZ, backend=backend, **extra)
    assert det.compiled and det.runner.backend == backend
    if extra:  # AOTInductor-compiled at load, served in process: the package was a temporary file
        assert det.runner.mode == "aoti" and set(det.runner.build_s) == {f"1x{IMGSZ}x{IMGSZ}"}
    for path in _pictures(fixtures):
        image = np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))[..., ::-1])  # BGR, as cameras give
        want, got = ref(image, bgr=True)[0], det(image, bgr=True)[0]
        diff = compare_detections(want, got, image=path.name)
        assert diff.unchanged, diff.changes
        # Every runtime computes in fp32 with other summation orders than eager torch (Inductor: fused oneDNN
        # convolutions): ~2e-4 px and ~1e-6 in confidence were measured; 0.01 px / 1e-4 leave room for other
        # CPUs' kernels and still catch any real difference.
        assert diff.box_dev_px <= 0.01 and diff.conf_dev <= 1e-4


# --- backend="auto" through `load`: the real wiring of the choice, its cache key and its log line ---------------


@pytest.fixture
def keep_threads():
    """`load(threads=N)` sets torch's process-wide thread count: give the next tests back what they had."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_auto_load_keys_the_choice_by_this_cpu_and_threads(fixtures, monkeypatch, caplog, keep_threads):
    """`load(backend="auto")` through its real wiring up to the selection, which is faked here (building and
    timing every backend takes minutes; `tests/test_auto.py` tests the selection and its cache): the key names
    this CPU and the thread count asked for, and the log line says them."""
    from yolostream.engine import auto
    from yolostream.engine.runtime import cpu_id

    seen: list[tuple[list, dict]] = []

    def fake_select(cands, buckets, key, **kwargs):
        seen.append((list(cands), key))
        return auto.Choice("openvino", "fp32", object(), [], False, "faked", auto.cache_path(key))

    monkeypatch.setattr(auto, "select", fake_select)
    path = fixtures / "checkpoints" / "yolo11n-shapes.pt"
    with caplog.at_level("INFO", logger="yolostream"):
        load(path, imgsz=IMGSZ, backend="auto", dtype="fp32", threads=1)
        load(path, imgsz=IMGSZ, backend="auto", dtype="fp32")
    (cands, key1), (_, key2) = seen
    assert ("openvino", "fp32") in cands or not backend_available("openvino")
    assert key1["cpu"] == key2["cpu"] == cpu_id()
    assert key1["threads"] == 1 and key2["threads"] == usable_cores()  # unset: what the runners will get
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("auto backend:")]
    assert len(lines) == 2 and f"{cpu_id()}, 1 threads" in lines[0]
