"""An Inductor graph pass for INT8 graphs with bf16 float parts: the int8 convolutions' biases kept in fp32.

Under bf16 autocast (`engine.backends.int8_float_parts`) the traced convolutions take a bf16 bias, and
Inductor's freezing folds it into a bf16 constant. oneDNN's int8 convolution wants an fp32 bias, so ATen
converts that constant back on every call: one allocation and one conversion per convolution (57 in yolov8n;
under the profiler, AVX-512 + AMX, the ATen work outside the kernels fell from 3.0 to 0.7 ms per call without
them). This pass stores the same values (the bf16-rounded bias, widened once) as fp32 constants, so every result
is bit-identical; interleaved call by call without the profiler, yolov8s network time 0.97-0.98x (yolov8n
0.98-0.99x, inside that A/B's noise).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files


class FP32ConvBias(CustomGraphPass):
    """``post_grad_custom_pre_pass``: replaces each bf16 bias constant of an int8 convolution by its fp32 copy."""

    def __call__(self, graph: torch.fx.Graph) -> None:
        module = graph.owning_module
        if module is None:
            return
        widened: dict[torch.fx.Node, torch.fx.Node] = {}
        for node in list(graph.nodes):
            index = _bias_index(node)
            bias = node.args[index] if index is not None and index < len(node.args) else None
            if not isinstance(bias, torch.fx.Node) or bias.op != "get_attr":
                continue
            value = _attr(module, str(bias.target))
            if not isinstance(value, torch.Tensor) or value.dtype != torch.bfloat16:
                continue
            if bias not in widened:
                name = f"{str(bias.target).replace('.', '_')}_fp32"
                module.register_buffer(name, value.float())
                with graph.inserting_after(bias):
                    widened[bias] = graph.get_attr(name)
                if "val" in bias.meta:
                    widened[bias].meta["val"] = bias.meta["val"].to(torch.float32)
            node.update_arg(index, widened[bias])  # type: ignore[arg-type]
        for old in widened:
            if not old.users:
                graph.erase_node(old)

    def uuid(self) -> Any:
        return get_hash_for_files((__file__,))


def with_bias_pass(float_parts: str | None, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Inductor ``options`` for an INT8 graph: plus `FP32ConvBias` when its float parts are bf16 (a
    ``post_grad_custom_pre_pass`` the caller set wins)."""
    out = dict(options or {})
    if float_parts == "bf16" and "post_grad_custom_pre_pass" not in out:
        out["post_grad_custom_pre_pass"] = FP32ConvBias()
    return out


def _bias_index(node: torch.fx.Node) -> int | None:
    """Position of the ``bias`` argument when ``node`` calls one of oneDNN's int8 convolutions, else None."""
    if node.op != "call_function" or not str(node.target).startswith("onednn.qconv"):
        return None
    names = [a.name for a in node.target._schema.arguments]  # type: ignore[union-attr]
    return names.index("bias") if "bias" in names else None


def _attr(module: torch.nn.Module, target: str) -> Any:
    value: Any = module
    for part in target.split("."):
        value = getattr(value, part, None)
    return value
