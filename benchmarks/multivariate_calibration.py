"""False positives and power of the multivariate (PCA reconstruction-error) window test at several window sizes.

Run: ``.venv/bin/python benchmarks/multivariate_calibration.py [--windows 2000] [--seed 2026]`` (~1 minute).

Five N(0, 1) inputs with correlation 0.5 between every pair; each window is tested against a fresh reference of
``--reference`` rows (the calibration must hold over references, not for one draw), at the level the monitor
gives the test in a 5-numeric-input model window (0.005 / 11: KS and chi-square per input, and this test).
Stationary windows give the false-positive rate and the moments of ``z`` (about N(0, 1) if calibrated); a
window whose first two inputs lose their correlation (0.5 -> 0, marginals unchanged) gives the power. Writes
``benchmarks/results/multivariate_calibration.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from stream.monitor.multivariate import PCADrift

NAMES = ["a", "b", "c", "d", "e"]
LEVEL = 0.005 / 11
SIZES = (200, 1000, 10_000)
RESULTS = Path(__file__).parent / "results" / "multivariate_calibration.md"


def _cholesky(decorrelate: bool) -> np.ndarray:
    cov = np.full((5, 5), 0.5)
    np.fill_diagonal(cov, 1.0)
    if decorrelate:
        cov[0, 1] = cov[1, 0] = 0.0
    return np.linalg.cholesky(cov)


def run(windows: int, reference: int, seed: int) -> list[str]:
    """Markdown table rows: per window size, false positives, z moments and power."""
    rng = np.random.default_rng(seed)
    same, changed = _cholesky(False), _cholesky(True)
    out = []
    for n in SIZES:
        zs, flags, hits = [], 0, 0
        for _ in range(windows):
            det = PCADrift.fit(NAMES, rng.standard_normal((reference, 5)) @ same.T)
            r = det.test(rng.standard_normal((n, 5)) @ same.T, LEVEL)
            zs.append(r.z)
            flags += r.drifted
            hits += det.test(rng.standard_normal((n, 5)) @ changed.T, LEVEL).drifted
        z = np.asarray(zs)
        out.append(f"| {n:,} | {flags / windows:.2%} ({flags}/{windows}) | {z.mean():.3f} | {z.std():.3f} | "
                   f"{(np.abs(z) > 2.576).mean():.2%} | {hits / windows:.1%} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=2000)
    parser.add_argument("--reference", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    lines = [
        f"# Multivariate (PCA) window test: {args.windows} windows per size, reference {args.reference:,}, "
        f"level 0.005 / 11, seed {args.seed}",
        "",
        "| window rows | stationary flagged | z mean | z std | abs(z) > 2.576 (nominal 1%) "
        "| power, corr(a, b) 0.5 -> 0 |",
        "|---|---|---|---|---|---|",
        *run(args.windows, args.reference, args.seed),
    ]
    text = "\n".join(lines) + "\n"
    RESULTS.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
