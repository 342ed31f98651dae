// The war room's charts and live connection. The page reads fine without this file: every
// number is rendered by the server. This adds Plotly charts that grow in place (extendTraces),
// the websocket status ("stale" when disconnected) and the confirmation dialog.
(function () {
  "use strict";

  var COLORS = { control: "#4c566a", treatment: "#d55e00" };           // Okabe-Ito vermillion vs slate
  var BANDS = { control: "rgba(76,86,106,0.15)", treatment: "rgba(213,94,0,0.15)" };
  var DASHES = ["solid", "dash", "dot", "dashdot"];
  var ARMS = ["control", "treatment"];

  var state = {
    config: null,
    charts: {},          // chart id -> {el, traces: [{metric, arm, field}], scale}
    lastBucket: null,    // ISO string of the newest bucket drawn
    annotationKeys: {},
    annotations: [],
    connected: false,
    retries: 0,
    everConnected: false,
    updates: 0,          // chart updates applied (tests and benchmarks read it)
    lastUpdateAt: null,
  };
  window.warRoom = state;

  function readJson(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function scaleOf(chart, metric) {
    var s = chart.scale;
    if (typeof s === "number") return s;
    if (s && typeof s === "object" && s[metric] !== undefined) return s[metric];
    return 1;
  }

  function scaled(values, factor) {
    return (values || []).map(function (v) { return v === null || v === undefined ? null : v * factor; });
  }

  function label(metric) { return metric.replace(/_/g, " ").replace(" ms", ""); }

  function buildChart(chart, series) {
    var el = document.getElementById("chart-" + chart.id);
    if (!el || !window.Plotly) return;
    var data = [];
    var traces = [];
    var buckets = series.buckets || [];
    chart.metrics.forEach(function (metric, mi) {
      var factor = scaleOf(chart, metric);
      var onY2 = (chart.y2 || []).indexOf(metric) >= 0;
      ARMS.forEach(function (arm) {
        var m = ((series.arms || {})[arm] || {})[metric] || {};
        var common = { x: buckets.slice(), type: "scatter", mode: "lines", yaxis: onY2 ? "y2" : "y",
                       legendgroup: arm + metric, hoverinfo: "x+y+name" };
        data.push(Object.assign({}, common, { y: scaled(m.lo, factor), line: { width: 0 }, showlegend: false,
                                              name: arm + " " + label(metric) + " 95% CI low", hoverinfo: "skip" }));
        traces.push({ metric: metric, arm: arm, field: "lo" });
        data.push(Object.assign({}, common, { y: scaled(m.hi, factor), line: { width: 0 }, fill: "tonexty",
                                              fillcolor: BANDS[arm], showlegend: false,
                                              name: arm + " " + label(metric) + " 95% CI", hoverinfo: "skip" }));
        traces.push({ metric: metric, arm: arm, field: "hi" });
        data.push(Object.assign({}, common, { y: scaled(m.value, factor), name: arm + " · " + label(metric),
                                              line: { color: COLORS[arm], width: 2, dash: DASHES[mi % DASHES.length] } }));
        traces.push({ metric: metric, arm: arm, field: "value" });
      });
    });
    var layout = {
      margin: { l: 50, r: chart.y2 ? 50 : 10, t: 10, b: 40 }, height: 260,
      legend: { orientation: "h", y: -0.25, font: { size: 11 } },
      xaxis: { type: "date", title: { text: "time (UTC)" } },
      yaxis: { title: { text: chart.unit }, rangemode: "tozero", zeroline: false },
      shapes: [], annotations: [],
    };
    if (chart.y2) layout.yaxis2 = { overlaying: "y", side: "right", title: { text: "%" }, rangemode: "tozero" };
    if (chart.id === "latency" && state.config.timeout_ms) {
      layout.shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: state.config.timeout_ms, y1: state.config.timeout_ms,
                           line: { color: "#b3261e", dash: "dot", width: 1 } });
    }
    Plotly.newPlot(el, data, layout, { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] });
    state.charts[chart.id] = { el: el, traces: traces, chart: chart, baseShapes: layout.shapes.slice() };
  }

  // Merge new points into every chart: the bucket the chart already ends with is replaced (it was
  // still filling), newer ones are appended; both go through extendTraces, no new plot.
  function extendCharts(series) {
    var buckets = series.buckets || [];
    if (!buckets.length) return;
    var maxPoints = Math.ceil(state.config.window_seconds / state.config.bucket_seconds) + 1;
    Object.keys(state.charts).forEach(function (id) {
      var entry = state.charts[id];
      var gd = entry.el;
      var update = { x: [], y: [] };
      var indices = [];
      entry.traces.forEach(function (trace, i) {
        var existing = gd.data[i];
        var xs = buckets.slice();
        var values = ((((series.arms || {})[trace.arm] || {})[trace.metric] || {})[trace.field]) || [];
        var ys = scaled(values, scaleOf(entry.chart, trace.metric));
        // Drop what the chart already holds from the first new bucket on (normally just the last one).
        while (existing.x.length && existing.x[existing.x.length - 1] >= xs[0]) {
          existing.x.pop();
          existing.y.pop();
        }
        update.x.push(xs);
        update.y.push(ys);
        indices.push(i);
      });
      Plotly.extendTraces(gd, update, indices, maxPoints);
    });
    state.lastBucket = buckets[buckets.length - 1];
    state.updates += 1;
    state.lastUpdateAt = Date.now();
    document.dispatchEvent(new CustomEvent("warroom:chart-updated", { detail: { buckets: buckets } }));
  }

  function annotationShapes() {
    var shapes = [];
    var notes = [];
    state.annotations.forEach(function (a) {
      var colour = a.kind === "alert" ? "#b3261e" : "#1f5fae";
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: a.at, x1: a.at, y0: 0, y1: 1,
                    line: { color: colour, width: 1, dash: a.kind === "alert" ? "dot" : "solid" } });
      notes.push({ x: a.at, xref: "x", y: 1, yref: "paper", yanchor: "bottom", showarrow: false,
                   text: a.kind === "alert" ? "⚠" : "◆", hovertext: a.kind + ": " + (a.text || ""),
                   font: { color: colour, size: 12 } });
    });
    return { shapes: shapes, notes: notes };
  }

  function addAnnotations(items) {
    var added = false;
    (items || []).forEach(function (a) {
      if (!a || !a.at) return;
      var key = a.kind + "|" + a.at;
      if (state.annotationKeys[key]) return;
      state.annotationKeys[key] = true;
      state.annotations.push(a);
      added = true;
    });
    if (!added) return;
    var drawn = annotationShapes();
    Object.keys(state.charts).forEach(function (id) {
      var entry = state.charts[id];
      Plotly.relayout(entry.el, { shapes: entry.baseShapes.concat(drawn.shapes), annotations: drawn.notes });
    });
  }

  var featureChartText = null;

  function drawFeatureHealth() {
    var el = document.getElementById("chart-feature_health");
    var source = document.getElementById("wr-feature-chart");
    if (!el || !window.Plotly || !source || source.textContent === featureChartText) return;  // unchanged: keep it
    featureChartText = source.textContent;
    var data = readJson("wr-feature-chart");
    if (!data) return;
    var traces = [];
    Object.keys(data).forEach(function (feature) {
      var f = data[feature];
      traces.push({ type: "bar", name: feature + " default share", x: f.segments.map(function (s) { return feature + " · " + s; }),
                    y: scaled(f.default_share, 100), marker: { color: "#d55e00" } });
      traces.push({ type: "scatter", mode: "markers", name: feature + " reference", showlegend: false,
                    x: f.segments.map(function (s) { return feature + " · " + s; }), y: scaled(f.reference, 100),
                    marker: { symbol: "line-ew-open", size: 18, color: "#4c566a", line: { width: 3 } } });
    });
    Plotly.react(el, traces, { margin: { l: 50, r: 10, t: 10, b: 90 }, height: 260, showlegend: false,
                               yaxis: { title: { text: "% default values" }, rangemode: "tozero" } },
                 { displaylogo: false, responsive: true });
  }

  function localTimes(root) {
    (root || document).querySelectorAll("time[data-local]").forEach(function (el) {
      if (el.dataset.localDone) return;
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      el.dataset.localDone = "1";
      var span = document.createElement("span");
      span.className = "muted local-time";
      span.textContent = " (" + d.toLocaleTimeString() + " local)";
      el.after(span);
    });
  }

  function setConnection(kind, text) {
    var el = document.getElementById("wr-connection");
    if (el) { el.dataset.state = kind; el.textContent = text; }
    document.body.classList.toggle("wr-stale", kind === "stale");
  }

  function onWsMessage(evt) {
    var message = evt.detail.message;
    if (typeof message !== "string" || message.charAt(0) !== "{") return;   // HTML: htmx swaps it
    evt.preventDefault();
    var parsed;
    try { parsed = JSON.parse(message); } catch (e) { return; }
    if (parsed.kind === "points") extendCharts(parsed);
    else if (parsed.kind === "annotation") addAnnotations([{ at: parsed.at, kind: parsed.topic === "alerts" ? "alert" : "policy",
                                                              text: (parsed.payload || {}).reason || (parsed.payload || {}).evidence || "" }]);
    else if (parsed.kind === "caught_up") setConnection("live", "Live");
  }

  function init() {
    state.config = readJson("wr-config");
    var series = readJson("wr-series") || {};
    if (!state.config) return;
    state.config.charts.forEach(function (chart) { buildChart(chart, series); });
    var buckets = series.buckets || [];
    state.lastBucket = buckets.length ? buckets[buckets.length - 1] : null;
    addAnnotations(state.config.annotations);
    drawFeatureHealth();
    localTimes(document);
    state.readyAt = performance.now();  // charts drawn: the page is interactive (warroom_load reads it)

    var dialog = document.getElementById("wr-dialog");
    document.body.addEventListener("htmx:afterSwap", function (evt) {
      if (evt.detail.target && evt.detail.target.id === "wr-dialog-body" && dialog && !dialog.open) dialog.showModal();
    });
    document.body.addEventListener("click", function (evt) {
      if (evt.target.matches && evt.target.matches(".wr-cancel") && dialog && dialog.open) {
        evt.preventDefault();
        dialog.close();
      }
    });
    document.body.addEventListener("htmx:wsBeforeMessage", onWsMessage);
    document.body.addEventListener("htmx:wsAfterMessage", function () {
      addAnnotations(readJson("wr-annotations"));
      drawFeatureHealth();
      localTimes(document);
    });
    document.body.addEventListener("htmx:wsConnecting", function () {
      if (state.everConnected) setConnection("stale", "Disconnected: reconnecting… (numbers may be stale)");
    });
    document.body.addEventListener("htmx:wsOpen", function (evt) {
      state.connected = true;
      state.everConnected = true;
      state.retries = 0;
      setConnection("catching-up", "Live (catching up…)");
      // Ask for every panel and the chart points since the last bucket drawn: nothing missed.
      evt.detail.socketWrapper.send(JSON.stringify({ catch_up_since: state.lastBucket }));
    });
    document.body.addEventListener("htmx:wsClose", function (evt) {
      state.connected = false;
      var code = evt.detail.event && evt.detail.event.code;
      if (code === 4403 || code === 4400) { setConnection("stale", "Live updates refused (" + code + ")"); return; }
      setConnection("stale", "Disconnected: reconnecting… (numbers may be stale)");
      // The ws extension retries by itself only after abnormal closes (1006, 1011-1013); a server
      // that went away cleanly (1000/1001, a restart) gets the same backoff from here.
      if ([1006, 1011, 1012, 1013].indexOf(code) < 0 && evt.detail.socketWrapper) {
        var delay = Math.random() * Math.min(30000, 1000 * Math.pow(2, state.retries++));
        setTimeout(function () { evt.detail.socketWrapper.reconnect(); }, delay);
      }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
