"""The dashboard's read model on the real engine (chdb, in a child process: one engine per process), checked
against numbers computed here with numpy; request values are bound parameters; the report is self-contained."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stream.runtime.dashboard_data import parse_time
from stream.runtime.report import render_report

ROOT = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
WINDOWS = 6
rng = np.random.default_rng(5)
# (version, window) -> (predictions, labelled, accuracy); two versions share every window
TRAFFIC = {(v, w): (int(rng.integers(50, 500)), 0, float(rng.uniform(0.5, 1.0))) for v in ("1", "2")
           for w in range(WINDOWS)}
TRAFFIC = {k: (n, int(n * rng.uniform(0.3, 1.0)), acc) for k, (n, _, acc) in TRAFFIC.items()}
PSI = rng.uniform(0, 0.6, size=(2, WINDOWS))  # features a, b of version 1

_RUN = textwrap.dedent("""
    import datetime as dt, json, re, sys, tempfile
    from stream.storage.clickhouse import ClickHouse
    from stream.storage.migrations import migrate
    from stream.runtime.dashboard_data import DashboardData, TimeRange
    args = json.loads(sys.argv[1])
    ch = ClickHouse("chdb://" + tempfile.mkdtemp(), "board")
    migrate(ch)
    ts = lambda ms: dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    for table, columns, rows in args["inserts"]:
        when = lambda v: (dt.datetime.fromisoformat(v).replace(tzinfo=dt.UTC)
                          if isinstance(v, str) and re.fullmatch(r"2026-\\S+ \\S+:\\S+:\\S+", v) else v)
        ch.insert(table, [[when(v) for v in r] for r in rows], columns)
    data = DashboardData(lambda sql, params: ch.query_rows(sql, params), "board")
    full = TimeRange()
    cut = TimeRange(ts(args["since"]), ts(args["until"]))
    print(json.dumps({
        "models": data.models(full), "cut": data.models(cut),
        "v1": data.model("m", "1", "", full), "latest": data.model("m", None, "", full),
        "evil": data.model("m' OR '1'='1", "1' OR '1'='1", "' OR 1=1 --", full),
    }, default=str))
