"""Reports of a bench/audit run: a self-contained HTML page and a Markdown twin with matplotlib figures."""

from .build import Report, build_report
from .predictions import read_predictions, write_predictions

__all__ = ["Report", "build_report", "read_predictions", "write_predictions"]
