// Shows the viewer's local time beside every UTC time of the rollout pages.
(function () {
  function localTimes() {
    document.querySelectorAll("time[data-local]").forEach(function (el) {
      if (el.dataset.localDone) return;
      var moment = new Date(el.getAttribute("datetime"));
      if (isNaN(moment.getTime())) return;
      el.dataset.localDone = "1";
      var span = document.createElement("span");
      span.className = "muted local-time";
      span.textContent = "(" + moment.toLocaleString() + " local)";
      el.after(span);
    });
  }
  document.addEventListener("DOMContentLoaded", localTimes);
  document.addEventListener("htmx:afterSwap", localTimes);
})();
