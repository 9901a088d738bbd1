"""Result tables: markdown, CSV and a plot per table, for single runs and whole sweeps; the HTML
report of a scoring run."""

from vrexp.reports.score_report import (
    ReportItem,
    render_score_report,
    report_items,
    write_score_report,
)
from vrexp.reports.sweep import SweepTable, collect_rows
from vrexp.reports.tables import PlotSpec, format_markdown, write_table

__all__ = [
    "PlotSpec",
    "ReportItem",
    "SweepTable",
    "collect_rows",
    "format_markdown",
    "render_score_report",
    "report_items",
    "write_score_report",
    "write_table",
]
