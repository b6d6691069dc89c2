// Service page charts: rate, errors and latency quantiles per step from /api/v1/latency.
// Every point links to the traces behind it (the search page for that service and step).
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const H = 180, L = 56, R = 12, T = 10, B = 24;
  const COLORS = { p50: "#4cc38a", p90: "#5aa9ff", p95: "#f0b429", p99: "#ff5c5c", rate: "#5aa9ff", errors: "#ff5c5c" };

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function fmt(v) { return v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(2).replace(/\.?0+$/, "") : v.toPrecision(2); }

  function searchUrl(data, t, errorsOnly) {
    const q = new URLSearchParams({ service: data.service, lookback: "custom", start: window.sidetrace.isoUtc(t * 1000), end: window.sidetrace.isoUtc((t + data.step) * 1000) });
    if (data.operation) q.set("operation", data.operation);
    if (errorsOnly) q.set("errors", "1");
    return "/search?" + q.toString();
  }

  // series: [{name, values: [number|null per point]}]
  function draw(svg, data, series, errorsOnly) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const W = Math.max(svg.clientWidth || svg.parentNode.clientWidth || 600, 300);
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("height", H);
    const pts = data.points;
    const n = pts.length;
    const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v !== null))));
    const x = (i) => L + (n <= 1 ? 0 : (i * (W - L - R)) / (n - 1));
    const y = (v) => T + (H - T - B) * (1 - v / max);
    for (let k = 0; k <= 4; k++) {
      const v = (max * k) / 4;
      el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }, svg);
      el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, svg).textContent = fmt(v);
    }
    const every = Math.max(1, Math.ceil(n / 6));
    for (let i = 0; i < n; i += every) {
      const t = el("text", { x: x(i), y: H - 6, "text-anchor": "middle", class: "tick" }, svg);
      t.textContent = window.sidetrace.formatTime(pts[i].t * 1000, false).slice(11, 16);
    }
    for (const s of series) {
      let d = "";
      s.values.forEach((v, i) => {
        if (v === null) return;
        d += (d && s.values[i - 1] !== null ? "L" : "M") + x(i).toFixed(1) + "," + y(v).toFixed(1);
      });
      el("path", { d, class: "series", stroke: COLORS[s.name] || "#ccc" }, svg);
    }
    for (const m of data.deploys || []) {  // deploy markers: a new service.version
      const i = (m.at - pts[0].t) / data.step;
      if (!(i >= 0 && i <= n - 1)) continue;
      const g = el("g", { class: "deploy", "data-version": m.version }, svg);
      el("line", { x1: x(i), x2: x(i), y1: T, y2: H - B }, g);
      el("title", {}, g).textContent = `deploy ${m.previous} → ${m.version} · ` +
        window.sidetrace.formatTime(m.at * 1000, false);
    }
    const dots = el("g", { class: "dots" }, svg);
    for (const s of series) {
      s.values.forEach((v, i) => {
        if (v === null) return;
        const a = el("a", { href: searchUrl(data, pts[i].t, errorsOnly), class: "point-link" }, dots);
        const c = el("circle", { cx: x(i), cy: y(v), r: 3, class: "pt", fill: COLORS[s.name] || "#ccc",
          "data-t": pts[i].t, "data-series": s.name }, a);
        el("title", {}, c).textContent = `${s.name} ${fmt(v)} · ${pts[i].calls} calls · ` +
          window.sidetrace.formatTime(pts[i].t * 1000, false);
      });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const box = document.getElementById("charts");
    if (!box) return;
    const picker = document.getElementById("quantile-picker");
    const opSelect = document.getElementById("op-select");
    let data = null;

    function render() {
      if (!data) return;
      const chosen = Array.from(picker.querySelectorAll("input:checked")).map((i) => i.value);
      draw(document.getElementById("chart-rate"), data, [{ name: "rate", values: data.points.map((p) => p.rate) }], false);
      draw(document.getElementById("chart-errors"), data,
        [{ name: "errors", values: data.points.map((p) => (p.calls ? p.error_rate * 100 : null)) }], true);
      draw(document.getElementById("chart-latency"), data,
        chosen.map((q) => ({ name: q, values: data.points.map((p) => p.quantiles[q]) })), false);
      box.dataset.loaded = "1";
    }

    async function load() {
      const q = new URLSearchParams({ service: box.dataset.service, start: String(box.dataset.start * 1000),
        end: String(box.dataset.end * 1000), quantiles: "p50,p90,p95,p99" });
      if (opSelect.value) q.set("operation", opSelect.value);
      const range = new URLSearchParams({ service: box.dataset.service, start: q.get("start"), end: q.get("end") });
      const [resp, deploys] = await Promise.all([
        fetch("/api/v1/latency?" + q.toString()), fetch("/api/v1/deploys?" + range.toString())]);
      data = await resp.json();
      data.deploys = deploys.ok ? (await deploys.json()).deploys : [];
      render();
    }

    picker.addEventListener("change", render);
    opSelect.addEventListener("change", load);
    window.addEventListener("resize", render);
    window.sidetrace.onTimeZoneChange(render);
    load();
  });
})();
