"""Progress bars and console output (rich), quiet when asked or when output is JSON."""
from __future__ import annotations

import contextlib
import sys

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

console = Console(stderr=True)
_quiet = False


def set_quiet(q: bool) -> None:
    global _quiet
    _quiet = q


@contextlib.contextmanager
def progress_task(description: str, total: int):
    """Yields advance(n=1, **fields); shows a bar on stderr unless quiet."""
    if _quiet or total <= 0:
        yield lambda n=1, **kw: None
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, transient=not sys.stderr.isatty()) as p:
        tid = p.add_task(description, total=total, info="")

        def advance(n: int = 1, **fields) -> None:
            p.update(tid, advance=n, info=" ".join(f"{k} {v}" for k, v in fields.items()))

        yield advance


def warn(message: str) -> None:
    """A warning on stderr (shown even when quiet: JSON output goes to stdout)."""
    console.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False, soft_wrap=True)
