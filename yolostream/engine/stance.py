"""Dynamo's serving stance, shared by every compiled runner of the process.

Serving runs under ``set_stance("fail_on_recompile", skip_guard_eval_unsafe=True)``: a recompile raises
instead of stalling a camera, and only the guards that tell cache entries apart are evaluated -- each input
tensor's shape, strides, dtype and dispatch keys, which graph module, which bucket -- not the guards on
every frozen weight and module flag (~1 ms of a 70 ms yolov8n CPU call). The weights are constants of the
frozen graph, so their guards could not change what runs anyway; a wrong input still fails loudly.

The stance is process-global (not per thread), so it is reference-counted: the first runner in sets it,
the last out restores what was there. Compiling (a runner's warm-up) is a recompile of the same code
object under that stance, so it waits until no runner serves, and runners wait while one compiles.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

_cond = threading.Condition()
_serving = 0
_compiling = 0
_waiting_to_compile = 0
_restore: contextlib.ExitStack | None = None
_local = threading.local()  # .depth: this thread's open `serving` calls


@contextlib.contextmanager
def serving() -> Iterator[None]:
    """Run compiled calls under the serving stance (nestable, from any thread)."""
    global _serving, _restore
    with _cond:
        # A warm-up waiting for its turn goes first, so a steady stream of calls cannot starve it.
        _cond.wait_for(lambda: _compiling == 0 and _waiting_to_compile == 0)
        if _serving == 0:
            stack = contextlib.ExitStack()
            stack.enter_context(torch.compiler.set_stance("fail_on_recompile", skip_guard_eval_unsafe=True))
            _restore = stack
        _serving += 1
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1
        with _cond:
            _serving -= 1
            if _serving == 0 and _restore is not None:
                _restore.close()
                _restore = None
            _cond.notify_all()


@contextlib.contextmanager
def compiling() -> Iterator[None]:
    """Compile (warm up) with no runner serving: the default stance, exclusive of every `serving` call."""
    global _compiling, _waiting_to_compile
    if getattr(_local, "depth", 0):
        raise RuntimeError("cannot compile from inside a compiled call (it would wait for itself to finish)")
    with _cond:
        _waiting_to_compile += 1
        try:
            _cond.wait_for(lambda: _serving == 0)
        finally:
            _waiting_to_compile -= 1
        _compiling += 1
    try:
        yield
    finally:
        with _cond:
            _compiling -= 1
            _cond.notify_all()


def is_serving() -> bool:
    """Whether the serving stance is set now (tests, diagnostics)."""
    with _cond:
        return _serving > 0
