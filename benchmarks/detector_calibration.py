"""Calibrate ADWIN's delta in stream.monitor.detectors: false alarms, detection delay, cost per event.

Page-Hinkley is not on this grid: its thresholds are sized per signal for a mean run of ``ph_arl`` values on
the reference distribution (see ``benchmarks/detection_quality.py`` for its measured false alarms).

Run ``python benchmarks/detector_calibration.py [--events N] [--quick]`` from the repository root. Writes
benchmarks/results/detector_calibration.json and .md; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import river
from river.datasets import synth

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stream.monitor.detectors import DetectorParams, SignalMonitor

RESULTS = Path(__file__).resolve().parent / "results"
ADWIN_DELTAS = [2e-3, 2e-4, 2e-5, 2e-6]
STATIONARY = ("gaussian", "bernoulli", "lognormal")
PRE = 5000  # change position (the monitor's warm-up is inside it)
MAX_POST = 20000  # a change not detected within this many events counts as missed
CHUNK = 1000
MAX_FA_PER_MILLION = 1.0


def settings() -> list[tuple[str, float, DetectorParams]]:
    """(detector, parameter value, params) for every setting of the grid (ADWIN alone)."""
    base = DetectorParams()
    return [("adwin", d, replace(base, adwin_delta=d, use_adwin=True, use_page_hinkley=False)) for d in ADWIN_DELTAS]


def stationary_stream(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.normal(0.0, 1.0, n)
    if kind == "lognormal":  # a skewed score or prediction (prices, durations): ADWIN's bound is least exact here
        return rng.lognormal(0.0, 1.0, n)
    return (rng.random(n) < 0.1).astype(np.float64)


def run_stationary(task: tuple[int, str, int, int]) -> dict[str, Any]:
    idx, kind, n, seed = task
    det, value, params = settings()[idx]
    x = stationary_stream(kind, n, seed)
    m = SignalMonitor(params=params)
    pos = np.arange(n)
    for k in range(0, n, 10 * CHUNK):
        m.update(x[k : k + 10 * CHUNK], pos[k : k + 10 * CHUNK], pos[k : k + 10 * CHUNK])
    alarms = m.n_detections[det]
    return {"detector": det, "value": value, "stream": kind, "seed": seed, "events": n, "alarms": alarms}


def sea_error_stream(seed: int, n: int) -> np.ndarray:
    """0/1 error of the concept-0 SEA rule (x0 + x1 > 8) on SEA(0) -> SEA(1) drifting at PRE (width 50)."""
    stream = synth.ConceptDriftStream(
        synth.SEA(variant=0, noise=0.1, seed=seed),
        synth.SEA(variant=1, noise=0.1, seed=seed + 1),
        position=PRE,
        width=50,
        seed=seed + 2,
    )
    err = np.empty(n)
    for i, (xd, y) in enumerate(stream.take(n)):
        err[i] = float((xd[0] + xd[1] > 8) != y)
    return err


def change_stream(scenario: str, seed: int) -> np.ndarray:
    n = PRE + MAX_POST
    rng = np.random.default_rng(seed)
    if scenario == "sea_error":
        return sea_error_stream(seed, n)
    if scenario == "bernoulli_0.1_to_0.15":
        p = np.where(np.arange(n) < PRE, 0.1, 0.15)
        return (rng.random(n) < p).astype(np.float64)
    x = rng.normal(0.0, 1.0, n)
    if scenario == "variance_x2":
        x[PRE:] *= np.sqrt(2.0)
    else:
        x[PRE:] += float(scenario.split("_")[1])
    return x


SCENARIOS = [
    "shift_0.25",
    "shift_0.5",
    "shift_1",
    "shift_2",
    "variance_x2",
    "bernoulli_0.1_to_0.15",
    "sea_error",
]


def chunks(n: int) -> Iterator[tuple[int, int]]:
    for k in range(0, n, CHUNK):
        yield k, min(n, k + CHUNK)


def run_delay(task: tuple[str, int, int]) -> list[dict[str, Any]]:
    scenario, rep, seed = task
    x = change_stream(scenario, seed)
    pos = np.arange(x.size)
    out = []
    for det, value, params in settings():
        m = SignalMonitor(params=params)
        delay, early = None, 0
        for a, b in chunks(x.size):
            for d in m.update(x[a:b], pos[a:b], pos[a:b]):
                if d.position < PRE:
                    early += 1
                elif delay is None:
                    delay = d.position - PRE
            if delay is not None:
                break
        out.append(
            {
                "detector": det,
                "value": value,
                "scenario": scenario,
                "rep": rep,
                "delay": delay,
                "early": early,
            }
        )
    return out


def summarise_delays(rows: list[dict[str, Any]]) -> dict[tuple[str, float, str], dict[str, Any]]:
    groups: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["detector"], r["value"], r["scenario"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        delays = np.array([r["delay"] for r in rs if r["delay"] is not None], dtype=float)
        censored = np.array([MAX_POST if r["delay"] is None else r["delay"] for r in rs], dtype=float)
        out[key] = {
            "reps": len(rs),
            "miss_rate": 1.0 - delays.size / len(rs),
            "median_delay": float(np.median(delays)) if delays.size else None,
            "p90_delay": float(np.percentile(delays, 90)) if delays.size else None,
            "mean_delay_censored": float(censored.mean()),
            "early_alarms": int(sum(r["early"] for r in rs)),
        }
    return out


def measure_cost(n: int, params: DetectorParams) -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    x = rng.normal(0.0, 1.0, n)
    pos = np.arange(n)
    out = []
    for batch in (100, 1000, 10000):
        m = SignalMonitor(params=params)
        m.update(x[: params.warmup], pos[: params.warmup], pos[: params.warmup])
        t0 = time.perf_counter()
        for k in range(params.warmup, n, batch):
            m.update(x[k : k + batch], pos[k : k + batch], pos[k : k + batch])
        dt = time.perf_counter() - t0
        out.append({"batch": batch, "us_per_event": dt / (n - params.warmup) * 1e6})
    return out


def fmt(v: float | None, spec: str = ".0f") -> str:
    return "-" if v is None else format(v, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000, help="events per stationary stream")
    ap.add_argument("--reps", type=int, default=20, help="repetitions per change scenario")
    ap.add_argument("--quick", action="store_true", help="200k stationary events, 4 repetitions")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    n_events, reps = (200_000, 4) if args.quick else (args.events, args.reps)
    grid = settings()
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", file=sys.stderr, flush=True)

    stat_tasks = [
        (i, kind, n_events, seed)
        for i in range(len(grid))
        for kind in STATIONARY
        for seed in (1, 2)
    ]
    delay_tasks = [(sc, r, 1000 + 97 * r) for sc in SCENARIOS for r in range(reps)]
    stat_rows: list[dict[str, Any]] = []
    delay_rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(args.workers) as pool:
        for k, row in enumerate(pool.map(run_stationary, stat_tasks), 1):
            stat_rows.append(row)
            log(f"stationary {k}/{len(stat_tasks)}: {row}")
        for k, rows in enumerate(pool.map(run_delay, delay_tasks), 1):
            delay_rows.extend(rows)
            if k % max(1, len(delay_tasks) // 10) == 0 or k == len(delay_tasks):
                log(f"delay runs {k}/{len(delay_tasks)}")
    delays = summarise_delays(delay_rows)

    table = []
    for det, value, _ in grid:
        srows = [r for r in stat_rows if r["detector"] == det and r["value"] == value]
        fa = {
            kind: 1e6
            * sum(r["alarms"] for r in srows if r["stream"] == kind)
            / sum(r["events"] for r in srows if r["stream"] == kind)
            for kind in STATIONARY
        }
        worst = max(1e6 * r["alarms"] / r["events"] for r in srows)
        per_sc = {sc: delays[(det, value, sc)] for sc in SCENARIOS}
        score = float(np.mean([per_sc[sc]["mean_delay_censored"] for sc in SCENARIOS]))
        table.append(
            {
                "detector": det,
                "value": value,
                "fa_per_million": fa,
                "worst_run_fa_per_million": worst,
                "delays": per_sc,
                "mean_censored_delay": score,
            }
        )

    chosen: dict[str, Any] = {}
    for det in ("adwin",):
        ok = [
            t for t in table if t["detector"] == det and t["worst_run_fa_per_million"] <= MAX_FA_PER_MILLION
        ]
        chosen[det] = min(ok, key=lambda t: t["mean_censored_delay"])["value"] if ok else None
    defaults = DetectorParams()
    current = {"adwin": defaults.adwin_delta}
    log("measuring cost per event")
    cost = measure_cost(min(n_events, 300_000), defaults)
    log("done")

    result = {
        "quick": args.quick,
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "river": river.__version__,
        },
        "cpu_count": os.cpu_count(),
        "stationary_events_per_stream": n_events,
        "stationary_streams": "gaussian N(0,1), bernoulli p=0.1 (0/1 loss), lognormal(0, 1); seeds 1 and 2 each",
        "change_position": PRE,
        "max_post": MAX_POST,
        "reps": reps,
        "fixed_params": {
            k: v for k, v in asdict(defaults).items() if k != "adwin_delta"
        },
        "table": [{**t, "delays": {sc: v for sc, v in t["delays"].items()}} for t in table],
        "chosen": chosen,
        "defaults_in_code": current,
        "cost_defaults_us_per_event": cost,
        "elapsed_s": time.perf_counter() - t_start,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "detector_calibration.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "detector_calibration.md").write_text(markdown(result))
    log(f"chosen {chosen}; defaults in code {current}")


def markdown(r: dict[str, Any]) -> str:
    n = r["stationary_events_per_stream"]
    fp = r["fixed_params"]
    lines = [
        "# ADWIN calibration",
        "",
        f"Made by `benchmarks/detector_calibration.py`{' --quick' if r['quick'] else ''}; "
        f"river {r['versions']['river']}, numpy {r['versions']['numpy']}, {r['cpu_count']} CPUs, "
        f"{r['elapsed_s']:.0f} s.",
        "",
        "Input: `stream.monitor.detectors.SignalMonitor` (standardised with the statistics of a "
        f"{fp['warmup']}-value warm-up, clipped to ±{fp['clip']:g}), ADWIN alone: clock {fp['adwin_clock']}, "
        f"min_window_length {fp['adwin_min_window_length']}, grace_period {fp['adwin_grace_period']}. "
        "Page-Hinkley is not on this grid: its thresholds are sized per signal for a mean run of "
        f"{fp['ph_arl']:g} values per side on the reference distribution (false alarms measured in "
        "`detection_quality.md`).",
        "",
        f"False alarms: {n:,} events per stream, two seeds each of gaussian N(0,1), bernoulli p=0.1 and "
        "lognormal(0, 1); 'worst' is the largest count per million over the six runs. Delay: events after the "
        f"change until the first detection, change at event {r['change_position']}, missed if not detected "
        f"within {r['max_post']:,} events; {r['reps']} repetitions per scenario; median (miss rate). Scenarios: "
        "gaussian mean shift by 0.25/0.5/1/2 std, variance x2, bernoulli 0.1 -> 0.15, and the 0/1 error of "
        "the concept-0 rule on river's `ConceptDriftStream(SEA(0) -> SEA(1))`, noise 0.1, width 50 "
        "(error 0.10 -> 0.17). 'score' is the mean delay over scenarios, a miss counted as "
        f"{r['max_post']:,}.",
        "",
        "| setting | FA/M gauss | FA/M bern | FA/M lognormal | worst FA/M | "
        + " | ".join(s.replace("bernoulli_", "bern ") for s in SCENARIOS)
        + " | score |",
        "|---|---|---|---|---|" + "---|" * len(SCENARIOS) + "---|",
    ]
    for t in r["table"]:
        cells = [
            f"{fmt(t['delays'][s]['median_delay'])} ({t['delays'][s]['miss_rate']:.0%})" for s in SCENARIOS
        ]
        fa = t["fa_per_million"]
        lines.append(
            f"| delta={t['value']:g} | {fa['gaussian']:.1f} | {fa['bernoulli']:.1f} | {fa['lognormal']:.1f} | "
            f"{t['worst_run_fa_per_million']:.1f} | " + " | ".join(cells) + f" | {t['mean_censored_delay']:.0f} |"
        )
    ch, cur = r["chosen"], r["defaults_in_code"]
    match = ch["adwin"] == cur["adwin"]
    lines += [
        "",
        "## Choice of the default",
        "",
        f"Rule: among settings whose worst run has at most {MAX_FA_PER_MILLION:g} false alarm per million "
        "stationary events, the one with the smallest score (mean delay, misses counted as the window).",
        "",
        f"- chosen ADWIN delta: {fmt(ch['adwin'], 'g')}",
        f"- default in `stream/monitor/detectors.py`: {cur['adwin']:g} "
        f"({'match' if match else 'DOES NOT match: update DetectorParams'})",
        "",
        "Why: ADWIN's cut test assumes the sub-window means are close to normal; on a skewed stream "
        "(lognormal after standardising) short sub-windows holding a few large values break it, and "
        "false alarms come from there rather than from delta's nominal level. Each 10x tightening costs about "
        "8 values of delay at 1σ, 30 at 0.5σ, 80 at 0.25σ and nothing at 2σ (the clock grid dominates). "
        "The CUSUM on every input and the seeded Page-Hinkley are the fast detectors; ADWIN is the "
        "assumption-light second opinion. None of them sees a variance change with unchanged mean: the "
        "variance CUSUM and the error variance signal do.",
        "",
        "## Cost of SignalMonitor.update at the defaults (ADWIN and Page-Hinkley, gaussian input)",
        "",
        "| batch | µs/event |",
        "|---|---|",
    ]
    lines += [f"| {c['batch']} | {c['us_per_event']:.2f} |" for c in r["cost_defaults_us_per_event"]]
    lines += [
        "",
        "ADWIN is River's (Rust) per-element `update`; Page-Hinkley, standardising and bookkeeping are numpy "
        "per batch. The machine is shared, so timings vary by about ±40% between runs.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
