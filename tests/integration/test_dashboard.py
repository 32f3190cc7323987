"""The built-in dashboard in headless Chromium (Debian's package, driven by Playwright) on a short demo run, and
the HTML report: opened with every network request refused, its numbers equal to `driftwarden sql`."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream.cli.report import ServiceSource
from stream.demo.synthetic import DRIFTED_FEATURES, SHADOW_MODELS
from stream.runtime.dashboard_data import TimeRange
from stream.runtime.report import report_data
from tests.helpers import wait_until
from tests.integration.conftest import http_json

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MODEL = "credit-risk"
# the demo's models and the inputs drifted in each: a challenger scores its champion's very requests
DRIFTED = {**DRIFTED_FEATURES, **{m: DRIFTED_FEATURES[spec["champion"]] for m, spec in SHADOW_MODELS.items()}}
TOKEN = "dashboard-test-token"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency (pip install -e .[dev])")


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed (apt-get install chromium; .ci/run does it)")
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _page(browser: Any, errors: list[str]) -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return page


def _points(page: Any, selector: str) -> list[int]:
    return [int(p) for p in page.eval_on_selector_all(selector, "els => els.map(e => e.dataset.points || '0')")]


def _cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "stream.cli", *args], env=env, capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def _inlined(html: str) -> dict[str, Any]:
    found = re.search(r"<script>window\.DW_REPORT = (.*?);</script>", html, re.S)
    assert found, "no inlined data in the report"
    return dict(json.loads(found.group(1)))


def test_dashboard_shows_the_demo_models_and_the_report_matches_sql(make_worker: Any, browser: Any,
                                                                      tmp_path: Path) -> None:
    worker = make_worker("demo", ["--demo", "--serve", "--duration", "20", "--rate", "300", "--drift-after", "8",
                                  "--window-seconds", "4"], DRIFTWARDEN_WEB_TOKEN=TOKEN)
    worker.start()
    wait_until(lambda: "still serving the dashboard" in worker.output(), 150, 0.5, "the demo traffic to end")
    assert f"{worker.url}/dashboard" in worker.output()  # the demo prints the dashboard's URL
    shots = tmp_path / "screenshots"
    shots.mkdir()
    errors: list[str] = []

    # --- overview: every model, unhealthy after the injected drift, sparklines with points ---------------
    page = _page(browser, errors)
    assert http_json(f"{worker.url}/api/overview")[0] == 401  # the data needs the token; the page does not
    page.goto(f"{worker.url}/dashboard#token={TOKEN}")  # the page keeps it and sends it as a bearer token
    page.wait_for_selector("tr[data-model]", timeout=30_000)
    health = dict(page.eval_on_selector_all("tr[data-model]",
                                            "rows => rows.map(r => [r.dataset.model, r.dataset.health])"))
    assert set(health) == set(DRIFTED), health
    assert all(h in ("drift", "warning", "critical") for h in health.values()), health
    drifted = dict(page.eval_on_selector_all("tr[data-model]", "rows => rows.map(r => [r.dataset.model, "
                                                                "r.querySelector('td.drifted').textContent])"))
    for model_id, features in DRIFTED.items():  # unhealthy because of the injected drift
        assert set(features) <= set(drifted[model_id].split(", ")), drifted
    assert all(n >= 3 for n in _points(page, ".spark")), _points(page, ".spark")
    page.screenshot(path=str(shots / "overview.png"), full_page=True)
    before = page.text_content("#status")
    page.wait_for_function(f"document.getElementById('status').textContent !== {json.dumps(before)}",
                           timeout=20_000)  # polled again: the page updates by itself

    # --- one model: metric charts, drift marked, heatmap names the drifted inputs, alerts with SQL ------
    # A 20 s run may end before any metric rule may judge (labels not yet due); the no-data rule fires by the
    # wall clock a few windows after the traffic ends, so the alert list has something to show.
    source = ServiceSource(worker.url, TOKEN)
    wait_until(lambda: source.model(MODEL, None, "", TimeRange())["alerts"], 90, 1.0, f"an alert on {MODEL}")
    page.goto(f"{worker.url}/dashboard?model={MODEL}")
    page.wait_for_selector("#m-quality[data-points]", timeout=30_000)
    assert _points(page, "#m-quality")[0] >= 3 * 4 and _points(page, "#m-volume")[0] >= 3 * 2
    assert page.is_visible("#drift")  # detections (none in so short a run, as a rule) are listed there
    drifted_rows = page.eval_on_selector_all(
        ".heatmap tbody tr", "rows => rows.filter(r => r.querySelector('td[data-drifted=\"1\"]'))"
                             ".map(r => r.querySelector('th').textContent)")
    assert set(DRIFTED_FEATURES[MODEL]) <= set(drifted_rows), drifted_rows
    assert page.eval_on_selector_all("#alert-table tr[data-state=firing]", "rows => rows.length") >= 1
    assert "SELECT" in (page.text_content("#alert-table pre") or "")
    page.screenshot(path=str(shots / "model.png"), full_page=True)
    page.close()  # it would go on polling the service stopped below
    assert not errors, errors

    # --- report through the running service (in this process), then from the data directory -------------
    windows = sorted(report_data(source, MODEL, TimeRange())["pages"].values(),
                     key=lambda p: p["version"])[0]["metrics"]["t"]
    assert len(windows) >= 4
    since, until = windows[1], windows[-1]  # a range that cuts windows off both ends
    rng = TimeRange(dt.datetime.fromtimestamp(since / 1000, dt.UTC), dt.datetime.fromtimestamp(until / 1000, dt.UTC))
    live = report_data(source, MODEL, rng)
    worker.stop(signal.SIGINT)  # the report below reads the data directory itself
    out = tmp_path / "report.html"
    _cli(worker.env, "report", MODEL, "--since", str(since), "--until", str(until), "--out", str(out))
    html = out.read_text()
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|\bimport\(|url\(\s*['\"]?https?:", html, re.I)
    data = _inlined(html)
    assert data["pages"].keys() == live["pages"].keys()
    for key, page_data in data["pages"].items():
        assert page_data["metrics"] == live["pages"][key]["metrics"], key

    rows = json.loads(_cli(worker.env, "sql", "--format", "json",
                           "SELECT model_version, segment, toUnixTimestamp64Milli(window_start) AS t, metric, value "
                           f"FROM driftwarden.window_metrics_latest WHERE model_id = '{MODEL}' "
                           f"AND window_start >= fromUnixTimestamp64Milli({since}) "
                           f"AND window_start < fromUnixTimestamp64Milli({until})"))
    expected: dict[tuple[str, str, int, str], float | None] = {}
    for r in rows:
        value = None if r["value"] is None or r["value"] != r["value"] else float(r["value"])
        expected[(r["model_version"], r["segment"], int(r["t"]), r["metric"])] = value
    shown = {(p["version"], p["segment"], t, metric): values[i]
             for p in data["pages"].values() for metric, values in p["metrics"]["series"].items()
             for i, t in enumerate(p["metrics"]["t"])}
    assert shown == expected
    assert data["overview"]["predictions"] == round(sum(
        v for (ver, seg, _, m), v in expected.items() if seg == "" and m == "predictions" and v is not None))

    # --- the report in the browser with every network request refused ---------------------------------
    requests: list[str] = []
    offline = _page(browser, errors)
    def refuse(route: Any) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            requests.append(route.request.url)
            route.abort()

    offline.route("**/*", refuse)
    offline.goto(out.as_uri())
    offline.wait_for_selector("#m-quality[data-points]", timeout=30_000)
    assert _points(offline, "#m-quality")[0] > 0
    offline.screenshot(path=str(shots / "report.png"), full_page=True)
    assert not requests, requests
    assert not errors, errors
