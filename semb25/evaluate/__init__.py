"""Evaluation: effectiveness, fidelity to the teacher, significance, the report."""

from semb25.evaluate.fidelity import fidelity
from semb25.evaluate.metrics import default_measures, evaluate_run, relevance_level
from semb25.evaluate.report import build_report, write_report
from semb25.evaluate.significance import confidence_interval, holm, paired_ttest

__all__ = [
    "build_report",
    "confidence_interval",
    "default_measures",
    "evaluate_run",
    "fidelity",
    "holm",
    "paired_ttest",
    "relevance_level",
    "write_report",
]
