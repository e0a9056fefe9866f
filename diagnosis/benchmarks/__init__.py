"""Benchmark protocols of ``shared/benchmarks.md`` implemented as library code (the CLI prints and saves them)."""

from __future__ import annotations

from diagnosis.benchmarks.baselines import BASELINES, Baseline, fit_baseline, predict_baseline
from diagnosis.benchmarks.p1 import MODES, P1Config, binary_metrics, choose_threshold, p1_tables, run_p1, score_modes
from diagnosis.benchmarks.p1_data import P1Data, P1Split, load_p1, rare_subsample
from diagnosis.benchmarks.p2 import P2_WAYS, p2_data, run_p2
from diagnosis.benchmarks.p5 import P5_WAYS, P5Config, run_p5

__all__ = ["BASELINES", "Baseline", "MODES", "P1Config", "P1Data", "P1Split", "P2_WAYS", "P5Config", "P5_WAYS", "binary_metrics", "choose_threshold", "load_p1",
           "fit_baseline", "p1_tables", "p2_data", "predict_baseline", "rare_subsample", "run_p1", "run_p2", "run_p5",
           "score_modes"]
