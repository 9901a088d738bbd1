"""Result tables: markdown, CSV and a plot per table, for single runs and whole sweeps."""

from vrexp.reports.sweep import SweepTable, collect_rows
from vrexp.reports.tables import PlotSpec, format_markdown, write_table

__all__ = ["PlotSpec", "SweepTable", "collect_rows", "format_markdown", "write_table"]
