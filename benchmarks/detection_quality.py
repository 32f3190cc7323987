"""Detection quality of Driftwarden's drift tests and detectors on synthetic streams with known changes.

Run ``.venv/bin/python benchmarks/detection_quality.py [--quick]`` from the repository root. Writes
benchmarks/results/detection_quality.json and .md; progress goes to stderr. Repetition counts are in the
output (kept small so the run takes minutes).

Sections:

1. Model-level false-positive rate per window: a model with 20 stationary features (numeric: normal,
   log-normal, Poisson counts, uniform; categorical: 2-40 categories with Zipf frequencies, so rare and
   unseen categories occur), a fresh reference of ``ref`` values per repetition, one window of ``n``
   values; the model window counts as flagged when any test of any feature says drifted
   (:func:`stream.monitor.drift_stats.compare` with the Bonferroni count of
   :class:`stream.monitor.model_monitor.ModelMonitor`).
2. Power of the window tests at a 0.3σ (and 0.1σ) mean shift, one numeric feature, windows of 1,000,
   against the exact two-sample KS test (``scipy.stats.ks_2samp`` on the raw values) at the same measured
   false-positive rate.
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
import scipy
from scipy.stats import ks_2samp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stream.monitor.detectors import DetectorParams, SignalMonitor
from stream.monitor.drift_stats import Thresholds, compare, significance_tests
from stream.monitor.input_watch import InputWatch, WatchParams
from stream.monitor.profiles import FeatureProfile, bin_counts, bin_index, profile_categorical, profile_numeric

RESULTS = Path(__file__).resolve().parent / "results"
N_FEATURES = 20
WINDOW_SIZES = [200, 1000, 10_000]
REFERENCE_SIZES = [1000, 5000]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- section 1: model-level false positives ------------------------------------------------------------------


def numeric_sampler(j: int) -> Any:
    """The j-th numeric feature's distribution: a function (rng, n) -> values."""
    kind = j % 4
    if kind == 0:
        return lambda rng, n: rng.normal(3.0, 2.0, n)
    if kind == 1:
        return lambda rng, n: rng.lognormal(0.0, 1.0, n)
    if kind == 2:
        return lambda rng, n: rng.poisson(3.0, n).astype(np.float64)
    return lambda rng, n: rng.uniform(-1.0, 1.0, n)


def categorical_sampler(j: int) -> Any:
    """The j-th categorical feature: 2-40 categories with Zipf(1.2) frequencies."""
    k = [2, 3, 5, 8, 12, 20, 40][j % 7]
    p = 1.0 / np.arange(1, k + 1) ** 1.2
    p /= p.sum()
    labels = np.array([f"c{i}" for i in range(k)], dtype=object)
    return lambda rng, n: labels[rng.choice(k, size=n, p=p)]