""")


def _ms(w: int) -> int:
    return int((T0 + dt.timedelta(minutes=w)).timestamp() * 1000)


def _inserts() -> list[tuple[str, list[str], list[list[Any]]]]:
    wm_cols = ["model_id", "model_version", "segment", "window_start", "window_end", "metric", "value", "samples",
               "version", "updated_at"]
    wm = []
    for (v, w), (n, labelled, acc) in TRAFFIC.items():
        start = f"2026-03-01 12:{w:02d}:00"
        end = f"2026-03-01 12:{w + 1:02d}:00"
        for metric, value, samples in (("predictions", n, n), ("labelled", labelled, labelled),
                                       ("accuracy", acc, labelled)):
            wm.append(["m", v, "", start, end, metric, float(value), samples, 1, start])
        wm.append(["m", v, "region=eu", start, end, "accuracy", 0.5, 10, 1, start])
    fd_cols = ["model_id", "model_version", "segment", "window_start", "window_end", "feature", "test", "statistic",
               "p_value", "threshold", "drifted", "insufficient", "samples", "version"]
    fd = [["m", "1", "", f"2026-03-01 12:{w:02d}:00", f"2026-03-01 12:{w + 1:02d}:00", f, test,
           float(PSI[i, w]) if test == "psi" else 0.01, None, 0.25, int(test == "ks" and f == "b" and w >= 4), 0,
           100, 1]
          for i, f in enumerate("ab") for w in range(WINDOWS) for test in ("psi", "ks")]
    al_cols = ["alert_id", "state", "severity", "model_id", "model_version", "segment", "rule", "metric", "observed",
               "threshold", "window_start", "window_end", "time", "message", "evidence_sql"]
    al = [["a1", "firing", "critical", "m", "1", "", "acc", "accuracy", 0.5, 0.7, "2026-03-01 12:02:00",
           "2026-03-01 12:03:00", "2026-03-01 12:03:01", "accuracy fell", "SELECT 1"],
          ["a2", "firing", "warning", "m", "1", "", "cov", "label_coverage", 0.2, 0.5, None, None,
           "2026-03-01 12:01:01", "coverage fell", "SELECT 2"],
          ["a2", "resolved", "warning", "m", "1", "", "cov", "label_coverage", 0.9, 0.5, None, None,
           "2026-03-01 12:04:01", "resolved", "SELECT 2"]]
    return [("window_metrics", wm_cols, wm), ("feature_drift", fd_cols, fd), ("alerts", al_cols, al)]


@pytest.fixture(scope="module")
def board() -> dict[str, Any]:
    args = {"inserts": _inserts(), "since": _ms(2), "until": _ms(5)}
    result = subprocess.run([sys.executable, "-c", _RUN, json.dumps(args)], capture_output=True, text=True,
                            timeout=180, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_overview_sums_counts_and_weights_the_headline_by_samples_across_versions(board: dict[str, Any]) -> None:
    [m] = board["models"]
    n = np.array([[TRAFFIC[(v, w)][0] for w in range(WINDOWS)] for v in ("1", "2")])
    labelled = np.array([[TRAFFIC[(v, w)][1] for w in range(WINDOWS)] for v in ("1", "2")])
    acc = np.array([[TRAFFIC[(v, w)][2] for w in range(WINDOWS)] for v in ("1", "2")])
    assert m["predictions"] == n.sum() and m["labelled"] == labelled.sum() and m["windows"] == WINDOWS
    assert m["label_coverage"] == pytest.approx(labelled.sum() / n.sum())
    weighted = np.average(acc, axis=0, weights=labelled)
    assert m["headline"] == "accuracy"
    assert m["sparkline"]["t"] == [_ms(w) for w in range(WINDOWS)]
    assert m["sparkline"]["v"] == pytest.approx(weighted.tolist())
    assert m["headline_value"] == pytest.approx(weighted[-1])
    # a2 was resolved, a1 still fires: one firing alert, critical
    assert (m["health"], m["firing"]) == ("critical", 1)
    assert m["drifted_features"] == ["b"]  # drifted in the last windows, by the ks test


def test_the_time_range_is_half_open_on_window_starts(board: dict[str, Any]) -> None:
    [m] = board["cut"]
    assert m["sparkline"]["t"] == [_ms(2), _ms(3), _ms(4)]
    assert m["predictions"] == sum(TRAFFIC[(v, w)][0] for v in ("1", "2") for w in (2, 3, 4))


def test_model_page_series_heatmap_and_alerts(board: dict[str, Any]) -> None:
    page = board["v1"]
    assert set(page["versions"]) == {"1", "2"}
    assert page["segments"] == ["", "region=eu"]
    assert page["metrics"]["t"] == [_ms(w) for w in range(WINDOWS)]
    assert page["metrics"]["series"]["accuracy"] == pytest.approx([TRAFFIC[("1", w)][2] for w in range(WINDOWS)])
    heat = page["heatmap"]
    assert heat["features"] == ["a", "b"] and heat["windows"] == [_ms(w) for w in range(WINDOWS)]
    assert np.allclose(np.array(heat["statistic"], dtype=float), PSI)
    assert heat["drifted"] == [[0] * WINDOWS, [0, 0, 0, 0, 1, 1]]
    assert heat["drifted_tests"][1][4] == "ks"
    alerts = {a["alert_id"]: a for a in page["alerts"]}
    assert alerts["a1"]["state"] == "firing" and alerts["a1"]["resolved_at"] is None
    assert alerts["a1"]["window_ms"] == _ms(2) and alerts["a1"]["evidence_sql"] == "SELECT 1"
    assert alerts["a2"]["state"] == "resolved" and alerts["a2"]["resolved_at"] is not None
    assert board["latest"]["version"] in ("1", "2")


def test_request_values_are_bound_not_spliced_into_the_sql(board: dict[str, Any]) -> None:
    evil = board["evil"]
    assert evil["versions"] == [] and evil["metrics"] == {"t": [], "series": {}} and evil["alerts"] == []


def test_parse_time_forms_and_a_one_line_error() -> None:
    assert parse_time("1767225600000") == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert parse_time("2026-01-01T01:00+01:00") == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert parse_time(None) is None and parse_time("") is None
    with pytest.raises(ValueError, match="bad time 'yesterday'"):
        parse_time("yesterday")


def test_report_is_one_file_with_nothing_to_fetch_and_data_that_cannot_close_its_script() -> None:
    data = {"model_id": "m</script><script>alert(1)</script>", "pages": {"1\x1f": {"note": "</script> & <!--"}},
            "overview": None, "default_version": "1", "default_key": "1\x1f", "since_ms": 0, "until_ms": 1,
            "generated_at_ms": 1}
    html = render_report(data)
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", html, re.I)
    assert html.count("<script>") == 3 and "uPlot" in html
    inlined = re.search(r"<script>window\.DW_REPORT = (.*?);</script>", html, re.S)
    assert inlined is not None and json.loads(inlined.group(1)) == data
    assert "<title>Driftwarden report: m&lt;/script&gt;" in html


def test_the_chart_library_and_pages_ship_inside_the_package() -> None:
    import tomllib

    from stream.runtime.dashboard import STATIC_FILES, static_text

    for name in STATIC_FILES:
        assert static_text(name), name
    assert "MIT License" in static_text("uPlot.LICENSE")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "static/*" in pyproject["tool"]["setuptools"]["package-data"]["stream.runtime"]
    page = static_text("dashboard.html")
    assert not re.search(r"(src|href)=\"https?:", page), "the dashboard must not load anything from a CDN"
