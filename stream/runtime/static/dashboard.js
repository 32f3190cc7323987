/* Driftwarden dashboard: plain JS over uPlot. Live mode polls the service's JSON endpoints; report mode
   (window.DW_REPORT set by `driftwarden report`) renders the data inlined in the file and fetches nothing. */
(function () {
  "use strict";
  const REPORT = window.DW_REPORT || null;
  const POLL_MS = 5000;
  const COLORS = ["#3465a4", "#c8372d", "#2e9d5b", "#d98a1c", "#7b4fb0", "#1b9aaa", "#8a6d3b", "#e0569b"];
  /* Charts of the model page: metrics of one family share a chart; business metrics (KEY_sum, KEY_mean) and
     anything unknown get a chart of their own, after these. */
  const GROUPS = [
    ["volume", ["predictions", "labelled", "orphans"]],
    ["quality", ["accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "macro_f1", "micro_f1"]],
    ["calibration", ["brier", "ece", "estimate_calibration_error", "estimate_reliable"]],
    ["error", ["mae", "rmse", "mape", "mean_error"]],
    ["label coverage", ["label_coverage"]],
    ["scores", ["score_mean", "positive_rate", "fpr", "log_loss", "r2", "prediction_mean", "prediction_std"]],
    ["latency (ms)", ["latency_mean", "latency_p50", "latency_p95", "latency_p99"]],
    ["confusion counts", ["tp", "fp", "tn", "fn"]],
  ];
  const app = document.getElementById("app");
  const query = new URLSearchParams(location.search);
  const state = {
    model: REPORT ? REPORT.model_id : query.get("model"),
    version: query.get("version") || (REPORT ? REPORT.default_version : ""),
    segment: query.get("segment") || "",
    range: query.has("range") ? query.get("range") : "24h",
  };
  const charts = {};
  const last = {};

  const esc = (v) => String(v === null || v === undefined ? "" : v).replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const fmt = (v, digits) => (v === null || v === undefined ? "–" : Math.abs(v) >= 1000 ?
    Math.round(v).toLocaleString("en") : Number(v).toFixed(digits === undefined ? 3 : digits));
  const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1) + " %");
  const COMPACT = new Intl.NumberFormat("en", { notation: "compact", maximumSignificantDigits: 4 });
  const compact = (v) => (v === null || v === undefined ? "" : Math.abs(v) >= 1000 ? COMPACT.format(v) : String(+v.toPrecision(4)));
  const time = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) + "Z" : "–");

  function token() {
    try {
      const m = location.hash.match(/token=([^&]+)/);
      if (m) localStorage.setItem("dwToken", decodeURIComponent(m[1]));
      return localStorage.getItem("dwToken");
    } catch (e) { return null; }
  }

  async function getJson(path) {
    const headers = {};
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    const response = await fetch(path, { headers, cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body && body.error ? body.error : response.status + " " + response.statusText);
    return body;
  }

  function status(text) { const el = document.getElementById("status"); if (el) el.textContent = text; }

  function changed(id, data) {
    const json = JSON.stringify(data);
    if (last[id] === json) return false;
    last[id] = json;
    return true;
  }

  function countPoints(data) {
    let n = 0;
    for (let i = 1; i < data.length; i++) for (const v of data[i]) if (v !== null && v !== undefined) n++;
    return n;
  }

  function drawMarkers(u) {
    const ctx = u.ctx;
    for (const m of u.dwMarkers || []) {
      const x = u.valToPos(m.t / 1000, "x", true);
      if (!(x >= u.bbox.left && x <= u.bbox.left + u.bbox.width)) continue;
      ctx.save();
      ctx.strokeStyle = m.color;
      ctx.lineWidth = 1.5 * (window.devicePixelRatio || 1);
      ctx.setLineDash(m.dash || [5, 4]);
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
      ctx.restore();
    }
  }

  /* A line chart in `el` (created once, then updated in place); markers are vertical lines on the time axis. */
  function lineChart(id, el, title, t, series, markers) {
    const names = Object.keys(series);
    const data = [t.map((x) => x / 1000), ...names.map((n) => series[n])];
    const key = names.join("\u001f");
    let chart = charts[id];
    if (chart && (chart.key !== key || !document.body.contains(chart.plot.root))) {
      chart.plot.destroy();
      chart = null;
    }
    if (!chart) {
      const opts = {
        title, width: Math.max(300, el.clientWidth - 16 || 440), height: 190,
        scales: { x: { time: true } },
        series: [{}, ...names.map((n, i) => ({
          label: n, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false,
          points: { show: t.length <= 40, size: 4 },
        }))],
        axes: [{}, { size: 60, values: (u, vals) => vals.map(compact) }],
        hooks: { draw: [drawMarkers] },
      };
      chart = charts[id] = { key, plot: new uPlot(opts, data, el) };
    } else {
      chart.plot.setData(data);
    }
    chart.plot.dwMarkers = markers;
    chart.plot.redraw(false, false);
    el.dataset.points = String(countPoints(data));
    return chart.plot;
  }

  function sparkline(el, t, v) {
    const data = [t.map((x) => x / 1000), v];
    new uPlot({
      width: 170, height: 38, legend: { show: false }, cursor: { show: false },
      scales: { x: { time: false } }, axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: "#3465a4", width: 1.5, spanGaps: true, points: { show: false } }],
    }, data, el);
    el.dataset.points = String(countPoints(data));
  }

  function badge(health, firing, drifted) {
    const text = health === "ok" ? "healthy" : health === "drift" ? "inputs drifting" : `${health} (${firing} firing)`;
    const tip = drifted && drifted.length ? "drifted inputs in the last windows: " + drifted.join(", ") : "";
    return `<span class="badge health-${esc(health)}" title="${esc(tip)}">${esc(text)}</span>`;
  }

  /* ---- overview ------------------------------------------------------------------------------------ */

  function renderOverview(models) {
    if (!changed("overview", models)) return;
    const rows = models.map((m, i) => `<tr data-model="${esc(m.model_id)}" data-health="${esc(m.health)}">
      <td>${badge(m.health, m.firing, m.drifted_features)}</td>
      <td><a href="${REPORT ? "#" : "?model=" + encodeURIComponent(m.model_id) + "&range=" + encodeURIComponent(state.range)}">${esc(m.model_id)}</a></td>
      <td class="num">${fmt(m.predictions, 0)}</td><td class="num">${fmt(m.windows, 0)}</td>
      <td class="num">${pct(m.label_coverage)}</td>
      <td>${esc(m.headline || "–")}</td><td class="num">${fmt(m.headline_value)}</td>
      <td class="drifted">${esc(m.drifted_features.join(", ") || "–")}</td>
      <td><div class="spark" id="spark-${i}"></div></td></tr>`).join("");
    app.innerHTML = `<h2>Models</h2><table id="models"><thead><tr><th>health</th><th>model</th>
      <th>predictions</th><th>windows</th><th>label coverage</th><th>headline</th><th>latest</th>
      <th>drifted inputs (last windows)</th><th>trend</th></tr>
      </thead><tbody>${rows || '<tr><td colspan="9" class="muted">no model has data in this range yet</td></tr>'}
      </tbody></table>`;
    models.forEach((m, i) => sparkline(document.getElementById("spark-" + i), m.sparkline.t, m.sparkline.v));
  }

  /* ---- one model ----------------------------------------------------------------------------------- */

  function skeleton() {
    if (document.getElementById("metrics")) return;
    document.getElementById("crumb").innerHTML = " / " + esc(state.model);
    app.innerHTML = `
      <div id="summary"></div>
      <p>version <select id="version"></select> segment <select id="segment"></select>
        <span class="marker-note">dashed lines: <span style="color:#d98a1c">drift detections</span>,
        <span style="color:#c8372d">alerts (at the window they judged)</span></span></p>
      <h2>Metrics per window</h2><div id="metrics" class="grid"></div>
      <h2>Feature drift (${"PSI"} per window; ● = drifted by at least one test)</h2><div id="heatmap"></div>
      <h2>Data quality</h2><div id="quality" class="grid"></div>
      <h2>Join health (all models)</h2><div id="join"></div>
      <h2>Alerts</h2><div id="alerts"></div>
      <h2>Drift detections</h2><div id="drift"></div>`;
    for (const which of ["version", "segment"]) {
      document.getElementById(which).addEventListener("change", (ev) => {
        state[which] = ev.target.value;
        if (!REPORT) {
          const q = new URLSearchParams(location.search);
          q.set(which, ev.target.value);
          history.replaceState(null, "", "?" + q.toString());
        }
        for (const k of Object.keys(last)) delete last[k];
        refresh();
      });
    }
  }

  function options(id, values, selected, label) {
    const el = document.getElementById(id);
    const html = values.map((v) => `<option value="${esc(v)}"${v === selected ? " selected" : ""}>${esc(label(v))}</option>`).join("");
    if (el.dataset.html !== html) { el.innerHTML = html; el.dataset.html = html; }
  }

  function metricGroups(names) {
    const known = new Set(GROUPS.flatMap(([, members]) => members));
    const groups = GROUPS.map(([g, members]) => [g, members.filter((m) => names.includes(m))])
      .filter(([, members]) => members.length);
    const rest = names.filter((n) => !known.has(n)).sort();
    const more = new Map();  // per-class metrics (NAME:CLASS), label-free estimates, business keys (KEY_sum/_mean)
    for (const n of rest) {
      const key = n.includes(":") ? n.split(":")[0] + " per class"
        : n.startsWith("estimated_") ? "estimated without labels (bounds in the data)"
        : n.replace(/_(sum|mean)$/, "");
      if (/^estimated_.*_(lower|upper)$/.test(n)) continue;
      if (!more.has(key)) more.set(key, []);
      more.get(key).push(n);
    }
    for (const [key, members] of more) groups.push([key, members]);
    return groups;
  }

  function renderMetrics(d, markers) {
    const grid = document.getElementById("metrics");
    const groups = metricGroups(Object.keys(d.metrics.series));
    const id = (g) => "m-" + g.replace(/[^a-z0-9_]+/gi, "-");
    const wanted = groups.map(([g]) => id(g)).join(",");
    if (grid.dataset.charts !== wanted) {
      grid.innerHTML = groups.map(([g]) => `<div class="card"><div class="chart" id="${esc(id(g))}" data-metric="${esc(g)}"></div></div>`).join("")
        || '<p class="muted">no windows for this version and segment in this range</p>';
      grid.dataset.charts = wanted;
    }
    for (const [g, members] of groups) {
      const series = {};
      for (const m of members) series[m] = d.metrics.series[m];
      lineChart(id(g), document.getElementById(id(g)), g, d.metrics.t, series, markers);
    }
  }

  function heatColor(v) {
    if (v === null || v === undefined) return "#eceef1";
    const x = Math.min(1, v / 0.5);
    return `hsl(${Math.round(120 * (1 - x))}, 65%, ${Math.round(88 - 38 * x)}%)`;
  }

  function renderHeatmap(h) {
    if (!changed("heatmap", h)) return;
    const el = document.getElementById("heatmap");
    if (!h.features.length) { el.innerHTML = '<p class="muted">no drift tests in this range</p>'; return; }
    const head = h.windows.map((t) => `<th class="win">${esc(time(t).slice(11, 19))}</th>`).join("");
    const rows = h.features.map((f, i) => `<tr><th class="feature">${esc(f)}</th>` + h.windows.map((t, j) => {
      const v = h.statistic[i][j];
      const tip = `${f} @ ${time(t)}: ${h.test} ${v === null ? "insufficient data" : fmt(v, 4)}` +
        (h.drifted[i][j] ? ` — drifted (${h.drifted_tests[i][j]})` : "");
      return `<td class="cell" data-drifted="${h.drifted[i][j]}" style="background:${heatColor(v)}" title="${esc(tip)}">${h.drifted[i][j] ? "●" : ""}</td>`;
    }).join("") + "</tr>").join("");
    el.innerHTML = `<div class="card" style="overflow-x:auto"><table class="heatmap"><thead><tr><th></th>${head}</tr></thead>
      <tbody>${rows}</tbody></table><p class="legend"><span style="background:${heatColor(0)}">PSI 0</span>
      <span style="background:${heatColor(0.1)}">0.1</span><span style="background:${heatColor(0.25)}">0.25</span>
      <span style="background:${heatColor(0.5)}">≥ 0.5</span><span style="background:${heatColor(null)}">insufficient data</span></p></div>`;
  }

  function renderQuality(q, markers) {
    const el = document.getElementById("quality");
    const names = Object.keys(q.series);
    if (!names.length) {
      if (changed("quality-empty", true)) el.innerHTML = '<p class="muted">no data-quality issue (every rate is 0) in this range</p>';
      return;
    }
    delete last["quality-empty"];
    if (!document.getElementById("q-rates")) el.innerHTML = '<div class="card"><div class="chart" id="q-rates"></div></div>';
    lineChart("q-rates", document.getElementById("q-rates"), "rates above zero (feature/check)", q.t, q.series, markers);
  }

  function renderJoin(j) {
    if (!changed("join", j)) return;
    const names = Object.keys(j);
    document.getElementById("join").innerHTML = names.length ? `<table style="width:auto"><tbody>${names.map((n) =>
      `<tr><th>${esc(n.replace(/_/g, " "))}</th><td class="num">${fmt(j[n], 0)}</td></tr>`).join("")}</tbody></table>`
      : '<p class="muted">no join statistics yet</p>';
  }

  function renderAlerts(alerts) {
    if (!changed("alerts", alerts)) return;
    document.getElementById("alerts").innerHTML = alerts.length ? `<table id="alert-table"><thead><tr><th>state</th>
      <th>severity</th><th>rule</th><th>version / segment</th><th>observed</th><th>threshold</th><th>fired</th>
      <th>resolved</th><th>message and evidence</th></tr></thead><tbody>${alerts.map((a) => `
      <tr data-state="${esc(a.state)}"><td>${a.state === "firing" ? badge(a.severity, 1) : "resolved"}</td>
      <td>${esc(a.severity)}</td><td>${esc(a.rule)}</td><td>${esc(a.model_version)} / ${esc(a.segment || "all")}</td>
      <td class="num">${fmt(a.observed)}</td><td class="num">${fmt(a.threshold)}</td><td>${time(a.fired_at)}</td>
      <td>${time(a.resolved_at)}</td><td>${esc(a.message)}<details><summary>evidence SQL</summary>
      <pre>${esc(a.evidence_sql)}</pre></details></td></tr>`).join("")}</tbody></table>`
      : '<p class="muted">no alerts in this range</p>';
  }

  function renderDrift(events) {
    if (!changed("drift", events)) return;
    document.getElementById("drift").innerHTML = events.length ? `<table id="drift-table"><thead><tr><th>time</th>
      <th>detector</th><th>signal</th><th>estimate before</th><th>estimate after</th></tr></thead><tbody>${events.map((e) =>
      `<tr><td>${time(e.t)}</td><td>${esc(e.detector)}</td><td>${esc(e.signal)}</td>
      <td class="num">${fmt(e.estimate_before)}</td><td class="num">${fmt(e.estimate_after)}</td></tr>`).join("")}</tbody></table>`
      : '<p class="muted">no drift detections in this range</p>';
  }

  function renderModel(d, overviewEntry) {
    skeleton();
    state.version = d.version;
    options("version", d.versions.length ? d.versions : [d.version], d.version, (v) => v || "(none)");
    options("segment", d.segments, d.segment, (s) => s || "all (population)");
    const s = overviewEntry;
    const summary = s ? `<p>${badge(s.health, s.firing, s.drifted_features)} &nbsp; ${fmt(s.predictions, 0)} predictions in ${fmt(s.windows, 0)}
      windows, label coverage ${pct(s.label_coverage)}, ${esc(s.headline || "")} ${fmt(s.headline_value)}${
      s.drifted_features.length ? "; drifted inputs in the last windows: " + esc(s.drifted_features.join(", ")) : ""}</p>` : "";
    if (changed("summary", summary)) document.getElementById("summary").innerHTML = summary;
    const markers = d.drift_events.map((e) => ({ t: e.t, color: "#d98a1c" }))
      .concat(d.alerts.map((a) => ({ t: a.window_ms || a.fired_at, color: "#c8372d", dash: [2, 2] })));
    renderMetrics(d, markers);
    renderHeatmap(d.heatmap);
    renderQuality(d.quality, markers);
    renderJoin(d.join);
    renderAlerts(d.alerts);
    renderDrift(d.drift_events);
  }

  /* ---- data ---------------------------------------------------------------------------------------- */

  async function refresh() {
    if (REPORT) {
      const key = state.version + "\u001f" + state.segment;
      const page = REPORT.pages[key] || REPORT.pages[REPORT.default_key];
      renderModel(page, REPORT.overview);
      const from = REPORT.since_ms > 0 ? time(REPORT.since_ms) : "the first window";
      status("report from " + from + " to " + time(REPORT.until_ms) + ", made " + time(REPORT.generated_at_ms));
      return;
    }
    const since = state.range ? "since=" + encodeURIComponent(state.range) : "";
    try {
      if (state.model) {
        const q = new URLSearchParams({ segment: state.segment });
        if (state.version) q.set("version", state.version);
        if (state.range) q.set("since", state.range);
        const [d, o] = await Promise.all([
          getJson("/api/models/" + encodeURIComponent(state.model) + "?" + q.toString()),
          getJson("/api/overview?" + since)]);
        renderModel(d, o.models.find((m) => m.model_id === state.model));
      } else {
        renderOverview((await getJson("/api/overview?" + since)).models);
      }
      status("updated " + new Date().toLocaleTimeString());
    } catch (e) {
      status("update failed: " + e.message);
    }
  }

  async function loop() {
    await refresh();
    if (!REPORT) setTimeout(loop, POLL_MS);
  }

  const range = document.getElementById("range");
  if (REPORT) {
    range.parentElement.firstChild.textContent = "";
    range.remove();
  } else {
    range.value = state.range;
    range.addEventListener("change", () => {
      state.range = range.value;
      const q = new URLSearchParams(location.search);
      q.set("range", range.value);
      history.replaceState(null, "", "?" + q.toString());
      for (const k of Object.keys(last)) delete last[k];
      refresh();
    });
  }
  window.addEventListener("resize", () => {
    for (const c of Object.values(charts)) {
      const el = c.plot.root.parentElement;
      if (el) c.plot.setSize({ width: Math.max(300, el.clientWidth - 16), height: 190 });
    }
  });
  loop();
})();