def stationary_model_window(
    samplers: list[Any], rng: np.random.Generator, ref_n: int, win_n: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Raw reference and window values of every feature (drawn feature by feature: reference, then window)."""
    refs, wins = [], []
    for draw in samplers:
        refs.append(draw(rng, ref_n))
        wins.append(draw(rng, win_n))
    return refs, wins


def profile_model(
    kind: str, refs: list[np.ndarray], wins: list[np.ndarray]
) -> tuple[list[FeatureProfile], list[np.ndarray]]:
    """The reference profile of every feature and its window's bin counts, as the service keeps them."""
    profiles = [profile_numeric(r) if kind == "numeric" else profile_categorical(r) for r in refs]
    return profiles, [bin_counts(p, w) for p, w in zip(profiles, wins, strict=True)]


def drifted_tests(profiles: list[FeatureProfile], counts: list[np.ndarray], thresholds: Thresholds) -> list[str]:
    """The test of every drifted result of one model window, Bonferroni over all its significance tests (as
    :class:`stream.monitor.model_monitor.ModelMonitor`); empty when the window is not flagged."""
    n_tests = sum(significance_tests(p) for p in profiles)
    return [r.test for p, c in zip(profiles, counts, strict=True)
            for r in compare(p, c, thresholds=thresholds, n_tests=n_tests) if r.drifted]  # fmt: skip


def model_samplers(kind: str) -> list[Any]:
    """The 20 feature distributions of a numeric or categorical model."""
    return [numeric_sampler(j) if kind == "numeric" else categorical_sampler(j) for j in range(N_FEATURES)]


def model_window_fpr(kind: str, ref_n: int, win_n: int, reps: int, seed: int) -> dict[str, Any]:
    """Fraction of stationary model windows flagged, and of feature windows flagged per test."""
    rng = np.random.default_rng(seed)
    samplers = model_samplers(kind)
    thresholds = Thresholds()
    flagged = 0
    by_test: dict[str, int] = {}
    feature_windows = 0
    seconds = 0.0
    for _ in range(reps):
        profiles, windows = profile_model(kind, *stationary_model_window(samplers, rng, ref_n, win_n))
        t0 = time.perf_counter()
        tests = drifted_tests(profiles, windows, thresholds)
        seconds += time.perf_counter() - t0
        for t in tests:
            by_test[t] = by_test.get(t, 0) + 1
        feature_windows += N_FEATURES
        flagged += bool(tests)
    return {
        "kind": kind, "reference": ref_n, "window": win_n, "model_windows": reps, "flagged": flagged,
        "fpr": flagged / reps, "fpr_upper95": wilson_upper(flagged, reps),
        "per_test_feature_fpr": {k: v / feature_windows for k, v in sorted(by_test.items())},
        "ms_per_feature_window": 1000 * seconds / feature_windows,
    }  # fmt: skip


def wilson_upper(k: int, n: int, z: float = 1.959964) -> float:
    """Upper end of the Wilson 95% interval of a rate k / n.

    >>> round(wilson_upper(0, 2000), 5), round(wilson_upper(10, 2000), 5)
    (0.00192, 0.00918)
    """
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre + half)


# --- section 2: power against the exact KS test --------------------------------------------------------------


def power_vs_exact_ks(shift: float, ref_n: int, win_n: int, reps: int, seed: int) -> dict[str, Any]:
    """Detection rate of the window tests (one numeric feature, its default Bonferroni level) and of exact KS
    at the false-positive rate our tests measured on stationary windows (at least 1/reps)."""
    rng = np.random.default_rng(seed)
    ours_null = ours_alt = 0
    p_null: list[float] = []
    p_alt: list[float] = []
    for _ in range(reps):
        ref = rng.normal(0.0, 1.0, ref_n)
        prof = profile_numeric(ref)
        null = rng.normal(0.0, 1.0, win_n)
        alt = rng.normal(shift, 1.0, win_n)
        ours_null += any(r.drifted for r in compare(prof, bin_counts(prof, null)))
        ours_alt += any(r.drifted for r in compare(prof, bin_counts(prof, alt)))
        p_null.append(float(ks_2samp(ref, null).pvalue))
        p_alt.append(float(ks_2samp(ref, alt).pvalue))
    fpr = ours_null / reps
    level = max(fpr, 1.0 / reps)
    # exact KS at the level whose measured false-positive rate matches ours (quantile of its null p-values)
    cut = float(np.quantile(p_null, level))
    ks_power = float(np.mean(np.asarray(p_alt) <= cut))
    ks_power_at_001 = float(np.mean(np.asarray(p_alt) < 0.01))
    return {
        "shift_sigma": shift, "reference": ref_n, "window": win_n, "reps": reps, "ours_fpr": fpr,
        "ours_power": ours_alt / reps, "exact_ks_power_same_fpr": ks_power, "exact_ks_level": level,
        "exact_ks_power_at_0.01": ks_power_at_001,
    }  # fmt: skip


# --- section 3: online detectors ------------------------------------------------------------------------------

STREAMS = ("gaussian", "lognormal", "bernoulli_0.1", "categorical_8")


