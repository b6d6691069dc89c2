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

  // SLO health on the nodes: a service whose latency SLO is breached (SLI under target or
  // budget spent) is outlined red, one burning budget (an alert pending or firing, or a
  // burn rate over 1) amber, one meeting it green — latency shows, not only errors.
  function sloState(o) {
    if (o.sli < o.target || o.budgetRemaining <= 0) return "breached";
    const alerting = (o.alerts || []).some((a) => a.state === "firing" || a.state === "pending");
    if (alerting || Object.values(o.burnRates || {}).some((r) => r > 1)) return "burning";
    return "met";
  }
  const RANK = { met: 0, burning: 1, breached: 2 };
  async function showSlos(svg) {
    let slos = [];
    try {
      const resp = await fetch("/api/v1/slos");
      if (resp.ok) slos = (await resp.json()).slos || [];
    } catch (err) { slos = []; }
    const worst = new Map();
    for (const o of slos) {
      const state = sloState(o);
      const prev = worst.get(o.service);
      if (!prev || RANK[state] > RANK[prev.state]) worst.set(o.service, { state, slo: o });
    }
    svg.querySelectorAll("g.node").forEach((n) => {
      const found = worst.get(n.dataset.id);
      if (!found) return;
      n.classList.add("slo-" + found.state);
      n.dataset.slo = found.state;
      const t = document.createElementNS("http://www.w3.org/2000/svg", "title");
      t.textContent = `SLO ${found.slo.name}: ${(found.slo.sli * 100).toFixed(2)}% within ` +
        `${found.slo.thresholdMs} ms (target ${(found.slo.target * 100).toFixed(2)}%) — ${found.state}`;
      n.appendChild(t);
    });
    svg.dataset.slos = "1";
  }

  document.addEventListener("DOMContentLoaded", () => {
    const svg = document.getElementById("service-map");
    const box = document.getElementById("map-search");
    if (!svg || !box) return;
    showSlos(svg);
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
