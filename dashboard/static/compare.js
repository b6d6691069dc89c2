// Comparison pages: tree indentation from data-depth, "only differences", bar widths
// from data-share (no inline styles or scripts, so the pages work under a strict CSP).
"use strict";
(function () {
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("tr[data-depth] td.op-cell").forEach((td) => {
      td.style.paddingLeft = 8 + Math.min(Number(td.parentElement.dataset.depth), 40) * 14 + "px";
    });
    document.querySelectorAll(".share span[data-share]").forEach((bar) => {
      bar.style.width = Math.max(0, Math.min(1, Number(bar.dataset.share))) * 100 + "%";
    });
    const onlyDiff = document.getElementById("only-diff");
    const table = document.getElementById("compare-table");
    if (onlyDiff && table) {
      onlyDiff.addEventListener("change", () => table.classList.toggle("only-diff", onlyDiff.checked));
    }
  });
})();