def draw(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """Stationary values of a stream kind."""
    if kind == "gaussian":
        return rng.normal(0.0, 1.0, n)
    if kind == "lognormal":
        return rng.lognormal(0.0, 1.0, n)
    if kind == "bernoulli_0.1":
        return (rng.random(n) < 0.1).astype(np.float64)
    return categorical_sampler(3)(rng, n)  # 8 categories, Zipf frequencies


def our_watch(kind: str, ref: np.ndarray) -> tuple[InputWatch, FeatureProfile]:
    prof = profile_categorical(ref) if kind.startswith("categorical") else profile_numeric(ref)
    return InputWatch({"x": prof}, {"x": "x"}, WatchParams()), prof


def our_signal_monitor(ref: np.ndarray) -> SignalMonitor:
    """ADWIN + Page-Hinkley at Driftwarden's defaults, seeded as the service seeds the score stream: the
    reference profile's mean and std, its bins sizing Page-Hinkley's thresholds."""
    prof = profile_numeric(ref)
    return SignalMonitor(params=DetectorParams(), reference_mean=prof.mean, reference_std=prof.std,
                         reference_values=np.asarray(prof.bin_means), reference_weights=np.asarray(prof.counts))


def river_alarms(detector: Any, x: np.ndarray) -> list[int]:
    out = []
    for i, v in enumerate(x.tolist()):
        detector.update(v)
        if detector.drift_detected:
            out.append(i)
    return out


def detector_runs(kind: str, ref: np.ndarray, x: np.ndarray, river_too: bool = True) -> dict[str, list[int]]:
    """Alarm positions of every detector on stream ``x`` (reference ``ref`` seeds ours)."""
    from river import drift

    watch, prof = our_watch(kind, ref)
    out: dict[str, list[int]] = {"ours: CUSUM mean": [], "ours: CUSUM variance": []}
    if kind.startswith("categorical"):
        out = {"ours: CUSUM mean": [], "ours: CUSUM category frequencies": []}
    for lo in range(0, x.size, 500):
        for signal, alarm, _ in watch.update([bin_index(prof, x[lo : lo + 500])]):
            name = {"variance": "ours: CUSUM variance", "frequency": "ours: CUSUM category frequencies"}.get(
                signal.rsplit(":", 1)[-1], "ours: CUSUM mean")
            out[name].append(alarm.row)
    if kind.startswith("categorical"):
        return out
    mon = our_signal_monitor(ref)
    pos = np.arange(x.size)
    out["ours: ADWIN"], out["ours: Page-Hinkley"] = [], []
    for lo in range(0, x.size, 500):
        for d in mon.update(x[lo : lo + 500], pos[lo : lo + 500], pos[lo : lo + 500]):
            out["ours: ADWIN" if d.detector == "adwin" else "ours: Page-Hinkley"].append(d.position)
    # the error stream's variance signal: an unseeded monitor whose 1,000-value warm-up is the reference
    err = SignalMonitor("m", "v", "error", DetectorParams(use_adwin=False), watch_variance=True)
    both = np.concatenate([ref, x])
    at = np.arange(both.size)
    out["ours: PH variance (error)"] = []
    for lo in range(0, both.size, 500):
        for d in err.update(both[lo : lo + 500], at[lo : lo + 500], at[lo : lo + 500]):
            if d.signal == "error:variance":
                out["ours: PH variance (error)"].append(d.position - ref.size)
    if river_too:
        out["River ADWIN()"] = river_alarms(drift.ADWIN(), x)
        out["River PageHinkley()"] = river_alarms(drift.PageHinkley(), x)
    return out


def stationary_false_alarms(n: int, ref_n: int, seed: int) -> list[dict[str, Any]]:
    """False alarms per 1M values of every detector on a stationary stream of each kind."""
    rows = []
    for j, kind in enumerate(STREAMS):
        rng = np.random.default_rng(seed + j)
        runs = detector_runs(kind, draw(kind, rng, ref_n), draw(kind, rng, n))
        for det, alarms in runs.items():
            rows.append({"stream": kind, "detector": det, "values": n, "alarms": len(alarms),
                         "per_million": len(alarms) * 1e6 / n})  # fmt: skip
        log(f"stationary {kind}: { {k: len(v) for k, v in runs.items()} }")
    return rows


SHIFTS = ("mean 0.25σ", "mean 0.5σ", "mean 1σ", "mean 2σ", "mean 1σ gradual (200 values)", "variance x2",
          "bernoulli 0.1 -> 0.2", "category frequencies")  # fmt: skip


def shifted(shift: str, rng: np.random.Generator, n: int) -> tuple[str, np.ndarray]:
    """(stream kind, values after the change) for a shift scenario."""
    if shift.startswith("mean") and "gradual" not in shift:
        return "gaussian", rng.normal(float(shift.split()[1].rstrip("σ")), 1.0, n)
    if "gradual" in shift:
        return "gaussian", rng.normal(np.minimum(np.arange(1, n + 1) / 200, 1.0), 1.0)
    if shift == "variance x2":
        return "gaussian", rng.normal(0.0, np.sqrt(2.0), n)
    if shift.startswith("bernoulli"):
        return "bernoulli_0.1", (rng.random(n) < 0.2).astype(np.float64)
    k = 8
    p = 1.0 / np.arange(1, k + 1) ** 1.2
    p /= p.sum()
    p[[0, 2]] = p[[2, 0]]  # the most frequent and the third swap
    labels = np.array([f"c{i}" for i in range(k)], dtype=object)
    return "categorical_8", labels[rng.choice(k, size=n, p=p)]


def delays(pre: int, post: int, ref_n: int, reps: int, seed: int) -> list[dict[str, Any]]:
    """Detection probability and delay per shift and detector; the change comes after ``pre`` values."""
    rows = []
    for s_i, shift in enumerate(SHIFTS):
        found: dict[str, list[int]] = {}
        for r in range(reps):
            rng = np.random.default_rng(seed + 1000 * s_i + r)
            kind, after = shifted(shift, rng, post)
            x = np.concatenate([draw(kind, rng, pre), after])
            runs = detector_runs(kind, draw(kind, rng, ref_n), x)
            for det, alarms in runs.items():
                late = [a - pre for a in alarms if a >= pre]
                early = [a for a in alarms if a < pre]
                found.setdefault(det, []).append(-1 if early else (late[0] if late else post))
        for det, d in found.items():
            arr = np.asarray(d)
            ok = arr[arr >= 0]
            rows.append({
                "shift": shift, "detector": det, "reps": reps, "pre": pre, "post": post,
                "false_before": int((arr < 0).sum()), "p_within_50": float(np.mean((arr >= 0) & (arr < 50))),
                "p_within_500": float(np.mean((arr >= 0) & (arr < 500))),
                "p_detected": float(np.mean((arr >= 0) & (arr < post))),
                "median_delay": float(np.median(ok[ok < post])) if (ok < post).any() else None,
            })  # fmt: skip
        log(f"delays {shift}: done")
    return rows


# --- report ----------------------------------------------------------------------------------------------------


def markdown(res: dict[str, Any]) -> str:
    lines = [
        "# Detection quality",
        "",
        f"Made by `benchmarks/detection_quality.py`; numpy {np.__version__}, scipy {scipy.__version__}, "
        f"{res['seconds']:.0f} s. Defaults: `Thresholds()` (alpha 0.005 per model window, Bonferroni over "
        "every significance test of the window; PSI 0.2, JS 0.1, KS D >= 0.04, Wasserstein 0.1 std, "
        "chi-square total variation >= 0.05).",
        "",
        "## Model-level false positives per stationary window (20 features)",
        "",
        f"Each cell: share of model windows in which any test of any of the {N_FEATURES} features flagged "
        "drift; a fresh reference per window. Target: <= 1%. 'upper 95%': the Wilson interval's upper end.",
        "",
        "| features | reference | window | model windows | flagged | FPR | upper 95% | per-feature FPR by test "
        "| ms per feature test |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["fpr"]:
        tests = ", ".join(f"{k} {v:.4%}" for k, v in r["per_test_feature_fpr"].items()) or "none"
        lines.append(
            f"| {r['kind']} | {r['reference']:,} | {r['window']:,} | {r['model_windows']} | {r['flagged']} | "
            f"{r['fpr']:.2%} | {r.get('fpr_upper95', float('nan')):.2%} | {tests} | {r['ms_per_feature_window']:.2f} |"
        )
    lines += [
        "",
        "## Power against the exact KS test (one numeric feature, N(0,1) reference)",
        "",
        "Ours: any test of `compare()` flags (level 0.005 / 2 tests). Exact KS: `scipy.stats.ks_2samp` on the raw "
        "values at the level where its false-positive rate equals ours (at least 1/reps), and at 0.01.",
        "",
        "| shift | reference | window | reps | our FPR | our power | exact KS power, same FPR "
        "| exact KS power, p<0.01 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["power"]:
        lines.append(
            f"| {r['shift_sigma']}σ | {r['reference']:,} | {r['window']:,} | {r['reps']} | {r['ours_fpr']:.1%} | "
            f"{r['ours_power']:.1%} | {r['exact_ks_power_same_fpr']:.1%} | {r['exact_ks_power_at_0.01']:.1%} |"
        )
    if res.get("stationary"):
        lines += [
            "",
            "## Online detectors: false alarms per 1M stationary values",
            "",
            f"One stream of {res['stationary'][0]['values']:,} values per kind after a reference of "
            f"{res['detector_reference']:,} values (ours are seeded from it: no warm-up). River's detectors at "
            "their defaults on the raw values (as a user would run them). Target: <= 1 per 1M.",
            "",
            "| stream | detector | alarms | per 1M |",
            "|---|---|---|---|",
        ]
        lines += [f"| {r['stream']} | {r['detector']} | {r['alarms']} | {r['per_million']:.1f} |"
                  for r in res["stationary"]]  # fmt: skip
    if res.get("delays"):
        d0 = res["delays"][0]
        lines += [
            "",
            "## Online detectors: detection after a change",
            "",
            f"Streams that start {d0['pre']} values before the change (reference of {res['detector_reference']:,} "
            f"values), {d0['post']:,} values after it, {d0['reps']} repetitions each. 'early': runs with an alarm "
            "before the change. Delay: values after the change until the first alarm (median over detected runs).",
            "",
            "| change | detector | early | P(within 50) | P(within 500) | P(detected) | median delay |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in res["delays"]:
            med = "-" if r["median_delay"] is None else f"{r['median_delay']:.0f}"
            lines.append(f"| {r['shift']} | {r['detector']} | {r['false_before']} | {r['p_within_50']:.0%} | "
                         f"{r['p_within_500']:.0%} | {r['p_detected']:.0%} | {med} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--reps", type=int, default=2000, help="model windows per FPR cell")
    parser.add_argument("--power-reps", type=int, default=750, help="windows per power cell")
    parser.add_argument("--sections", default="windows,detectors", help="windows, detectors or both")
    parser.add_argument("--stationary", type=int, default=1_000_000, help="values per stationary stream")
    args = parser.parse_args()
    reps = 40 if args.quick else args.reps
    sections = set(args.sections.split(","))
    t0 = time.perf_counter()
    path = RESULTS / "detection_quality.json"
    res: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    if "windows" in sections:
        res["fpr"], res["power"] = [], []
        for kind in ("numeric", "categorical"):
            for ref_n in REFERENCE_SIZES:
                for win_n in WINDOW_SIZES:
                    r = model_window_fpr(kind, ref_n, win_n, reps, seed=len(res["fpr"]) + 1)
                    log(f"fpr {kind} ref={ref_n} win={win_n}: {r['fpr']:.3f} {r['per_test_feature_fpr']}")
                    res["fpr"].append(r)
        for shift in (0.1, 0.3):
            for ref_n in REFERENCE_SIZES:
                power_reps = 100 if args.quick else args.power_reps
                r = power_vs_exact_ks(shift, ref_n, 1000, power_reps, seed=int(shift * 100) + ref_n)
                log(f"power {shift} ref={ref_n}: {r}")
                res["power"].append(r)
        res["seconds"] = time.perf_counter() - t0
    if "detectors" in sections:
        t1 = time.perf_counter()
        res["detector_reference"] = 1000
        res["stationary"] = stationary_false_alarms(100_000 if args.quick else args.stationary, 1000, seed=7)
        res["delays"] = delays(100, 2000, 1000, 10 if args.quick else 40, seed=11)
        res["detector_seconds"] = time.perf_counter() - t1
    res["machine"] = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__}
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(res, indent=1))
    (RESULTS / "detection_quality.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
