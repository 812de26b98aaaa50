"""A progress bar per training epoch (rich), with the running mean losses and the learning rate."""

from __future__ import annotations

from types import TracebackType

from torch import Tensor


class EpochProgress:
    """``with EpochProgress(epoch, epochs, batches) as bar: bar.update(mean_items, lr)`` once per batch.
    Disabled (no output at all) with ``enabled=False``, e.g. in tests or when logging to a file."""

    def __init__(self, epoch: int, epochs: int, batches: int, enabled: bool = True, third: str = "dfl") -> None:
        self.enabled, self.third = enabled, third
        self.label = f"epoch {epoch + 1}/{epochs}"
        self.batches = batches
        self._progress = None

    def __enter__(self) -> EpochProgress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[losses]}"),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self.batches, losses="")
        return self

    def update(self, mean_items: Tensor, lr: float) -> None:
        if self._progress is None:
            return
        box, cls, third = (float(v) for v in mean_items)
        text = f"box {box:.3f}  cls {cls:.3f}  {self.third} {third:.3f}  lr {lr:.2e}"
        self._progress.update(self._task, advance=1, losses=text)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
