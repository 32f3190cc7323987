"""Label-free performance estimation on synthetic streams with covariate shift and delayed labels.

Run ``python benchmarks/performance_estimation.py [--seed N]`` from the repository root. Writes
benchmarks/results/performance_estimation.json and .md.

Each stream has ``WINDOWS`` windows of ``PER_WINDOW`` predictions; the labels of window ``w`` arrive
``DELAY`` windows later (then teach the calibrator, or the error model). After window ``SHIFT_AT`` the inputs
drift (covariate shift: ``P(y | x)`` is unchanged), moving mass towards the decision boundary, so accuracy
and ROC AUC fall (binary) and the MAE rises (regression). Each window is estimated when it closes, with what
the labels delivered so far taught, exactly as the aggregator does (`stream.metrics.estimation`), and compared
with the realised metric once its labels are in (scikit-learn). The analytic expectation (the estimate an
oracle knowing the true ``P(y | x)`` would make, i.e. CBPE with perfect calibration, NannyML's method) is
reported beside it. Rules: an estimate rule fires at a window's close when the estimate crosses the
threshold; the label rule on the realised metric can only fire once the window's labels arrived (``DELAY``
windows later). "Windows earlier" is the difference in wall-clock windows between the two first firings.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, mean_absolute_error, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stream.metrics.classification import BinaryState
from stream.metrics.estimation import ErrorModel, ScoreCalibrator, estimates
from stream.metrics.regression import RegressionState
from stream.metrics.window import WindowAccumulator

RESULTS = Path(__file__).resolve().parent / "results"
WINDOWS = 40
PER_WINDOW = 2000
DELAY = 4  # windows until a window's labels arrive
SHIFT_AT = 20  # the drift starts in this window and grows over RAMP windows
RAMP = 8
SEEDS = 5


def _shift(w: int) -> float:
    return min(max(w - SHIFT_AT + 1, 0) / RAMP, 1.0)


def _binary_stream(rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """x ~ N(mu, sd), true P(y=1|x) = sigmoid(2x); the model's score is overconfident (logit scaled by 1.6)."""
    out = []
    for w in range(WINDOWS):
        s = _shift(w)
        x = np.concatenate([rng.normal(-1.6 + 1.2 * s, 1.0 - 0.4 * s, PER_WINDOW // 2),
                            rng.normal(1.6 - 1.2 * s, 1.0 - 0.4 * s, PER_WINDOW // 2)])
        p = 1 / (1 + np.exp(-2 * x))
        score = np.round(1 / (1 + np.exp(-3.2 * x)), 3)
        out.append({"p": p, "score": score, "y": rng.uniform(size=x.size) < p})
    return out


def _regression_stream(rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """Predictions spread towards large values, where the error is larger (|error| ~ 0.2 + 0.1 * prediction)."""
    out = []
    for w in range(WINDOWS):
        pred = rng.gamma(2.0, 1.5 + 2.5 * _shift(w), PER_WINDOW)
        sigma = 0.2 + 0.1 * pred
        out.append({"pred": pred, "truth": pred + rng.normal(0, sigma), "expected": sigma * np.sqrt(2 / np.pi)})
    return out


def run_binary(rng: np.random.Generator) -> list[dict[str, float]]:
    stream = _binary_stream(rng)
    calibrator = ScoreCalibrator()
    rows = []
    for w, data in enumerate(stream):
        if w >= DELAY:  # labels of window w - DELAY arrive now
            old = stream[w - DELAY]
            calibrator.add(old["score"], old["y"])
        acc = WindowAccumulator("binary_classification", positive_class="1")
        predicted = data["score"] >= 0.5
        acc.add_predictions(np.where(predicted, "1", "0"), scores=data["score"])
        assert isinstance(acc.model, BinaryState)
        est = estimates(acc.model, calibrator, acc.score_bins)
        q = np.where(predicted, data["p"], 1 - data["p"])
        rows.append({
            "window": w,
            "accuracy": accuracy_score(data["y"], predicted),
            "estimated_accuracy": est["estimated_accuracy"][0],
            "lower_accuracy": est["estimated_accuracy_lower"][0], "upper_accuracy": est["estimated_accuracy_upper"][0],
            "oracle_accuracy": float(q.mean()),
            "roc_auc": roc_auc_score(data["y"], data["score"]),
            "estimated_roc_auc": est["estimated_roc_auc"][0],
            "lower_roc_auc": est["estimated_roc_auc_lower"][0], "upper_roc_auc": est["estimated_roc_auc_upper"][0],
            "oracle_roc_auc": roc_auc_score(np.r_[np.ones(q.size), np.zeros(q.size)],
                                            np.r_[data["score"], data["score"]],
                                            sample_weight=np.r_[data["p"], 1 - data["p"]]),
            "reliable": est["estimate_reliable"][0],
        })
    return rows


def run_regression(rng: np.random.Generator) -> list[dict[str, float]]:
    stream = _regression_stream(rng)
    model = ErrorModel()
    rows = []
    for w, data in enumerate(stream):
        if w >= DELAY:
            old = stream[w - DELAY]
            model.add(old["pred"], np.abs(old["truth"] - old["pred"]))
        acc = WindowAccumulator("regression")
        acc.add_predictions(data["pred"])
        assert isinstance(acc.model, RegressionState)
        est = model.estimate(acc.model)
        rows.append({"window": w, "mae": mean_absolute_error(data["truth"], data["pred"]),
                     "estimated_mae": est["estimated_mae"][0], "lower_mae": est["estimated_mae_lower"][0],
                     "upper_mae": est["estimated_mae_upper"][0], "oracle_mae": float(data["expected"].mean()),
                     "reliable": est["estimate_reliable"][0]})
    return rows


def first_firing(values: list[float], threshold: float, below: bool, start: int) -> int | None:
    for w in range(start, len(values)):
        v = values[w]
        if np.isfinite(v) and (v < threshold if below else v > threshold):
            return w
    return None


def summarise(rows: list[dict[str, float]], metric: str, threshold: float, below: bool) -> dict[str, Any]:
    usable = [r for r in rows if r["reliable"] == 1.0 and np.isfinite(r[f"estimated_{metric}"])]
    err = np.array([r[f"estimated_{metric}"] - r[metric] for r in usable])
    oracle = np.array([r[f"oracle_{metric}"] - r[metric] for r in usable])
    covered = [r[f"lower_{metric}"] <= r[metric] <= r[f"upper_{metric}"] for r in usable]
    width = np.array([r[f"upper_{metric}"] - r[f"lower_{metric}"] for r in usable])
    start = min((r["window"] for r in usable), default=len(rows))
    est_window = first_firing([r[f"estimated_{metric}"] for r in rows], threshold, below, int(start))
    label_window = first_firing([r[metric] for r in rows], threshold, below, int(start))
    # the estimate rule decides at the window's close (wall-clock window w + 1), the label rule when its
    # labels arrive (w + 1 + DELAY)
    est_at = None if est_window is None else est_window + 1
    label_at = None if label_window is None else label_window + 1 + DELAY
    return {
        "metric": metric, "windows_estimated": len(usable),
        "mae_of_estimate": float(np.abs(err).mean()), "max_abs_error": float(np.abs(err).max()),
        "mae_of_oracle": float(np.abs(oracle).mean()), "band_coverage": float(np.mean(covered)),
        "mean_band_width": float(width.mean()), "threshold": threshold,
        "estimate_rule_fires_at": est_at, "label_rule_fires_at": label_at,
        "windows_earlier": None if est_at is None or label_at is None else label_at - est_at,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    t0 = time.perf_counter()
    runs: list[dict[str, Any]] = []
    for i in range(SEEDS):
        rng = np.random.default_rng(args.seed + i)
        binary, regression = run_binary(rng), run_regression(rng)
        base_acc = float(np.mean([r["accuracy"] for r in binary[DELAY:SHIFT_AT]]))
        base_auc = float(np.mean([r["roc_auc"] for r in binary[DELAY:SHIFT_AT]]))
        base_mae = float(np.mean([r["mae"] for r in regression[DELAY:SHIFT_AT]]))
        runs.append({"seed": args.seed + i, "summaries": [
            summarise(binary, "accuracy", base_acc - 0.05, True),
            summarise(binary, "roc_auc", base_auc - 0.05, True),
            summarise(regression, "mae", base_mae * 1.25, False),
        ], "binary": binary, "regression": regression})
    result = {"windows": WINDOWS, "per_window": PER_WINDOW, "label_delay_windows": DELAY, "shift_at": SHIFT_AT,
              "ramp_windows": RAMP, "seeds": SEEDS, "seconds": round(time.perf_counter() - t0, 1),
              "python": platform.python_version(), "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "performance_estimation.json").write_text(json.dumps(result, indent=1))
    (RESULTS / "performance_estimation.md").write_text(report(result))
    print(report(result))


def report(result: dict[str, Any]) -> str:
    lines = [
        "# Performance estimation before labels: estimate vs realised",
        "",
        f"`python benchmarks/performance_estimation.py` — {result['seeds']} streams (seeds), {result['windows']} "
        f"windows of {result['per_window']:,} predictions, labels {result['label_delay_windows']} windows late, "
        f"covariate shift from window {result['shift_at']} over {result['ramp_windows']} windows. Estimates made "
        "at each window's close with what earlier labels taught (windows while the calibrator/error model was "
        "not warm are left out). Oracle: the analytic expectation given the true P(y|x) (CBPE with perfect "
        "calibration). Rules: threshold at the pre-shift mean - 0.05 (accuracy, ROC AUC) or x1.25 (MAE); "
        "'windows earlier' = wall-clock windows between the label rule's first firing and the estimate rule's.",
        "",
        "| metric | seed | windows | MAE of estimate | max error | MAE of oracle | 95% band coverage | "
        "band width | estimate rule at | label rule at | windows earlier |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        for s in run["summaries"]:
            lines.append(
                f"| {s['metric']} | {run['seed']} | {s['windows_estimated']} | {s['mae_of_estimate']:.4f} | "
                f"{s['max_abs_error']:.4f} | {s['mae_of_oracle']:.4f} | {s['band_coverage']:.0%} | "
                f"{s['mean_band_width']:.4f} | {s['estimate_rule_fires_at']} | {s['label_rule_fires_at']} | "
                f"{s['windows_earlier']} |")
    lines += ["", "Means over the seeds:", "", "| metric | MAE of estimate | band coverage | windows earlier |",
              "|---|---|---|---|"]
    for i, metric in enumerate(("accuracy", "roc_auc", "mae")):
        ss = [run["summaries"][i] for run in result["runs"]]
        earlier = [s["windows_earlier"] for s in ss if s["windows_earlier"] is not None]
        lines.append(f"| {metric} | {np.mean([s['mae_of_estimate'] for s in ss]):.4f} | "
                     f"{np.mean([s['band_coverage'] for s in ss]):.0%} | "
                     f"{np.mean(earlier) if earlier else float('nan'):.1f} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
