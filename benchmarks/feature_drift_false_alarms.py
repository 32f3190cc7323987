"""How often a window of a stationary stream is flagged as drifted by the feature tests, on the demo's models.

Run: ``.venv/bin/python benchmarks/feature_drift_false_alarms.py [--seeds 6] [--rate 400] [--window 6]``.

The demo's two models (`stream.demo.synthetic.Scenario`, no drift injected) at ``--rate`` events/s in total, windows
of ``--window`` seconds, each model's reference built from its first events as the worker builds it; every
window is closed through `ModelMonitor.close_window` and its drifted (feature, test) results are counted.
`tests/integration/test_demo.py` allows one early flag per run because of this rate.
"""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import UTC, datetime

import numpy as np

from stream.contracts.events import ModelSpec
from stream.demo.synthetic import Scenario
from stream.monitor.model_monitor import ModelMonitor
from stream.monitor.report import FEATURE_DRIFT_COLUMNS

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def false_alarms(seeds: int, rate: int, window_s: int, windows: int = 40) -> tuple[int, Counter[tuple[str, ...]]]:
    """Windows closed and drifted results per (model, feature, test) over ``seeds`` stationary runs."""
    window_ms = window_s * 1000
    t0 = 1_700_000_000_000 - 1_700_000_000_000 % window_ms
    flagged: Counter[tuple[str, ...]] = Counter()
    closed = 0
    for seed in range(seeds):
        scenario = Scenario(seed=seed, start_ms=t0, drift_at_ms=t0 + 10**12)
        events = scenario.predictions(rate * window_s * windows, rate_per_s=rate)
        for raw in scenario.specs():
            monitor_settings = {**raw.get("monitor", {}), "window_seconds": window_s}
            spec = ModelSpec.model_validate({**raw, "monitor": monitor_settings})
            own = [e for e in events if e["model_id"] == spec.model_id]
            monitor = ModelMonitor(spec)
            ts = np.array([e["timestamp"] for e in own], dtype=np.int64)
            kind = np.float64 if spec.task == "regression" else object
            preds = np.array([e["prediction"] for e in own], dtype=kind)
            scores = np.array([np.nan if e.get("score") is None else e["score"] for e in own], dtype=np.float64)
            for lo in range(0, len(own), 500):
                part = slice(lo, lo + 500)
                monitor.add_predictions([e["model_version"] for e in own[part]], ts[part],
                                        [e["features"] for e in own[part]], scores[part], preds[part],
                                        np.arange(lo, lo + ts[part].size))
            for start in sorted(set((ts - ts % window_ms).tolist()))[:-1]:
                report = monitor.close_window(spec.version, start, start + window_ms, {"": {}}, NOW)
                closed += 1
                for row in report.feature_drift:
                    result = dict(zip(FEATURE_DRIFT_COLUMNS, row, strict=True))
                    if result["drifted"] and not str(result["feature"]).startswith("__"):
                        flagged[(spec.model_id, str(result["feature"]), str(result["test"]))] += 1
    return closed, flagged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--rate", type=int, default=400, help="events/s over both models (the demo's default)")
    parser.add_argument("--window", type=int, default=6, help="window seconds (the demo test's)")
    args = parser.parse_args()
    closed, flagged = false_alarms(args.seeds, args.rate, args.window)
    total = sum(flagged.values())
    print(f"{closed} stationary windows, {total} drifted results ({total / max(closed, 1):.2%} per window)")
    for key, count in sorted(flagged.items()):
        print("  ", *key, count)


if __name__ == "__main__":
    main()
