// The war room's charts and live connection. The page reads fine without this file: every
// number is rendered by the server. This adds Plotly charts that grow in place (new points are
// merged into the series held here and each chart is updated with Plotly.react), the websocket
// status ("stale" when disconnected) and the confirmation dialog.
(function () {
  "use strict";

  var COLORS = { control: "#4c566a", treatment: "#d55e00" };           // Okabe-Ito vermillion vs slate
  var BANDS = { control: "rgba(76,86,106,0.15)", treatment: "rgba(213,94,0,0.15)" };
  var DASHES = ["solid", "dash", "dot", "dashdot"];
  var ARMS = ["control", "treatment"];
  var FIELDS = ["value", "lo", "hi"];

  var state = {
    config: null,
    series: null,        // the points every chart draws: {buckets, arms: {arm: {metric: {value, lo, hi}}}}
    charts: {},          // chart id -> {el, chart, layout, baseShapes}
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

  // The 95% band as one closed shape per run of buckets that have one: along the upper bound, back
  // along the lower (a null between runs keeps Plotly from joining them). One trace instead of a
  // lower and an upper trace filled "tonexty": a third fewer traces to lay out and draw.
  function bandShape(buckets, lo, hi) {
    var x = [], y = [], run = [];
    function close() {
      if (!run.length) return;
      if (x.length) { x.push(null); y.push(null); }
      run.forEach(function (i) { x.push(buckets[i]); y.push(hi[i]); });
      run.slice().reverse().forEach(function (i) { x.push(buckets[i]); y.push(lo[i]); });
      run = [];
    }
    buckets.forEach(function (_, i) {
      if (lo[i] === null || lo[i] === undefined || hi[i] === null || hi[i] === undefined) close();
      else run.push(i);
    });
    close();
    return { x: x, y: y };
  }

  function chartData(chart) {
    var series = state.series;
    var buckets = series.buckets;
    var data = [];
    chart.metrics.forEach(function (metric, mi) {
      var factor = scaleOf(chart, metric);
      var axis = (chart.y2 || []).indexOf(metric) >= 0 ? "y2" : "y";
      ARMS.forEach(function (arm) {
        var m = ((series.arms || {})[arm] || {})[metric] || {};
        var band = bandShape(buckets, scaled(m.lo, factor), scaled(m.hi, factor));
        data.push({ x: band.x, y: band.y, type: "scatter", mode: "lines", yaxis: axis, fill: "toself",
                    fillcolor: BANDS[arm], line: { width: 0 }, showlegend: false, legendgroup: arm + metric,
                    name: arm + " " + label(metric) + " 95% CI", hoverinfo: "skip" });
        data.push({ x: buckets, y: scaled(m.value, factor), type: "scatter", mode: "lines", yaxis: axis,
                    legendgroup: arm + metric, hoverinfo: "x+y+name", name: arm + " · " + label(metric),
                    line: { color: COLORS[arm], width: 2, dash: DASHES[mi % DASHES.length] } });
      });
    });
    return data;
  }

  function buildChart(chart, drawn) {
    var el = document.getElementById("chart-" + chart.id);
    if (!el || !window.Plotly) return;
    var baseShapes = [];
    if (chart.id === "latency" && state.config.timeout_ms) {
      baseShapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: state.config.timeout_ms, y1: state.config.timeout_ms,
                        line: { color: "#b3261e", dash: "dot", width: 1 } });
    }
    var layout = {
      margin: { l: 50, r: chart.y2 ? 50 : 10, t: 10, b: 40 }, height: 260,
      legend: { orientation: "h", y: -0.25, font: { size: 11 } },
      xaxis: { type: "date", title: { text: "time (UTC)" } },
      yaxis: { title: { text: chart.unit }, rangemode: "tozero", zeroline: false },
      // the policy changes and alerts known at load are drawn with the chart, not in a second pass
      shapes: baseShapes.concat(drawn.shapes), annotations: drawn.notes,
    };
    if (chart.y2) layout.yaxis2 = { overlaying: "y", side: "right", title: { text: "%" }, rangemode: "tozero" };
    Plotly.newPlot(el, chartData(chart), layout, { displaylogo: false, responsive: true,
                                                    modeBarButtonsToRemove: ["lasso2d", "select2d"] });
    state.charts[chart.id] = { el: el, chart: chart, layout: layout, baseShapes: baseShapes };
  }

  // Merge new points into the series: the bucket the charts already end with is replaced (it was
  // still filling), newer ones are appended, the oldest fall off past the window; then every chart
  // is updated in place (Plotly.react: no new plot).
  function extendCharts(update) {
    var buckets = update.buckets || [];
    if (!buckets.length || !state.series) return;
    var series = state.series;
    var maxPoints = Math.ceil(state.config.window_seconds / state.config.bucket_seconds) + 1;
    var keep = 0;
    while (keep < series.buckets.length && series.buckets[keep] < buckets[0]) keep++;
    var drop = Math.max(0, keep + buckets.length - maxPoints);
    series.buckets = series.buckets.slice(drop, keep).concat(buckets);
    ARMS.forEach(function (arm) {
      var held = series.arms[arm] = series.arms[arm] || {};
      var fresh = (update.arms || {})[arm] || {};
      Object.keys(fresh).forEach(function (metric) {
        if (!fresh[metric] || Array.isArray(fresh[metric])) return;   // "orders" is a plain list; not drawn
        var old = held[metric] || {};
        var merged = {};
        FIELDS.forEach(function (field) {
          var before = (old[field] || []).slice(drop, keep);
          while (before.length < keep - drop) before.unshift(null);
          merged[field] = before.concat(fresh[metric][field] || []);
        });
        held[metric] = merged;
      });
    });
    Object.keys(state.charts).forEach(function (id) {
      var entry = state.charts[id];
      Plotly.react(entry.el, chartData(entry.chart), entry.layout);
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

  // Remember annotations not seen yet; true when there were any.
  function noteAnnotations(items) {
    var added = false;
    (items || []).forEach(function (a) {
      if (!a || !a.at) return;
      var key = a.kind + "|" + a.at;
      if (state.annotationKeys[key]) return;
      state.annotationKeys[key] = true;
      state.annotations.push(a);
      added = true;
    });
    return added;
  }

  function addAnnotations(items) {
    if (!noteAnnotations(items)) return;
    var drawn = annotationShapes();
    Object.keys(state.charts).forEach(function (id) {
      var entry = state.charts[id];
      entry.layout.shapes = entry.baseShapes.concat(drawn.shapes);
      entry.layout.annotations = drawn.notes;
      Plotly.relayout(entry.el, { shapes: entry.layout.shapes, annotations: entry.layout.annotations });
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
    state.series = { buckets: series.buckets || [], arms: series.arms || {} };
    noteAnnotations(state.config.annotations);
    var drawn = annotationShapes();
    state.config.charts.forEach(function (chart) { buildChart(chart, drawn); });
    var buckets = state.series.buckets;
    state.lastBucket = buckets.length ? buckets[buckets.length - 1] : null;
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
