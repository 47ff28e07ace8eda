"""A progress bar with images/s and ETA on a terminal; nothing when output is not a terminal."""

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
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:

        def start(total: int) -> Callable[[int], None]:
            task = bar.add_task(label, total=total, rate="-")

            def advance(count: int) -> None:
                bar.advance(task, count)
                speed = bar.tasks[task].speed
                bar.update(task, rate=f"{speed:.1f}" if speed else "-")

            return advance

        yield start
