"""What a run shows a person: log records through rich (rank zero only), and rich tables as text.

Tasks log with :mod:`logging`; Hydra's ``hydra/job_logging=rich`` sends the records to the terminal
through :class:`RankZeroRichHandler` and to ``run.log`` in the run folder
(:class:`RankZeroFileHandler`). Tables are rendered to
text with :func:`render` and logged, so the log file holds them too.
"""

from __future__ import annotations

import io
import logging
import shutil

from rich.console import Console, RenderableType
from rich.logging import RichHandler

from vrexp.ranks import is_rank_zero

WIDTH = 160  # wide enough for the result tables, also when the output is not a terminal


class RankZeroRichHandler(RichHandler):
    """A plain-message rich handler that drops records of every process but rank zero."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        width = shutil.get_terminal_size((WIDTH, 24)).columns
        super().__init__(
            level,
            console=Console(width=max(width, WIDTH), soft_wrap=True),
            show_time=False,
            show_level=False,
            show_path=False,
            markup=False,
            rich_tracebacks=False,
        )

    def emit(self, record: logging.LogRecord) -> None:
        if is_rank_zero():
            super().emit(record)


class RankZeroFileHandler(logging.FileHandler):
    """``run.log``, written by rank zero alone: the other ranks of a DDP run (which Lightning
    starts with the same command and run folder) never open the file."""

    def __init__(self, filename: str, mode: str = "a", encoding: str | None = None) -> None:
        super().__init__(filename, mode, encoding, delay=True)

    def emit(self, record: logging.LogRecord) -> None:
        if is_rank_zero():
            super().emit(record)


def render(renderable: RenderableType) -> str:
    """A rich renderable (a Table) as plain text, to log."""
    buffer = io.StringIO()
    Console(file=buffer, width=WIDTH, no_color=True, force_terminal=False).print(renderable)
    return buffer.getvalue().rstrip()
