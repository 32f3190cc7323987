"""Write the example data of the README's "Use it with your model" (deterministic: run it, get the same bytes).

    python examples/generate.py        # rewrites reference.csv, predictions.jsonl and labels.jsonl here

``reference.csv``: 500 rows of the model's inputs as seen in training. ``predictions.jsonl``: 300 predictions
of model ``my-model``, one per second from 2026-01-01T09:00:00Z (five one-minute windows). ``labels.jsonl``: the
ground truth of 270 of them (every tenth prediction never gets a label), 30 seconds after each prediction.
Only the standard library is used, so the files do not change with numpy's random streams.
"""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
START_MS = 1_767_258_000_000  # 2026-01-01T09:00:00Z
PLANS = ("free", "pro", "team")
REGIONS = ("eu", "us")


def _inputs(rng: random.Random) -> tuple[int, str]:
    age = min(90, max(18, round(rng.gauss(41, 12))))
    return age, rng.choices(PLANS, weights=(5, 3, 2))[0]


def _churn_probability(age: int, plan: str) -> float:
    logit = 1.2 - 0.045 * age + {"free": 0.8, "pro": -0.2, "team": -0.9}[plan]
    return 1 / (1 + math.exp(-logit))


def main() -> None:
    rng = random.Random(20260101)
    with open(HERE / "reference.csv", "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["age", "plan"])
        for _ in range(500):
            writer.writerow(_inputs(rng))
    predictions, labels = [], []
    for i in range(300):
        age, plan = _inputs(rng)
        p = _churn_probability(age, plan)
        score = round(min(1.0, max(0.0, p + rng.gauss(0, 0.08))), 4)
        pid = f"ex-{i:04d}"
        timestamp = START_MS + i * 1000
        predictions.append({"prediction_id": pid, "model_id": "my-model", "model_version": "3",
                            "timestamp": timestamp, "features": {"age": age, "plan": plan},
                            "prediction": "churn" if score >= 0.5 else "stay", "score": score,
                            "segment": {"region": REGIONS[i % 2]}})
        truth = "churn" if rng.random() < p else "stay"
        if i % 10 != 9:
            labels.append({"prediction_id": pid, "model_id": "my-model", "label": truth,
                           "timestamp": timestamp + 30_000})
    for name, rows in (("predictions.jsonl", predictions), ("labels.jsonl", labels)):
        with open(HERE / name, "w", encoding="utf-8") as out:
            out.writelines(json.dumps(row, separators=(",", ":")) + "\n" for row in rows)


if __name__ == "__main__":
    main()
