// Progressive enhancement only: every page works without this file.
// The 예산현황 table's header links reload the page sorted on the server; with JavaScript the
// program rows are sorted in place within each 과 (소계 and 계 rows stay where the report has them).
(function () {
  "use strict";
  var table = document.getElementById("report");
  if (!table) return;
  function value(cell) {
    var text = (cell.textContent || "").trim().replace(/,/g, "").replace(/%p$/, "");
    var n = parseFloat(text);
    return isNaN(n) ? text : n;
  }
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    var link = th.querySelector("a");
    if (!link) return;
    link.addEventListener("click", function (ev) {
      ev.preventDefault();
      var desc = th.getAttribute("aria-sort") !== "descending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", desc ? "descending" : "ascending");
      Array.prototype.forEach.call(table.tBodies, function (body) {
        var rows = Array.prototype.filter.call(body.rows, function (r) { return r.classList.contains("program"); });
        rows.sort(function (a, b) {
          var x = value(a.cells[col]), y = value(b.cells[col]);
          if (x === y) return 0;
          if (x === "-") return 1;
          if (y === "-") return -1;
          return (x < y ? -1 : 1) * (desc ? -1 : 1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
      if (window.history && history.replaceState) history.replaceState(null, "", link.href);
    });
  });
})();
