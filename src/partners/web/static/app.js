/* Namaskah Partners: the little JavaScript the pages need (copy buttons, charts, confirmations). */
(function () {
  "use strict";

  function copyText(button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) return;
    var value = target.value !== undefined ? target.value : target.textContent;
    var done = function () {
      var old = button.textContent;
      button.textContent = "Copied";
      button.setAttribute("aria-live", "polite");
      setTimeout(function () { button.textContent = old; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(value).then(done, function () { target.select(); document.execCommand("copy"); done(); });
    } else {
      if (target.select) target.select();
      document.execCommand("copy");
      done();
    }
  }

  var palette = { clicks: "#4338ca", conversions: "#0f766e", earnings: "#c2410c", revenue: "#4338ca", commissions: "#c2410c", payouts: "#0f766e" };

  function drawChart(canvas) {
    if (!window.Chart || canvas.dataset.drawn) return;
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source) return;
    var spec = JSON.parse(source.textContent);
    canvas.dataset.drawn = "1";
    var datasets = spec.series.map(function (series) {
      var color = palette[series.key] || "#475569";
      return {
        type: series.type || "line", label: series.label, data: series.data, yAxisID: series.axis || "y",
        borderColor: color, backgroundColor: series.type === "bar" ? color + "b3" : color,
        fill: false, cubicInterpolationMode: "monotone", pointRadius: 0, borderWidth: 2, order: series.type === "bar" ? 2 : 1
      };
    });
    var scales = { x: { grid: { display: false }, ticks: { maxTicksLimit: 8 } }, y: { beginAtZero: true, position: "left" } };
    if (spec.series.some(function (s) { return s.axis === "y2"; })) {
      scales.y2 = { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } };
    }
    new window.Chart(canvas, {
      data: { labels: spec.labels, datasets: datasets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom" } }, scales: scales
      }
    });
  }

  function init(root) {
    root.querySelectorAll("canvas[data-chart]").forEach(drawChart);
  }

  document.addEventListener("click", function (event) {
    var copy = event.target.closest("[data-copy]");
    if (copy) { event.preventDefault(); copyText(copy); }
  });
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  }, true);
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSettle", function (event) { init(event.target); });
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    if (status >= 400 && status < 500 && event.detail.xhr.responseText && event.detail.target) {
      event.detail.shouldSwap = true;
    }
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status === 422 || status === 409 || status === 403 || status === 404) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
