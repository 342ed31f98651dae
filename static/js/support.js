// Shows the viewer's local time beside every UTC time of the support pages.
(function () {
  function addLocalTimes() {
    document.querySelectorAll("time[data-local]").forEach(function (el) {
      if (el.querySelector(".local")) { return; }
      var moment = new Date(el.getAttribute("datetime"));
      if (isNaN(moment)) { return; }
      var span = document.createElement("span");
      span.className = "local";
      span.textContent = "(" + moment.toLocaleString() + " local)";
      el.appendChild(span);
    });
  }
  document.addEventListener("DOMContentLoaded", addLocalTimes);
  document.addEventListener("htmx:afterSwap", addLocalTimes);
})();
