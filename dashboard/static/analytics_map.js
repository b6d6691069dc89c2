// Service map: the "find" box highlights matching services (Enter focuses the first one),
// hovering a node highlights its edges.
"use strict";
(function () {
  function applySearch(svg, text) {
    const q = text.trim().toLowerCase();
    const matches = new Set();
    svg.querySelectorAll("g.node").forEach((n) => {
      const hit = q !== "" && n.dataset.id.toLowerCase().includes(q);
      if (hit) matches.add(n.dataset.id);
      n.classList.toggle("match", hit);
      n.classList.toggle("dimmed", q !== "" && !hit);
    });
    svg.querySelectorAll("g.edge").forEach((e) => {
      const touches = matches.has(e.dataset.parent) || matches.has(e.dataset.child);
      e.classList.toggle("dimmed", q !== "" && !touches);
    });
    return Array.from(matches).sort();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const svg = document.getElementById("service-map");
    const box = document.getElementById("map-search");
    if (!svg || !box) return;
    box.addEventListener("input", () => applySearch(svg, box.value));
    box.addEventListener("keydown", (ev) => {
      if (ev.key !== "Enter") return;
      ev.preventDefault();
      const found = applySearch(svg, box.value);
      const exact = found.find((id) => id.toLowerCase() === box.value.trim().toLowerCase());
      if (!found.length) return;
      const form = document.getElementById("map-form");
      form.querySelector("#map-focus").value = exact || found[0];
      form.submit();
    });
    svg.querySelectorAll("g.node").forEach((n) => {
      n.addEventListener("mouseenter", () => {
        svg.querySelectorAll("g.edge").forEach((e) => {
          e.classList.toggle("hot", e.dataset.parent === n.dataset.id || e.dataset.child === n.dataset.id);
        });
      });
      n.addEventListener("mouseleave", () => svg.querySelectorAll("g.edge.hot").forEach((e) => e.classList.remove("hot")));
    });
  });
})();
