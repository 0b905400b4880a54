"""Serial execution: every training in this process, one after another (the default)."""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

from alife_nas.executors._base import Progress, ProgressFn, Task, score_safely


class SerialExecutor:
    """Trains each task in turn with one scorer (one trainer: the data set stays on the device)."""

    slots = 1

    def __init__(self, scorer: Callable[..., dict]) -> None:
        self.scorer = scorer

    def run(self, tasks: Sequence[Task], on_progress: ProgressFn | None = None) -> Iterator[tuple[Task, dict]]:
        for task in tasks:
            on_epoch = None
            if on_progress is not None:
                on_progress(Progress(0, task))
                on_epoch = _epoch_reporter(on_progress, task)
            yield task, score_safely(self.scorer, task, on_epoch)
        if on_progress is not None and tasks:
            on_progress(Progress(0, None))

    def close(self) -> None:
        pass


def _epoch_reporter(on_progress: ProgressFn, task: Task) -> Callable[[int, int, float], None]:
    return lambda epoch, max_epochs, val: on_progress(Progress(0, task, epoch, max_epochs, val))
