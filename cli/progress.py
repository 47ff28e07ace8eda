"""A progress bar with images/s and ETA on a terminal; nothing when output is not a terminal.
On a cluster (``--engine ray``) it also shows how many workers are embedding."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def progress_bar(enabled: bool, label: str = "embedding") -> Iterator[Callable[[int], Callable[[int], None]] | None]:
    """Yield a ``progress(total) -> advance(n)`` factory for the embed API, or None when disabled."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} img/s"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[workers]}"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:

        def start(total: int) -> Callable[[int], None]:
            task = bar.add_task(label, total=total, rate="-", workers="")

            def advance(count: int, workers: int | None = None) -> None:
                bar.advance(task, count)
                speed = bar.tasks[task].speed
                bar.update(task, rate=f"{speed:.1f}" if speed else "-",
                           workers="" if workers is None else f"{workers} workers")

            return advance

        yield start
