"""The serving stance (`yolostream.engine.stance`): shared by runners and threads, exclusive of compiling,
and the differentiating guards it keeps still pick the right engine and bucket and reject a wrong input."""

from __future__ import annotations

import threading

import pytest
import torch
from candidate_rows import rows_match  # tests/candidate_rows.py
from torch._dynamo import eval_frame

from yolostream.api import load
from yolostream.engine import stance
from yolostream.errors import ShapeError


def _stance_now() -> tuple[str, bool]:
    return eval_frame._stance.stance, eval_frame._is_skip_guard_eval_unsafe_stance()


def test_nested_and_overlapping_calls_share_one_stance():
    assert _stance_now() == ("default", False) and not stance.is_serving()
    inside, release, done = threading.Event(), threading.Event(), threading.Event()

    def other_thread() -> None:
        with stance.serving():
            inside.set()
            release.wait(5)
        done.set()

    t = threading.Thread(target=other_thread)
    with stance.serving():
        assert _stance_now() == ("fail_on_recompile", True)
        with stance.serving():  # nested: still on after the inner exit
            pass
        assert _stance_now() == ("fail_on_recompile", True)
        t.start()
        assert inside.wait(5)
    # This thread left first: the other is still serving, so the stance must stay (a per-thread
    # set_stance would have restored "default" under it here).
    assert _stance_now() == ("fail_on_recompile", True) and stance.is_serving()
    release.set()
    assert done.wait(5)
    t.join()
    assert _stance_now() == ("default", False) and not stance.is_serving()


def test_compiling_waits_for_serving_calls_and_blocks_new_ones():
    order: list[str] = []
    seen: list[tuple[str, bool]] = []
    serving_in, compile_started = threading.Event(), threading.Event()
    release = threading.Event()

    def server() -> None:
        with stance.serving():
            serving_in.set()
            release.wait(5)
            order.append("serve done")

    def compiler() -> None:
        compile_started.set()
        with stance.compiling():
            order.append("compile")
            seen.append(_stance_now())  # checked below: an assert in this thread would not fail the test

    s = threading.Thread(target=server)
    s.start()
    assert serving_in.wait(5)
    c = threading.Thread(target=compiler)
    c.start()
    assert compile_started.wait(5)
    c.join(0.2)
    assert c.is_alive() and order == []  # waits while a call is serving
    release.set()
    s.join(5)
    c.join(5)
    assert order == ["serve done", "compile"]
    assert seen == [("default", False)]  # compiled under the default stance, not the serving one


def test_compiling_inside_a_serving_call_raises_instead_of_deadlocking():
    with stance.serving(), pytest.raises(RuntimeError, match="inside a compiled call"), stance.compiling():
        pass
    assert not stance.is_serving()


@pytest.mark.slow
def test_skipped_guards_still_tell_engines_and_buckets_apart(fixtures):
    # Two engines of the same graph class (one code object, one cache) with a bucket of the same shape,
    # and one with two buckets: with only the differentiating guards evaluated, every call must still run
    # its own engine's entry for its own shape -- checked against each graph run eagerly.
    torch._dynamo.reset()
    ckpt = fixtures / "checkpoints"
    a = load(ckpt / "yolo11n-shapes.pt", imgsz=64, compile="default", buckets=["1x64x64", "1x32x64"])
    b = load(ckpt / "yolov8n-random.pt", imgsz=64, compile="default", buckets=["1x64x64"])
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        square = torch.randint(0, 256, (1, 3, 64, 64), generator=g, dtype=torch.uint8)
        wide = torch.randint(0, 256, (1, 3, 32, 64), generator=g, dtype=torch.uint8)
        conf = torch.tensor(0.001)
    for runner, x in [(a.runner, square), (b.runner, square), (a.runner, wide), (b.runner, square), (a.runner, square)]:
        out = runner(x, conf)
        with torch.inference_mode():
            ref = runner.graph(x, conf)
        assert int(out.valid.sum()) > 0
        # Rows are matched, not compared in place: near-equal scores may sort in either order. Inductor
        # reorders float sums: ~1e-7 relative (see test_engine.test_compiled_equals_eager), hence 1e-4.
        assert rows_match(out, ref, box_tol=64 * 1e-4, score_tol=1e-4), "a compiled row has no eager counterpart"
    with pytest.raises(ShapeError, match="takes uint8"):
        a.runner(square.float(), conf)
    assert _stance_now() == ("default", False)
