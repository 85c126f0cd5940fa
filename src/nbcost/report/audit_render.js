// Draws the audit's charts from the figures in <script id="nbcost-audit-figures">.
// Plain data in, plotly.js out: nothing here builds HTML from the data.
(function () {
  "use strict";
  var source = document.getElementById("nbcost-audit-figures");
  var figures = JSON.parse(source.textContent);
  var config = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud"] };
  Object.keys(figures).forEach(function (id) {
    var target = document.getElementById(id);
    if (target) {
      window.Plotly.newPlot(target, figures[id].data, figures[id].layout, config);
    }
  });
})();
