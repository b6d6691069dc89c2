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

  // The traces behind a point: that service and step; for a latency point, the calls at
  // or above that latency (slowest first), so p99 and p50 open different traces.
  function searchUrl(data, t, errorsOnly, atLeastMs) {
    const q = new URLSearchParams({ service: data.service, lookback: "custom", start: window.sidetrace.isoUtc(t * 1000), end: window.sidetrace.isoUtc((t + data.step) * 1000) });
    if (data.operation) q.set("operation", data.operation);
    if (errorsOnly) q.set("errors", "1");
    if (atLeastMs !== undefined) { q.set("minDuration", Math.floor(atLeastMs * 1000) / 1000 + "ms"); q.set("sort", "longest"); }
    return "/search?" + q.toString();
  }

  // Legend under a chart: its series, threshold lines and the partial-interval mark.
  function legend(svg, entries) {
    let box = svg.nextElementSibling;
    if (!box || !box.classList.contains("chart-legend")) {
      box = document.createElement("div");
      box.className = "chart-legend";
      svg.after(box);
    }
    box.replaceChildren();
    for (const [cls, colour, text] of entries) {
      const item = document.createElement("span");
      item.className = "legend-item " + cls;
      const sw = document.createElement("span");
      sw.className = "legend-swatch";
      if (colour) sw.style.background = colour;
      item.append(sw, text);
      box.appendChild(item);
    }
  }

  // series: [{name, values: [number|null per point]}]; lines: [{value, label}] thresholds;
  // latency: points link to the calls at or above their value.
  function draw(svg, data, series, errorsOnly, lines, latency) {
    lines = lines || [];
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const W = Math.max(svg.clientWidth || svg.parentNode.clientWidth || 600, 300);
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("height", H);
    const pts = data.points;
    const n = pts.length;
    const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v !== null)), ...lines.map((l) => l.value)));
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
    // The last step may still be filling: shade it, so a dip there does not read as a drop.
    const partial = n > 0 && pts[n - 1].t + data.step > Math.min(data.end || Infinity, Date.now() / 1000);
    if (partial && n > 1) {
      const band = el("rect", { class: "partial-band", x: x(n - 1.5), y: T,
        width: W - R - x(n - 1.5), height: H - T - B }, svg);
      el("title", {}, band).textContent = "partial interval: still filling";
    }
    for (const line of lines) {
      const g = el("g", { class: "threshold" }, svg);
      el("line", { x1: L, x2: W - R, y1: y(line.value), y2: y(line.value) }, g);
      el("text", { x: W - R - 4, y: y(line.value) - 4, "text-anchor": "end" }, g).textContent = line.label;
    }
    for (const s of series) {
      let d = "";
      s.values.forEach((v, i) => {
        if (v === null) return;
        d += (d && s.values[i - 1] !== null ? "L" : "M") + x(i).toFixed(1) + "," + y(v).toFixed(1);
      });
      el("path", { d, class: "series", stroke: COLORS[s.name] || "#ccc" }, svg);
    }
    const entries = series.map((s) => ["series", COLORS[s.name] || "#ccc", s.name]);
    lines.forEach((l) => entries.push(["threshold", null, l.label]));
    if (partial) entries.push(["partial", null, "last interval still filling"]);
    legend(svg, entries);
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
        const a = el("a", { href: searchUrl(data, pts[i].t, errorsOnly, latency ? v : undefined), class: "point-link" }, dots);
        const last = partial && i === n - 1;
        const c = el("circle", { cx: x(i), cy: y(v), r: 3, class: "pt" + (last ? " partial" : ""), fill: COLORS[s.name] || "#ccc",
          "data-t": pts[i].t, "data-series": s.name }, a);
        el("title", {}, c).textContent = `${s.name} ${fmt(v)} · ${pts[i].calls} calls · ` +
          window.sidetrace.formatTime(pts[i].t * 1000, false) + (last ? " · partial interval" : "") +
          (latency ? " · click: the calls this slow or slower" : "");
      });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const box = document.getElementById("charts");
    if (!box) return;
    const picker = document.getElementById("quantile-picker");
    const opSelect = document.getElementById("op-select");
    let data = null;

    const status = document.getElementById("charts-status");
    let thresholds = [];  // latency SLOs of this service: dashed lines on the latency chart
    function say(text, cls) {
      status.textContent = text;
      status.className = "notice " + (cls || "");
      status.hidden = !text;
    }

    function render() {
      if (!data) return;
      if (!data.points.some((p) => p.calls > 0)) {
        say(`No spans from ${box.dataset.service} in this range: nothing to chart.`);
        box.dataset.loaded = "1";
        box.hidden = true;
        return;
      }
      box.hidden = false;
      say("");
      const chosen = Array.from(picker.querySelectorAll("input:checked")).map((i) => i.value);
      draw(document.getElementById("chart-rate"), data, [{ name: "rate", values: data.points.map((p) => p.rate) }], false);
      draw(document.getElementById("chart-errors"), data,
        [{ name: "errors", values: data.points.map((p) => (p.calls ? p.error_rate * 100 : null)) }], true);
      draw(document.getElementById("chart-latency"), data,
        chosen.map((q) => ({ name: q, values: data.points.map((p) => p.quantiles[q]) })), false,
        thresholds.filter((t) => !t.operation || t.operation === opSelect.value), true);
      box.dataset.loaded = "1";
    }

    async function load() {
      const q = new URLSearchParams({ service: box.dataset.service, start: String(box.dataset.start * 1000),
        end: String(box.dataset.end * 1000), quantiles: "p50,p90,p95,p99" });
      if (opSelect.value) q.set("operation", opSelect.value);
      const range = new URLSearchParams({ service: box.dataset.service, start: q.get("start"), end: q.get("end") });
      say("Loading charts…");
      try {
        const [resp, deploys, slos] = await Promise.all([
          fetch("/api/v1/latency?" + q.toString()), fetch("/api/v1/deploys?" + range.toString()),
          fetch("/api/v1/slos").catch(() => null)]);
        const body = await resp.json().catch(() => ({}));
        if (!resp.ok) throw new Error(body.error || `${resp.status} ${resp.statusText}`);
        data = body;
        data.end = Number(box.dataset.end);
        data.deploys = deploys.ok ? (await deploys.json()).deploys : [];
        if (slos && slos.ok) {
          thresholds = ((await slos.json()).slos || [])
            .filter((o) => o.service === box.dataset.service)
            .map((o) => ({ value: o.thresholdMs, operation: o.operation, label: `SLO ${o.name}: ${fmt(o.thresholdMs)} ms` }));
        }
      } catch (err) {
        say(`Could not load the charts: ${err.message}`, "error");
        box.dataset.loaded = "error";
        return;
      }
      render();
    }

    picker.addEventListener("change", render);
    opSelect.addEventListener("change", load);
    window.addEventListener("resize", render);
    window.sidetrace.onTimeZoneChange(render);
    load();
  });
})();
