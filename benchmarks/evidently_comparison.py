"""Model-level false positives of Evidently's default data-drift verdicts and of Driftwarden's window tests on
the same stationary 20-feature model windows (issue 18).

Evidently runs only in a separate, benchmark-only virtualenv (it needs ``pandas<3``), never in the dev env::

    python3 -m venv /tmp/evvenv
    /tmp/evvenv/bin/pip install -q 'evidently==0.7.23' 'pandas<3' && /tmp/evvenv/bin/pip install -q -e .
    /tmp/evvenv/bin/python benchmarks/evidently_comparison.py [--reps 50]

Writes benchmarks/results/evidently_comparison.json and .md; progress goes to stderr.

Data: the stationary numeric and categorical 20-feature models of ``detection_quality.py``
(:func:`detection_quality.stationary_model_window`), a fresh reference per model window. Each window goes
through both:

- Evidently: ``Report([DataDriftPreset()]).run(current, reference)`` at its defaults (per-column test chosen by
  Evidently from the reference size and the number of distinct values; dataset drift when the share of drifted
  columns is >= 0.5). "any column" = its drifted-column count > 0; "dataset drift" = share >= 0.5. Its time
  covers building both ``Dataset`` objects and ``Report.run`` (which renders the report's plots).
- Driftwarden: the reference profiles, the window's bin counts and ``compare()`` with the Bonferroni count of
  ``ModelMonitor`` (:func:`detection_quality.drifted_tests`). Its time per window: bin counts + tests (the service
  keeps the profile), and with the reference profiling too.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detection_quality import (
    N_FEATURES,
    REFERENCE_SIZES,
    RESULTS,
    WINDOW_SIZES,
    drifted_tests,
    log,
    model_samplers,
    stationary_model_window,
    wilson_upper,
)

from stream.monitor.drift_stats import Thresholds
from stream.monitor.profiles import bin_counts, profile_categorical, profile_numeric

COLUMNS = [f"f{j}" for j in range(N_FEATURES)]


def evidently_verdict(kind: str, refs: list[np.ndarray], wins: list[np.ndarray]) -> dict[str, Any]:
    """Evidently's default DataDriftPreset on one model window: drifted-column count and share, the per-column
    methods it chose, and its seconds."""
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    from evidently import DataDefinition, Dataset, Report  # type: ignore[import-not-found,unused-ignore]
    from evidently.presets import DataDriftPreset  # type: ignore[import-not-found,unused-ignore]

    cols = {"numerical_columns": COLUMNS} if kind == "numeric" else {"categorical_columns": COLUMNS}
    ref_df = pd.DataFrame(dict(zip(COLUMNS, refs, strict=True)))
    cur_df = pd.DataFrame(dict(zip(COLUMNS, wins, strict=True)))
    t0 = time.perf_counter()
    definition = DataDefinition(**cols)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(cur_df, data_definition=definition),
        Dataset.from_pandas(ref_df, data_definition=definition),
    )
    seconds = time.perf_counter() - t0
    metrics = snapshot.dict()["metrics"]
    count = next(m["value"] for m in metrics if m["metric_name"].startswith("DriftedColumnsCount"))
    methods = [m["config"]["method"] for m in metrics if m["metric_name"].startswith("ValueDrift")]
    return {"count": int(count["count"]), "share": float(count["share"]), "methods": methods, "seconds": seconds}


def cell(kind: str, ref_n: int, win_n: int, reps: int, seed: int) -> dict[str, Any]:
    """One (kind, reference, window) cell: both verdicts on the same ``reps`` stationary model windows."""
    rng = np.random.default_rng(seed)
    samplers = model_samplers(kind)
    thresholds = Thresholds()
    ev_any = ev_dataset = ours = 0
    ev_seconds = ours_window_s = ours_total_s = 0.0
    methods: Counter[str] = Counter()
    drifted_columns = 0
    for _ in range(reps):
        refs, wins = stationary_model_window(samplers, rng, ref_n, win_n)
        t0 = time.perf_counter()
        profiles = [profile_numeric(x) if kind == "numeric" else profile_categorical(x) for x in refs]
        t1 = time.perf_counter()  # the service stores the reference profile: a window costs bins + tests
        counts = [bin_counts(p, w) for p, w in zip(profiles, wins, strict=True)]
        flagged = bool(drifted_tests(profiles, counts, thresholds))
        t2 = time.perf_counter()
        ours += flagged
        ours_window_s += t2 - t1
        ours_total_s += t2 - t0
        ev = evidently_verdict(kind, refs, wins)
        ev_any += ev["count"] > 0
        ev_dataset += ev["share"] >= 0.5
        drifted_columns += ev["count"]
        ev_seconds += ev["seconds"]
        methods.update(ev["methods"])
    return {
        "kind": kind, "reference": ref_n, "window": win_n, "model_windows": reps, "seed": seed,
        "evidently_any_column": ev_any, "evidently_any_column_rate": ev_any / reps,
        "evidently_any_column_upper95": wilson_upper(ev_any, reps),
        "evidently_dataset_drift": ev_dataset, "evidently_dataset_drift_rate": ev_dataset / reps,
        "evidently_dataset_drift_upper95": wilson_upper(ev_dataset, reps),
        "evidently_drifted_columns_per_window": drifted_columns / reps,
        "evidently_methods": dict(methods), "evidently_ms_per_window": 1000 * ev_seconds / reps,
        "ours_flagged": ours, "ours_rate": ours / reps, "ours_upper95": wilson_upper(ours, reps),
        "ours_ms_per_window": 1000 * ours_window_s / reps,
        "ours_ms_per_window_with_profiling": 1000 * ours_total_s / reps,
    }  # fmt: skip


def detection_quality_rows() -> dict[tuple[str, int, int], dict[str, Any]]:
    """Driftwarden's figures from detection_quality.json (more windows, other draws), keyed by cell."""
    path = RESULTS / "detection_quality.json"
    if not path.exists():
        return {}
    return {(r["kind"], r["reference"], r["window"]): r for r in json.loads(path.read_text()).get("fpr", [])}


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        "# Evidently's default data-drift verdicts vs Driftwarden's window tests",
        "",
        f"Made by `benchmarks/evidently_comparison.py` in a benchmark-only venv: evidently {m['evidently']}, "
        f"pandas {m['pandas']}, numpy {m['numpy']}, Python {m['python']}, {m['cpus']} shared CPUs; "
        f"{res['seconds']:.0f} s in all.",
        "",
        f"Stationary models of {N_FEATURES} features (those of `detection_quality.py`), a fresh reference per "
        "model window; every window goes through both. Evidently: `Report([DataDriftPreset()])` at its defaults; "
        "'any column': its drifted-column count > 0 (comparable to our model-level flag), 'dataset drift': share of "
        "drifted columns >= 0.5 (its verdict). Ours: `compare()` at `Thresholds()` with the Bonferroni count of "
        "`ModelMonitor`. Rates with the Wilson 95% upper end in brackets. Evidently's ms: both `Dataset`s + "
        "`Report.run` (it renders plots); ours: bin counts + tests of the window (the reference profile is "
        "stored), in brackets with the reference profiling. 'detection_quality': our rate from "
        "`detection_quality.json` (1,000-2,000 other windows per cell).",
        "",
        "| features | reference | window | windows | Evidently: any column | Evidently: dataset drift "
        "| Evidently: drifted columns per window | Evidently: per-column tests | ours | ours (detection_quality) "
        "| Evidently ms / window | ours ms / window |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    dq = detection_quality_rows()
    for r in res["cells"]:
        tests = ", ".join(f"{k} x{v // r['model_windows']}" if v % r["model_windows"] == 0 else f"{k} {v}"
                          for k, v in sorted(r["evidently_methods"].items()))  # fmt: skip
        d = dq.get((r["kind"], r["reference"], r["window"]))
        dq_cell = f"{d['fpr']:.2%} ({d['fpr_upper95']:.2%}) of {d['model_windows']:,}" if d else "-"
        lines.append(
            f"| {r['kind']} | {r['reference']:,} | {r['window']:,} | {r['model_windows']} "
            f"| {r['evidently_any_column_rate']:.1%} ({r['evidently_any_column_upper95']:.1%}) "
            f"| {r['evidently_dataset_drift_rate']:.1%} ({r['evidently_dataset_drift_upper95']:.1%}) "
            f"| {r['evidently_drifted_columns_per_window']:.2f} | {tests} "
            f"| {r['ours_rate']:.1%} ({r['ours_upper95']:.1%}) | {dq_cell} "
            f"| {r['evidently_ms_per_window']:.0f} | {r['ours_ms_per_window']:.1f} "
            f"({r['ours_ms_per_window_with_profiling']:.1f}) |"
        )
    lines += ["", "Per-column tests: Evidently's method names, 'x20' = all 20 columns in every window."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reps", type=int, default=50, help="model windows per cell (Evidently: ~1 s each)")
    args = parser.parse_args()
    import os

    import evidently  # type: ignore[import-not-found,unused-ignore]
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]

    res: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
                    "evidently": evidently.__version__, "cpus": os.cpu_count()},
        "reps": args.reps, "cells": [],
    }  # fmt: skip
    t0 = time.perf_counter()
    RESULTS.mkdir(exist_ok=True)
    for kind in ("numeric", "categorical"):
        for ref_n in REFERENCE_SIZES:
            for win_n in WINDOW_SIZES:
                r = cell(kind, ref_n, win_n, args.reps, seed=100 + len(res["cells"]))
                res["cells"].append(r)
                res["seconds"] = time.perf_counter() - t0
                log(f"{kind} ref={ref_n} win={win_n}: evidently any {r['evidently_any_column_rate']:.3f} "
                    f"dataset {r['evidently_dataset_drift_rate']:.3f} ({r['evidently_ms_per_window']:.0f} ms), "
                    f"ours {r['ours_rate']:.3f} ({r['ours_ms_per_window']:.1f} ms); {res['seconds']:.0f} s")
                (RESULTS / "evidently_comparison.json").write_text(json.dumps(res, indent=1))
    (RESULTS / "evidently_comparison.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
