// Trace view: a virtualized waterfall (only rows in view are in the DOM), collapsible
// subtrees, span details, deep links (?span=) and per-operation statistics.
"use strict";
(function () {
  const app = document.getElementById("trace-app");
  if (!app) return;
  const ROW_H = 24;
  const OVERSCAN = 12;
  const traceId = app.dataset.traceId;
  const viewport = document.getElementById("viewport");
  const rowsBox = document.getElementById("rows");
  const detail = document.getElementById("span-detail");
  const fmtDur = window.sidetrace.formatDuration;

  let trace = null;
  let spans = [];          // tree order from the server
  let subtreeEnd = [];     // index after the last descendant of each span
  let collapsed = new Set();
  let visible = [];        // indexes into spans currently shown (not inside a collapsed subtree)
  let selected = -1;
  const byId = new Map();

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function colour(service) {
    let h = 0;
    for (let i = 0; i < service.length; i++) h = (h * 31 + service.charCodeAt(i)) >>> 0;
    return `hsl(${h % 360}, 62%, 58%)`;
  }

  function computeSubtrees() {
    // Spans come depth-first, so a subtree is a contiguous run of deeper rows.
    subtreeEnd = new Array(spans.length);
    const stack = [];
    spans.forEach((s, i) => {
      while (stack.length && spans[stack[stack.length - 1]].depth >= s.depth) subtreeEnd[stack.pop()] = i;
      stack.push(i);
    });
    while (stack.length) subtreeEnd[stack.pop()] = spans.length;
  }

  function computeVisible() {
    visible = [];
    for (let i = 0; i < spans.length; ) {
      visible.push(i);
      i = collapsed.has(i) ? subtreeEnd[i] : i + 1;
    }
    rowsBox.style.height = visible.length * ROW_H + "px";
  }

  function rowFor(i, pos) {
    const s = spans[i];
    const row = el("div", "row" + (i === selected ? " selected" : ""));
    row.style.top = pos * ROW_H + "px";
    row.dataset.index = i;
    row.dataset.spanId = s.spanId;
    const name = el("div", "name");
    name.style.paddingLeft = Math.min(s.depth, 40) * 12 + "px";
    if (s.childCount > 0) {
      const t = el("button", "toggle", collapsed.has(i) ? "▸" : "▾");
      t.type = "button";
      t.title = collapsed.has(i) ? `expand ${s.childCount} children` : "collapse";
      t.setAttribute("aria-expanded", String(!collapsed.has(i)));
      t.addEventListener("click", (ev) => { ev.stopPropagation(); toggle(i); });
      name.appendChild(t);
    } else {
      name.appendChild(el("span", "leaf"));
    }
    const sw = el("span", "swatch");
    sw.style.background = colour(s.service);
    name.appendChild(sw);
    name.appendChild(el("span", "svc", s.service));
    name.appendChild(el("span", "op", s.name));
    if (s.kind !== "unspecified" && s.kind !== "internal") name.appendChild(el("span", "mark kind", s.kind));
    if (s.status.code === "error") name.appendChild(el("span", "mark err", "error"));
    if (s.orphan) name.appendChild(el("span", "mark orphan", "parent missing"));
    if (s.clockSkew.startsBeforeParentNs || s.clockSkew.endsAfterParentNs) name.appendChild(el("span", "mark skew", "skew"));
    row.appendChild(name);
    const lane = el("div", "lane");
    const total = Math.max(1, trace.durationNs);
    const left = (100 * s.offsetNs) / total;
    const width = (100 * s.durationNs) / total;
    const bar = el("div", "bar" + (s.critical ? " critical" : "") + (s.status.code === "error" ? " error" : ""));
    bar.style.left = Math.max(0, left) + "%";
    bar.style.width = Math.max(0.1, Math.min(width, 100 - Math.max(0, left))) + "%";
    bar.style.background = colour(s.service);
    lane.appendChild(bar);
    const label = el("span", "dur", fmtDur(s.durationNs) + (s.childCount ? ` (self ${fmtDur(s.selfNs)})` : ""));
    if (left + width <= 70) {
      label.style.left = Math.max(0, left) + width + 0.5 + "%";  // after the bar
    } else if (left >= 30) {
      label.style.right = 100 - Math.max(0, left) + 0.5 + "%";  // before the bar
    } else {
      label.classList.add("inside");  // long bar: on the bar itself, at its end
      label.style.right = Math.max(0, 100 - left - width) + 0.5 + "%";
    }
    lane.appendChild(label);
    row.appendChild(lane);
    row.title = `${s.service}: ${s.name} — ${fmtDur(s.durationNs)}, self ${fmtDur(s.selfNs)}`;
    row.addEventListener("click", () => select(i, false));
    return row;
  }

  function render() {
    // The list may just have shrunk (collapse) before the browser clamped scrollTop.
    const top = Math.min(viewport.scrollTop, Math.max(0, visible.length * ROW_H - viewport.clientHeight));
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(visible.length, Math.ceil((top + viewport.clientHeight) / ROW_H) + OVERSCAN);
    const frag = document.createDocumentFragment();
    for (let pos = first; pos < last; pos++) frag.appendChild(rowFor(visible[pos], pos));
    rowsBox.replaceChildren(frag);
  }

  let pending = false;
  viewport.addEventListener("scroll", () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; render(); });
  });
  window.addEventListener("resize", render);

  function toggle(i) {
    if (collapsed.has(i)) collapsed.delete(i); else collapsed.add(i);
    computeVisible();
    render();
  }

  function setAll(collapse) {
    collapsed = new Set();
    if (collapse) spans.forEach((s, i) => { if (s.childCount > 0 && s.depth >= 1) collapsed.add(i); });
    computeVisible();
    render();
  }

  function revealAndScroll(i) {
    // Expand collapsed ancestors so the row is visible, then scroll it into view.
    for (const c of Array.from(collapsed)) if (c < i && subtreeEnd[c] > i) collapsed.delete(c);
    computeVisible();
    const pos = visible.indexOf(i);
    const top = pos * ROW_H;
    if (top < viewport.scrollTop || top > viewport.scrollTop + viewport.clientHeight - ROW_H) {
      viewport.scrollTop = Math.max(0, top - viewport.clientHeight / 3);
    }
    render();
  }

  function kvTable(items, id) {
    const t = el("table");
    if (id) t.id = id;
    if (!items.length) {
      const tr = el("tr"); tr.appendChild(el("td", "muted", "none")); t.appendChild(tr);
    }
    items.forEach((a) => {
      const tr = el("tr");
      tr.appendChild(el("td", "mono", a.key));
      const v = typeof a.value === "object" ? JSON.stringify(a.value) : String(a.value);
      tr.appendChild(el("td", "mono", v));
      t.appendChild(tr);
    });
    return t;
  }

  function spanLink(spanId) {
    return `/trace/${traceId}?span=${spanId}`;
  }

  function showDetail(i) {
    const s = spans[i];
    detail.replaceChildren();
    const close = el("button", "close", "×");
    close.type = "button";
    close.title = "close";
    close.addEventListener("click", () => { detail.hidden = true; selected = -1; render(); });
    detail.appendChild(close);
    const h = el("h3", null, `${s.service}: ${s.name}`);
    h.id = "detail-title";
    detail.appendChild(h);
    const link = el("a", "deep-link", "Link to this span");
    link.id = "span-link";
    link.href = spanLink(s.spanId);
    detail.appendChild(link);
    const parentLabel = s.parentSpanId ? s.parentSpanId + (s.orphan ? " (missing from trace)" : "") : "(root)";
    const overview = [
      { key: "span id", value: s.spanId },
      { key: "parent", value: parentLabel },
      { key: "kind", value: s.kind },
      { key: "status", value: s.status.code + (s.status.message ? `: ${s.status.message}` : "") },
      { key: "start", value: window.sidetrace.formatTime(Number(BigInt(s.startTimeUnixNano) / 1000n) / 1000) + ` (+${fmtDur(s.offsetNs)})` },
      { key: "duration", value: fmtDur(s.durationNs) },
      { key: "self time", value: fmtDur(s.selfNs) },
      { key: "critical path", value: s.critical ? "yes" : "no" },
      { key: "scope", value: `${s.scope.name} ${s.scope.version}`.trim() },
    ];
    if (s.clockSkew.startsBeforeParentNs) overview.push({ key: "clock skew", value: `starts ${fmtDur(s.clockSkew.startsBeforeParentNs)} before its parent (another service's clock)` });
    if (s.clockSkew.endsAfterParentNs) overview.push({ key: "clock skew", value: `ends ${fmtDur(s.clockSkew.endsAfterParentNs)} after its parent (another service's clock)` });
    detail.appendChild(kvTable(overview, "span-overview"));
    detail.appendChild(el("h4", null, "Attributes"));
    detail.appendChild(kvTable(s.attributes, "span-attributes"));
    detail.appendChild(el("h4", null, "Resource"));
    detail.appendChild(kvTable(s.resource, "span-resource"));
    detail.appendChild(el("h4", null, `Events (${s.events.length})`));
    s.events.forEach((e) => {
      detail.appendChild(el("div", "mono", `+${fmtDur(e.offsetNs)} ${e.name}`));
      detail.appendChild(kvTable(e.attributes));
    });
    detail.appendChild(el("h4", null, `Links (${s.links.length})`));
    s.links.forEach((lk) => {
      const a = el("a", "mono", `${lk.traceId} / ${lk.spanId}`);
      a.href = `/trace/${lk.traceId}?span=${lk.spanId}`;
      detail.appendChild(a);
      detail.appendChild(kvTable(lk.attributes));
    });
    if (s.dropped.attributes || s.dropped.events || s.dropped.links) {
      detail.appendChild(el("p", "muted", `dropped: ${s.dropped.attributes} attributes, ${s.dropped.events} events, ${s.dropped.links} links`));
    }
    detail.hidden = false;
  }

  function select(i, scroll) {
    selected = i;
    showDetail(i);
    const url = new URL(window.location.href);
    url.searchParams.set("span", spans[i].spanId);
    history.replaceState(null, "", url);
    if (scroll) revealAndScroll(i); else render();
  }

  function ruler() {
    const ticks = document.getElementById("ruler-ticks");
    ticks.replaceChildren();
    for (let k = 0; k <= 4; k++) {
      const t = el("span", null, fmtDur((trace.durationNs * k) / 4));
      t.style.left = k * 25 + "%";
      ticks.appendChild(t);
    }
  }

  function header() {
    const root = spans[0];
    if (root) {
      document.getElementById("trace-title").textContent = `${root.service}: ${root.name}`;
      document.title = `${root.service}: ${root.name} · sidetrace`;
    }
    const counts = document.getElementById("trace-counts");
    const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
    counts.append(`${plural(trace.totalSpans, "span")} · ${plural(trace.services.length, "service")}`);
    if (trace.errors) counts.append(" ", el("span", "badge error", plural(trace.errors, "error")));
  }

  function notices() {
    const box = document.getElementById("notices");
    const add = (cls, text) => { const d = el("div", "notice " + cls, text); box.appendChild(d); return d; };
    if (trace.leftOut > 0) add("error", `${trace.leftOut} spans left out because ${trace.leftOutReason}.`).id = "left-out";
    if (trace.orphans > 0) add("", `${trace.orphans} span(s) arrived without their parent; they are shown under the root, marked "parent missing".`).id = "orphans";
    if (trace.skewedSpans > 0) add("", `${trace.skewedSpans} span(s) start before or end after their parent on another service: clock skew between hosts, shown as recorded.`).id = "skew";
  }

  function stats() {
    // Per service: sums of the per-operation rows; then every operation.
    const services = new Map();
    trace.stats.forEach((st) => {
      const agg = services.get(st.service) || { service: st.service, name: "(all operations)", count: 0, errors: 0, totalNs: 0, selfNs: 0 };
      agg.count += st.count; agg.errors += st.errors; agg.totalNs += st.totalNs; agg.selfNs += st.selfNs;
      services.set(st.service, agg);
    });
    fillStats("#stats-services tbody", Array.from(services.values()).sort((a, b) => b.selfNs - a.selfNs));
    fillStats("#stats-table tbody", trace.stats);
  }

  function fillStats(selector, rows) {
    const body = document.querySelector(selector);
    body.replaceChildren();
    rows.forEach((st) => {
      const tr = el("tr");
      const svc = el("td");
      const sw = el("span", "badge", st.service);
      sw.style.borderColor = colour(st.service);
      svc.appendChild(sw);
      tr.appendChild(svc);
      tr.appendChild(el("td", null, st.name));
      tr.appendChild(el("td", "num", String(st.count)));
      tr.appendChild(el("td", "num", String(st.errors)));
      tr.appendChild(el("td", "num", fmtDur(st.totalNs)));
      tr.appendChild(el("td", "num", fmtDur(st.selfNs)));
      tr.appendChild(el("td", "num", fmtDur(st.totalNs / st.count)));
      body.appendChild(tr);
    });
  }

  document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => {
    document.querySelectorAll(".tab").forEach((x) => x.classList.toggle("active", x === b));
    document.getElementById("waterfall").hidden = b.dataset.tab !== "waterfall";
    document.getElementById("stats").hidden = b.dataset.tab !== "stats";
    if (b.dataset.tab === "waterfall") render();
  }));
  document.getElementById("expand-all").addEventListener("click", () => setAll(false));
  document.getElementById("collapse-all").addEventListener("click", () => setAll(true));
  viewport.addEventListener("keydown", (ev) => {
    if (selected < 0) return;
    const pos = visible.indexOf(selected);
    if (ev.key === "ArrowDown" && pos + 1 < visible.length) { select(visible[pos + 1], true); ev.preventDefault(); }
    if (ev.key === "ArrowUp" && pos > 0) { select(visible[pos - 1], true); ev.preventDefault(); }
    if ((ev.key === "ArrowLeft" || ev.key === "ArrowRight") && spans[selected].childCount) {
      if ((ev.key === "ArrowLeft") !== collapsed.has(selected)) toggle(selected);
      ev.preventDefault();
    }
  });
  window.sidetrace.onTimeZoneChange(() => { if (selected >= 0) showDetail(selected); });

  fetch(`/api/v1/traces/${traceId}`, { headers: { Accept: "application/json" } })
    .then((r) => r.ok ? r.json() : r.json().then((b) => Promise.reject(new Error(b.error || r.statusText))))
    .then((data) => {
      trace = data;
      spans = data.spans;
      spans.forEach((s, i) => byId.set(s.spanId, i));
      computeSubtrees();
      computeVisible();
      document.getElementById("loading").remove();
      header();
      ruler();
      notices();
      stats();
      app.dataset.loaded = String(spans.length);
      const wanted = app.dataset.span;
      if (wanted && byId.has(wanted)) select(byId.get(wanted), true);
      else render();
    })
    .catch((err) => {
      document.getElementById("loading").textContent = "Could not load the trace: " + err.message;
    });
})();
