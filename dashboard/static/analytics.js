// Analytics pages: sortable tables and the lookback / absolute range toggle.
"use strict";
(function () {
  function sortTable(table, col, th) {
    const numeric = th.dataset.sort === "num";
    const dir = th.classList.contains("asc") ? -1 : 1;
    table.querySelectorAll("th").forEach((h) => h.classList.remove("asc", "desc"));
    th.classList.add(dir === 1 ? "asc" : "desc");
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      const c = numeric ? Number(x) - Number(y) : x.localeCompare(y);
      return c * dir;
    });
    rows.forEach((r) => body.appendChild(r));
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("table.sortable").forEach((table) => {
      table.querySelectorAll("th[data-sort]").forEach((th, col) => {
        th.classList.add("sort");
        th.addEventListener("click", () => sortTable(table, col, th));
      });
    });
    document.querySelectorAll("select.range-lookback").forEach((sel) => {
      const abs = sel.closest("form").querySelector(".range-absolute");
      sel.addEventListener("change", () => { abs.hidden = sel.value !== "custom"; });
    });
  });
})();
