// Service map: "Colour by" — health (errors and SLO outlines, drawn by the page and
// analytics_map.js), latency (p99 in fixed bands, so a slow service shows even with no
// errors and no SLO) or error rate. The choice is kept in the URL (?colour=).
"use strict";
(function () {
  const SCALES = {
    latency: { attr: "p99", unit: "ms", bands: [25, 100, 250, 1000], labels: ["< 25 ms", "25–100 ms", "100–250 ms", "250 ms–1 s", "≥ 1 s"] },
    errors: { attr: "errorRate", unit: "", bands: [0.001, 0.01, 0.05], labels: ["< 0.1%", "0.1–1%", "1–5%", "≥ 5%"] },
  };
  const HEALTH = [["health-ok", "SLOs met"], ["health-burning", "SLO burning"], ["health-bad", "errors > 5% or SLO breached"]];

  // The palette step (0 best … 4 worst) of ``value`` on ``scale``; null when unknown.
  function band(scale, value) {
    if (value === "" || value === undefined) return null;
    const v = Number(value);
    let k = 0;
    while (k < scale.bands.length && v >= scale.bands[k]) k++;
    return paletteStep(k, scale.labels.length);
  }

  function paletteStep(k, count) { return Math.round((k * 4) / (count - 1)); }

  function legend(box, entries) {
    box.replaceChildren();
    for (const [cls, text] of entries) {
      const item = document.createElement("span");
      item.className = "legend-item";
      const sw = document.createElement("span");
      sw.className = "map-swatch " + cls;
      item.append(sw, text);
      box.appendChild(item);
    }
  }

  function colourBy(svg, mode) {
    const scale = SCALES[mode];
    svg.classList.remove("colour-latency", "colour-errors", "colour-health");
    svg.classList.add("colour-" + (scale ? mode : "health"));
    svg.querySelectorAll("g.node, g.edge").forEach((g) => {
      for (const c of Array.from(g.classList)) if (c.startsWith("band-")) g.classList.remove(c);
      delete g.dataset.band;
      if (!scale) return;
      const k = band(scale, g.dataset[scale.attr]);
      if (k === null) return;
      g.classList.add("band-" + k);
      g.dataset.band = String(k);
    });
    const box = document.getElementById("map-legend");
    if (box) {
      legend(box, scale ? scale.labels.map((text, k) => ["band-" + paletteStep(k, scale.labels.length), text])
        : HEALTH);
      box.setAttribute("aria-label", "colours: " + (scale ? mode : "health"));
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const svg = document.getElementById("service-map");
    const select = document.getElementById("map-colour");
    if (!select) return;
    const wanted = new URLSearchParams(location.search).get("colour");
    if (wanted && Array.from(select.options).some((o) => o.value === wanted)) select.value = wanted;
    if (!svg) return;
    colourBy(svg, select.value);
    select.addEventListener("change", () => {
      colourBy(svg, select.value);
      const q = new URLSearchParams(location.search);
      q.set("colour", select.value);
      history.replaceState(null, "", location.pathname + "?" + q.toString());
    });
  });
})();
