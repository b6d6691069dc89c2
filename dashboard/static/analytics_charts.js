// Service page charts: rate, errors and latency quantiles per step from /api/v1/latency.
// Every point links to the traces behind it (the search page for that service and step);
// hovering (or the arrow keys on a focused chart) shows each series' value at that time;
// dragging across a chart narrows the page's window to the selected range, with a reset.
// Drawn as SVG here rather than by a vendored library (uPlot was the candidate): what these
// charts need beyond lines — a link per point into the traces, SLO lines, deploy markers,
// the partial interval — would be plugins of about the same size, on a canvas that keyboard
// users and the browser tests cannot reach into.
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

  // The traces behind a point: that service and step; for a latency point, the calls near
  // that latency — between the midpoints to the neighbouring quantiles of the same step —
  // so p50 and p99 open different, disjoint sets of traces.
  function searchUrl(data, t, errorsOnly, band) {
    const q = new URLSearchParams({ service: data.service, lookback: "custom", start: window.sidetrace.isoUtc(t * 1000), end: window.sidetrace.isoUtc((t + data.step) * 1000) });
    if (data.operation) q.set("operation", data.operation);
    if (errorsOnly) q.set("errors", "1");
    if (band) {
      q.set("minDuration", Math.floor(band[0] * 1000) / 1000 + "ms");
      if (band[1] !== null) q.set("maxDuration", Math.ceil(band[1] * 1000) / 1000 + "ms");
      else q.set("sort", "longest");
    }
    return "/search?" + q.toString();
  }

  // [low, high] ms around quantile ``name`` at one step: halfway to the next quantile down
  // (or as far below as the next one up is above) and halfway to the next one up (none above
  // the highest: its band is the tail).
  function latencyBand(quantiles, name) {
    const names = Object.keys(quantiles).filter((k) => quantiles[k] !== null)
      .sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
    const k = names.indexOf(name);
    const v = quantiles[name];
    if (k < 0 || v === null) return null;
    const up = k + 1 < names.length ? (v + quantiles[names[k + 1]]) / 2 : null;
    const down = k > 0 ? (v + quantiles[names[k - 1]]) / 2 : (up === null ? v * 0.9 : Math.max(0, 2 * v - up));
    return [Math.min(down, v), up === null ? null : Math.max(up, v)];
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


  // The hover readout: a crosshair at the nearest step and a box with its time and every
  // series' value there (the partial interval said so).
  function showTip(svg, i) {
    const c = svg._chart;
    hideTip(svg);
    if (!c || !(c.n > 0)) return;
    i = Math.max(0, Math.min(c.n - 1, Math.round(i)));
    svg._tipIndex = i;
    const pt = c.data.points[i];
    el("line", { class: "crosshair", x1: c.x(i), x2: c.x(i), y1: T, y2: H - B }, svg);
    const tip = document.createElement("div");
    tip.className = "chart-tip";
    tip.setAttribute("role", "status");
    const head = document.createElement("div");
    head.className = "tip-time";
    head.textContent = window.sidetrace.formatTime(pt.t * 1000, false) + ` · ${pt.calls} calls` +
      (c.partial && i === c.n - 1 ? " · partial" : "");
    tip.appendChild(head);
    for (const s of c.series) {
      const row = document.createElement("div");
      row.className = "tip-row";
      row.dataset.series = s.name;
      const sw = document.createElement("span");
      sw.className = "legend-swatch";
      sw.style.background = COLORS[s.name] || "#ccc";
      const v = s.values[i];
      row.append(sw, `${s.name} ${v === null ? "–" : fmt(v)}${c.unit}`);
      tip.appendChild(row);
    }
    const host = svg.parentNode;
    host.appendChild(tip);
    const box = svg.getBoundingClientRect(), hostBox = host.getBoundingClientRect();
    const px = c.x(i) * box.width / c.W + box.left - hostBox.left;
    const left = px + 12 + tip.offsetWidth > host.clientWidth ? px - 12 - tip.offsetWidth : px + 12;
    tip.style.left = Math.max(0, left) + "px";
    tip.style.top = box.top - hostBox.top + 8 + "px";
  }

  function hideTip(svg) {
    svg.querySelectorAll(".crosshair").forEach((e) => e.remove());
    svg.parentNode.querySelectorAll(".chart-tip").forEach((e) => e.remove());
  }

  // The page's URL with its window narrowed to [t0, t1] s (the chosen operation kept); the
  // window before the first zoom is kept in "was" for the reset button.
  function zoomedUrl(t0, t1) {
    const q = new URLSearchParams(location.search);
    const was = q.get("was") || rangeOf(q);
    const out = new URLSearchParams({ lookback: "custom", start: window.sidetrace.isoUtc(t0 * 1000),
      end: window.sidetrace.isoUtc(t1 * 1000), was });
    const op = document.getElementById("op-select");
    if (op && op.value) out.set("operation", op.value);
    return location.pathname + "?" + out.toString();
  }

  // Keyboard zoom: "+" halves the window about the step under the cursor, "-" doubles it
  // (never past now).
  function keyZoom(c, at, factor) {
    const span = (c.data.end - c.data.points[0].t) * factor;
    const mid = c.data.points[at].t + c.data.step / 2;
    const t1 = Math.min(Math.round(mid + span / 2), Math.ceil(Date.now() / 1000));
    const t0 = Math.round(t1 - span);
    if (t1 - t0 >= 120) location.href = zoomedUrl(t0, t1);
  }

  function rangeOf(q) {
    const keep = new URLSearchParams();
    for (const k of ["lookback", "start", "end"]) if (q.get(k)) keep.set(k, q.get(k));
    return keep.toString();
  }

  // Pointer x in chart coordinates (the viewBox is as wide as the chart was drawn).
  function chartX(svg, ev) {
    const r = svg.getBoundingClientRect();
    return (ev.clientX - r.left) * svg._chart.W / r.width;
  }

  // Hover, keyboard and drag-to-zoom on one chart; bound once, reading the chart drawn last.
  function interactive(svg) {
    if (svg._interactive) return;
    svg._interactive = true;
    svg.setAttribute("tabindex", "0");
    svg.setAttribute("role", "group");
    svg.setAttribute("aria-label", (svg.dataset.title || "chart") +
      ": the arrow keys read each step's values, + and - zoom; drag across the chart to zoom");
    let drag = null;
    let dragged = false;
    let pointer = null;
    svg.addEventListener("pointermove", (ev) => {
      if (!svg._chart) return;
      const px = chartX(svg, ev);
      if (drag) {
        const a = Math.max(L, Math.min(drag, px)), b = Math.min(svg._chart.W - R, Math.max(drag, px));
        let sel = svg.querySelector(".zoom-sel");
        if (!sel) sel = el("rect", { class: "zoom-sel", y: T, height: H - T - B }, svg);
        sel.setAttribute("x", a);
        sel.setAttribute("width", Math.max(0, b - a));
        if (b - a > 4 && !dragged) {
          dragged = true;
          svg.setPointerCapture(pointer);
        }
      }
      showTip(svg, svg._chart.indexAt(px));
    });
    svg.addEventListener("pointerleave", () => { if (!drag) hideTip(svg); });
    svg.addEventListener("pointerdown", (ev) => {
      if (!svg._chart || ev.button !== 0) return;
      drag = chartX(svg, ev);
      dragged = false;
      pointer = ev.pointerId;
    });
    svg.addEventListener("dragstart", (ev) => ev.preventDefault());  // point links are not dragged
    svg.addEventListener("pointerup", (ev) => {
      if (drag === null) return;
      const c = svg._chart;
      const a = Math.min(drag, chartX(svg, ev)), b = Math.max(drag, chartX(svg, ev));
      drag = null;
      svg.querySelectorAll(".zoom-sel").forEach((e) => e.remove());
      if (!dragged) return;  // a click: a point's link opens as usual
      const pts = c.data.points;
      const tAt = (px) => pts[0].t + Math.max(0, Math.min(c.n - 1, c.indexAt(px))) * c.data.step;
      const t0 = Math.floor(tAt(a)), t1 = Math.min(Math.ceil(tAt(b) + c.data.step), c.data.end || Infinity);
      if (t1 - t0 < 60) return;  // less than the smallest step: nothing to show
      location.href = zoomedUrl(t0, t1);
    });
    // A drag that ends on a point is a zoom, not a click on its link.
    svg.addEventListener("click", (ev) => {
      if (dragged) { ev.preventDefault(); ev.stopPropagation(); dragged = false; }
    }, true);
    svg.addEventListener("keydown", (ev) => {
      if (!svg._chart) return;
      const at = svg._tipIndex === undefined ? svg._chart.n - 1 : svg._tipIndex;
      if (ev.key === "ArrowLeft" || ev.key === "ArrowRight") {
        showTip(svg, at + (ev.key === "ArrowLeft" ? -1 : 1));
        ev.preventDefault();
      } else if (ev.key === "+" || ev.key === "=" || ev.key === "-") {
        keyZoom(svg._chart, at, ev.key === "-" ? 2 : 0.5);
      } else if (ev.key === "Escape") {
        hideTip(svg);
        svg._tipIndex = undefined;
      }
    });
    svg.addEventListener("focus", () => showTip(svg, svg._tipIndex === undefined ? svg._chart ? svg._chart.n - 1 : 0 : svg._tipIndex));
    svg.addEventListener("blur", () => hideTip(svg));
  }

  // series: [{name, values: [number|null per point]}]; lines: [{value, label}] thresholds;
  // latency: points link to the calls at or above their value.
  function draw(svg, data, series, errorsOnly, lines, latency) {
    lines = lines || [];
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    interactive(svg);
    const W = Math.max(svg.clientWidth || svg.parentNode.clientWidth || 600, 300);
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("height", H);
    const pts = data.points;
    const n = pts.length;
    const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v !== null)), ...lines.map((l) => l.value)));
    const x = (i) => L + (n <= 1 ? 0 : (i * (W - L - R)) / (n - 1));
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const partial = n > 0 && pts[n - 1].t + data.step > Math.min(data.end || Infinity, Date.now() / 1000);
    svg._chart = { data, series, W, n, x, partial, unit: latency ? " ms" : errorsOnly ? "%" : "/s",
      indexAt: (px) => n <= 1 ? 0 : (px - L) * (n - 1) / (W - L - R) };
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
    // The last step may still be filling (partial): shade it, so a dip there does not read
    // as a drop.
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
        const band = latency ? latencyBand(pts[i].quantiles, s.name) : null;
        const a = el("a", { href: searchUrl(data, pts[i].t, errorsOnly, band), class: "point-link",
          "aria-label": `${s.name} ${fmt(v)} at ` + window.sidetrace.formatTime(pts[i].t * 1000, false) }, dots);
        const last = partial && i === n - 1;
        el("circle", { cx: x(i), cy: y(v), r: 3, class: "pt" + (last ? " partial" : ""), fill: COLORS[s.name] || "#ccc",
          "data-t": pts[i].t, "data-series": s.name }, a);
        if (band) a.setAttribute("aria-label", a.getAttribute("aria-label") +
          ` · opens the calls of ${fmt(band[0])}–${band[1] === null ? "" : fmt(band[1])} ms`);
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
      box.dataset.loaded = "0";  // until this load has drawn (another operation's, say)
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

    const query = new URLSearchParams(location.search);
    const was = query.get("was");
    const reset = document.getElementById("zoom-reset");
    if (was !== null && reset) {
      reset.hidden = false;
      reset.addEventListener("click", () => {
        const back = new URLSearchParams(was);
        if (opSelect.value) back.set("operation", opSelect.value);
        location.href = location.pathname + "?" + back.toString();
      });
    }
    const op = query.get("operation");
    if (op && Array.from(opSelect.options).some((o) => o.value === op)) opSelect.value = op;
    picker.addEventListener("change", render);
    opSelect.addEventListener("change", load);
    window.addEventListener("resize", render);
    window.sidetrace.onTimeZoneChange(render);
    load();
  });
})();
