"""Console output (rich): results on stdout, diagnostics and progress on stderr.

- `out`: what a command computes (tables, verdicts, the "next:" command): stdout, so that
  `torch2mcu verify ... > file` captures it.
- `console`: progress, warnings, notes: stderr. Quiet (--quiet, --json) hides progress and notes;
  warnings and errors always show.
When a stream is not a terminal, lines are never hard-wrapped (a command stays on one line) and
progress is a few plain lines instead of a redrawn bar.
"""
from __future__ import annotations

import contextlib
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)
_quiet = False
# Width for tables when the stream is a file or pipe: wide enough that nothing is cut or wrapped.
PIPE_WIDTH = 200
# Seconds between plain progress lines when stderr is not a terminal.
PLAIN_PROGRESS_EVERY = 10.0


def set_quiet(q: bool) -> None:
    global _quiet
    _quiet = q


def configure() -> None:
    """Fit both consoles to their streams as they are now (the CLI calls this first)."""
    for c in (console, out):
        c.soft_wrap = not c.is_terminal
        c.width = None if c.is_terminal else PIPE_WIDTH  # None: follow the terminal


def note(message: str) -> None:
    """A diagnostic line on stderr (hidden when quiet); `message` may hold rich markup."""
    if not _quiet:
        console.print(message)


@contextlib.contextmanager
def progress_task(description: str, total: int):
    """Yields advance(n=1, **fields): a bar on a terminal, plain lines otherwise; nothing when
    quiet."""
    if _quiet or total <= 0:
        yield lambda n=1, **kw: None
        return
    if not console.is_terminal:
        yield from _plain_progress(description, total)
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, transient=False) as p:
        tid = p.add_task(description, total=total, info="")

        def advance(n: int = 1, **fields) -> None:
            p.update(tid, advance=n, info=" ".join(f"{k} {v}" for k, v in fields.items()))

        yield advance


def _plain_progress(description: str, total: int):
    t0 = last = time.monotonic()
    done = 0
    state = {}

    def advance(n: int = 1, **fields) -> None:
        nonlocal done, last
        done += n
        state.update(fields)
        now = time.monotonic()
        if now - last >= PLAIN_PROGRESS_EVERY and done < total:
            last = now
            eta = (now - t0) / done * (total - done)
            extra = "".join(f", {k} {v}" for k, v in state.items())
            console.print(escape(f"{description}: {done}/{total}{extra}, "
                                 f"{now - t0:.0f} s, about {eta:.0f} s left"))

    yield advance
    extra = "".join(f", {k} {v}" for k, v in state.items())
    console.print(escape(f"{description}: {done}/{total}{extra} in {time.monotonic() - t0:.1f} s"))


def warn(message: str) -> None:
    """A warning on stderr (shown even when quiet: JSON output goes to stdout)."""
    console.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)
