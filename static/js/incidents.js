// Incident pages: local time beside UTC, print button, and live refresh of the incident body.
// The pages are complete without this script (UTC is server-rendered; forms post normally).
(function () {
  "use strict";

  function localTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      if (el.dataset.localDone) return;
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when)) return;
      var span = document.createElement("span");
      span.className = "local-time";
      span.textContent = " (local " + when.toLocaleString([], {dateStyle: "short", timeStyle: "medium"}) + ")";
      el.after(span);
      el.dataset.localDone = "1";
    });
  }

  function printButtons() {
    document.querySelectorAll("[data-print]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () { window.print(); });
    });
  }

  // Live: any news on the incidents/alerts/policy groups (delivered by the war room's websocket)
  // refreshes the incident body from the server; if the socket is unavailable, poll instead.
  function live() {
    var page = document.getElementById("incident");
    if (!page) return;
    var status = document.getElementById("incident-live");
    var url = page.dataset.liveUrl;
    var pending = false;

    function editing() {
      var active = document.activeElement;
      return active && page.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
    }

    function refresh() {
      if (pending || editing()) return;  // never throw away what someone is typing
      pending = true;
      fetch(url, {credentials: "same-origin", headers: {"HX-Request": "true"}})
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var holder = document.createElement("div");
          holder.innerHTML = html;
          var fresh = holder.querySelector("#incident-live-body");
          var current = document.getElementById("incident-live-body");
          if (fresh && current) { current.replaceWith(fresh); localTimes(fresh); }
        })
        .catch(function () {})
        .finally(function () { pending = false; });
    }

    function setStatus(text) { if (status) status.textContent = text; }

    var delay = 1000;
    var failures = 0;
    function connect() {
      var proto = location.protocol === "https:" ? "wss://" : "ws://";
      var socket;
      try { socket = new WebSocket(proto + location.host + page.dataset.wsUrl); }
      catch (e) { return poll(); }
      socket.onopen = function () {
        delay = 1000; failures = 0; setStatus("Live");
        if (polling) { clearInterval(polling); polling = null; }
        refresh();  // catch up on what happened while disconnected
      };
      // The war room's socket also carries KPI refreshes every few seconds; only news that
      // reaches its feed (policy, alerts, sign-offs, incidents) can change this page.
      socket.onmessage = function (event) {
        var data = typeof event.data === "string" ? event.data : "";
        if (data.indexOf('id="wr-feed"') !== -1 || data.indexOf('"kind": "annotation"') !== -1) refresh();
      };
      socket.onclose = function () {
        failures += 1;
        if (failures >= 3) { poll(); }  // no websocket here (or not allowed): poll, keep retrying slowly
        else { setStatus("Reconnecting…"); }
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 60000);
      };
    }
    var polling = null;
    function poll() {
      if (polling) return;
      setStatus("Live (polling every 20 s)");
      polling = setInterval(refresh, 20000);
    }
    if ("WebSocket" in window && page.dataset.wsUrl) connect(); else poll();
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    printButtons();
    live();
  });
})();
