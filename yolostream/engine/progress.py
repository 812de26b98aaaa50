"""A progress bar for compilation and export (one step per bucket)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


@contextmanager
def compile_progress(enabled: bool = True, what: str = "compiling") -> Iterator[Callable[[str, int, int], None]]:
    """Yields ``callback(bucket, done, total)`` driving a bar on stderr (a no-op when disabled)."""
    if not enabled:
        yield lambda bucket, done, total: None
        return
    columns = [
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[bucket]}"),
    ]
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(what, total=None, bucket="")

        def callback(bucket: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, bucket=f"bucket {bucket}" if bucket else "done")

        yield callback
