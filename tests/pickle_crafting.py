"""Crafting torch.save-style zips whose pickles name classes nobody can import (fake Ultralytics modules,
malicious calls): test helpers for the checkpoint readers."""

from __future__ import annotations

import pickle
import types
from pathlib import Path
from typing import Any

import torch

# ---------------------------------------------------------------------------------------------------------
# Crafting torch.save zips that hold classes nobody can import (fake Ultralytics modules, malicious calls).
# torch.save writes the real zip layout; a pure-Python pickler lets us emit any GLOBAL name we like.


class FakeGlobal:
    """Pickled as the global `module.name` (GLOBAL, or STACK_GLOBAL when `stack`), whatever that names."""

    def __init__(self, module: str, name: str, stack: bool = False):
        self.module, self.name, self.stack = module, name, stack

    def __call__(self, *args: Any) -> None:  # pickle insists that a reduce function be callable
        raise AssertionError("never called")


class FakeCall:
    """Pickled as REDUCE: the unpickler would call `func(*args)`."""

    def __init__(self, func: FakeGlobal, args: tuple):
        self.func, self.args = func, args


class FakeObject:
    """Pickled like a module instance: NEWOBJ of `cls`, then BUILD with `state`."""

    def __init__(self, cls: FakeGlobal, state: dict):
        self.cls, self.state = cls, state


class CraftingPickler(pickle._Pickler):  # the pure-Python pickler: its save() can be extended
    def save(self, obj: Any, save_persistent_id: bool = True) -> None:
        if isinstance(obj, FakeGlobal):
            if obj.stack:
                super().save(obj.module)
                super().save(obj.name)
                self.write(pickle.STACK_GLOBAL)
            else:
                self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        elif isinstance(obj, FakeCall):
            self.save(obj.func)
            self.save(obj.args)
            self.write(pickle.REDUCE)
        elif isinstance(obj, FakeObject):
            if id(obj) in self.memo:
                self.write(self.get(self.memo[id(obj)][0]))
                return
            self.save(obj.cls)
            self.save(())
            self.write(pickle.NEWOBJ)
            self.memoize(obj)
            self.save(obj.state)
            self.write(pickle.BUILD)
        else:
            super().save(obj, save_persistent_id)


CRAFTING = types.ModuleType("crafting_pickle")
CRAFTING.Pickler = CraftingPickler


def craft(path: Path, obj: Any, protocol: int = 2) -> Path:
    """torch.save's zip layout around a pickle that may name any global."""
    torch.save(obj, path, pickle_module=CRAFTING, pickle_protocol=protocol)
    return path


def fake_module(cls: str, params=None, buffers=None, children=None, nonpersistent=(), **attrs) -> FakeObject:
    """A pickled nn.Module of class `cls`, with the attribute layout nn.Module pickles."""
    module, name = cls.rsplit(".", 1)
    state = {
        "training": False,
        "_parameters": dict(params or {}),
        "_buffers": dict(buffers or {}),
        "_non_persistent_buffers_set": set(nonpersistent),
        "_modules": dict(children or {}),
        **attrs,
    }
    return FakeObject(FakeGlobal(module, name), state)


def tiny_model(fill: float, names: dict | None = None) -> FakeObject:
    """A 2-layer fake DetectionModel whose conv weight is all `fill` (fp16, as Ultralytics stores it)."""
    conv = fake_module(
        "torch.nn.modules.conv.Conv2d",
        params={"weight": torch.nn.Parameter(torch.full((2, 3, 1, 1), fill, dtype=torch.float16)), "bias": None},
        kernel_size=(1, 1),
    )
    bn = fake_module(
        "torch.nn.modules.batchnorm.BatchNorm2d",
        params={"weight": torch.nn.Parameter(torch.ones(2).half()), "bias": torch.nn.Parameter(torch.zeros(2).half())},
        buffers={
            "running_mean": torch.tensor([0.5, -0.5]).half(),
            "running_var": torch.tensor([2.0, 4.0]).half(),
            "num_batches_tracked": torch.tensor(7),
            "scratch": torch.zeros(3),  # non-persistent: state_dict() leaves it out
            "gone": None,  # a None buffer: left out too
        },
        nonpersistent={"scratch"},
        eps=0.001,
    )
    block = fake_module(
        "ultralytics.nn.modules.conv.Conv",
        children={"conv": conv, "bn": bn, "act": None},
        f=-1,
        i=0,
        anchors=torch.zeros(2),  # a tensor attribute: neither in state_dict nor in modules' plain attributes
        _private=1,
    )
    seq = fake_module("torch.nn.modules.container.Sequential", children={"0": block})
    return fake_module(
        "ultralytics.nn.tasks.DetectionModel",
        children={"model": seq},
        yaml={"nc": 2, "backbone": [[-1, 1, "Conv", [16, 3, 2]]], "scales": {"n": (0.5, 0.25, 1024)}},
        names=names or {0: "cat", 1: "dog"},
        stride=torch.tensor([8.0, 16.0, 32.0]),
    )
