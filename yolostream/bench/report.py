"""A bench document as a readable table (rich), a JSON file, and the file names it is kept under."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from yolostream.bench.environment import results_name


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _sci(value: float | None) -> str:
    """Deviations span 0 to 1e-7 to whole pixels: scientific notation keeps them comparable."""
    return "-" if value is None else f"{value:.1e}"


def _with_ratio(value: float | None, ratio: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" + ("" if ratio is None else f" ({ratio:.2f}x)")


def _verdict(det: dict[str, Any]) -> str:
    """``same (n)``, or how many of the reference detections were found again and how many came out."""
    if det["unchanged"]:
        return f"same ({det['n_ref']})"
    return f"[red]{det['matched']}/{det['n_ref']} match, {det['n_test']} found"


def _title(doc: dict[str, Any], what: str) -> str:
    env, size = doc["environment"], doc["settings"]["imgsz"]
    return (
        f"{what}: {doc['model']} {size}x{size} on {env['device_name']}, torch {env['torch']}, "
        f"{env['threads']} threads, {doc['settings']['iters']} iters (ratio to eager-fp32 in brackets)"
    )


def _table(title: str, columns: list[str], left: tuple[str, ...] = ("config", "detections")) -> Table:
    table = Table(title=title, title_justify="left")
    for c in columns:
        table.add_column(c, justify="left" if c in left else "right")
    return table


def speed_table(doc: dict[str, Any]) -> Table:
    """One row per configuration: latencies (ms) and throughputs, each with its ratio to eager fp32."""
    columns = ["config", "batch", "compile s", "e2e p50 ms", "e2e p99 ms", "e2e std ms", "net p50 ms", "net std ms"]
    table = _table(_title(doc, "speed"), [*columns, "img/s e2e", "img/s net"])
    for r in doc["results"]:
        if r.get("error"):
            table.add_row(r["name"], str(r["batch"]), f"[red]failed: {r['error'][:100]}")
            continue
        q = r.get("ratios", {})
        e2e, net, tput = r.get("e2e") or {}, r["network"], r["throughput"]
        table.add_row(
            r["name"],
            str(r["batch"]),
            _num(r.get("compile_s")),
            *(_with_ratio(e2e.get(k), q.get(f"e2e.{k}"), 2) for k in ("p50", "p99", "std")),
            *(_with_ratio(net[k], q.get(f"network.{k}"), 2) for k in ("p50", "std")),
            *(_with_ratio(tput.get(k), q.get(f"throughput.{k}")) for k in ("e2e", "network")),
        )
    return table


def resources_table(doc: dict[str, Any]) -> Table:
    """One row per configuration: memory, accuracy against eager fp32 and, on a GPU, launches and utilisation."""
    gpu = str(doc["settings"]["device"]).startswith("cuda")
    columns = ["config", "batch", "load s", "peak MiB", "score dev", "box dev px", "detections"]
    if gpu:
        columns += ["launches net", "launches e2e", "kernels net", "GPU util e2e %", "GPU util net %"]
    table = _table(_title(doc, "memory, accuracy" + (", GPU" if gpu else "")), columns)
    for r in doc["results"]:
        if r.get("error"):
            continue
        acc = r.get("accuracy") or {}
        net, det = acc.get("network") or {}, acc.get("detections")
        row = [r["name"], str(r["batch"]), _num(r.get("load_s"), 2)]
        row += [_with_ratio(r["memory"]["peak_mib"], r.get("ratios", {}).get("memory.peak_mib"), 0)]
        row += [_sci(net.get("score_dev")), _sci(net.get("box_dev_px")), "-" if det is None else _verdict(det)]
        if gpu:
            launches = (r.get("gpu") or {}).get("launches") or {}
            util = (r.get("gpu") or {}).get("utilization") or {}
            row += [str((launches.get(k) or {}).get("launches", "-")) for k in ("network", "e2e")]
            row += [str((launches.get("network") or {}).get("kernels", "-"))]
            row += [_num((util.get(k) or {}).get("mean"), 0) for k in ("e2e", "network")]
        table.add_row(*row)
    return table


def comparisons_table(doc: dict[str, Any]) -> Table | None:
    """Network-only p50 latency and throughput of each torch configuration over each baseline's."""
    if not doc["comparisons"]:
        return None
    title = "network only, torch configuration over baseline (latency < 1 or throughput > 1: torch faster)"
    table = _table(
        title, ["batch", "config", "baseline", "p50 latency ratio", "throughput ratio"], ("config", "baseline")
    )
    for c in doc["comparisons"]:
        table.add_row(
            str(c["batch"]),
            c["config"],
            c["baseline"],
            f"{c['network_p50_ratio']:.2f}",
            f"{c['network_throughput_ratio']:.2f}",
        )
    return table


def checks_table(doc: dict[str, Any]) -> Table | None:
    """Detections of the check models in each configuration against their own eager fp32."""
    if not doc["checks"]:
        return None
    pictures = ", ".join(doc["settings"]["check_images"])
    columns = ["model", "config", "detections", "box dev px", "conf dev", "score dev"]
    table = _table(
        f"check models: detections vs their eager fp32 on {pictures}", columns, ("model", "config", "detections")
    )
    for c in doc["checks"]:
        if c.get("error"):
            table.add_row(c["model"], c["name"], f"[red]failed: {c['error'][:80]}", "", "", "")
            continue
        det, net = c["detections"], c["network"]
        table.add_row(
            c["model"],
            c["name"],
            _verdict(det),
            _sci(det["box_dev_px"]),
            _sci(det["conf_dev"]),
            _sci(net["score_dev"]),
        )
    return table


def cold_start_lines(doc: dict[str, Any]) -> list[str]:
    """One line per AOT package: load to first result in a fresh process."""
    lines = []
    for r in doc["results"]:
        cold = r.get("cold_start")
        if not cold:
            continue
        if "error" in cold:
            lines.append(f"{r['name']} batch {r['batch']}: cold start failed: {cold['error']}")
        else:
            lines.append(
                f"{r['name']} batch {r['batch']}: AOT package load to first result "
                f"{cold['load_to_first_result_s']:.2f}s "
                f"(load {cold['load_s']:.2f}s, first call {cold['first_result_s']:.2f}s; "
                f"whole process with imports {cold['process_s']:.2f}s)"
            )
    return lines


def print_report(doc: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    for table in (speed_table(doc), resources_table(doc), comparisons_table(doc), checks_table(doc)):
        if table is not None:
            console.print(table)
    for line in cold_start_lines(doc):
        console.print(line)


def _finite(obj: Any) -> Any:
    """NaN/inf to None: JSON has no such numbers (Python would write the non-standard ``NaN``)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(doc: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(doc), indent=2, allow_nan=False) + "\n")
    return path


def default_stem(doc: dict[str, Any]) -> str:
    """File name (no suffix) a document is kept under, from its model, device, dtypes and torch version."""
    settings = doc["settings"]
    return results_name(Path(doc["model"]).stem, doc["environment"], list(settings["dtypes"]), settings["batches"])
