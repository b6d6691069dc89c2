// Trace view: a virtualized waterfall (only rows in view are in the DOM), collapsible
// subtrees, a minimap with a time window to zoom into, a flame graph, span details fetched
// per span, deep links (?span=), find within the trace and per-operation statistics.
//
// The trace arrives columnar (/api/v1/traces/{id}/view): one array per field, names as
// indexes into a string table, so a 100k-span trace is a few MB of JSON rather than tens;
// trace_analysis.js puts it in tree order with self times, critical path and statistics.
// A span's attributes, events and links load when it is selected.
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
  const parts = window.sidetraceTrace;
  const { ORPHAN, CRITICAL } = parts;  // bits of the flags column

  let trace = null;
  let col = null;          // the span columns, tree order
  let str = [];            // the string table the columns point into
  let n = 0;
  let errorCode = -1;      // index of "error" in the string table
  let subtreeEnd = null;   // index after the last descendant of each span
  let collapsed = new Set();
  let visible = [];        // indexes into spans currently shown (not inside a collapsed subtree)
  let positions = null;    // span index -> position in `visible` (-1 when hidden)
  let selected = -1;
  let byId = null;
  let matches = [];        // indexes of spans matching the find box, in tree order
  let matchSet = new Set();
  let matchAt = -1;        // which match is selected
  const win = { t0: 0, t1: 1 };  // the time window shown, ns from the trace start
  let minimap = null;
  let flame = null;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Service colours: distinct within the trace and stable across traces. Each service
  // prefers the palette slot its name hashes to; when another service of this trace holds
  // it, it takes the next free one. Twelve hand-picked colours, far apart on a dark
  // background; beyond them, hues a golden angle apart.
  const PALETTE = ["#5aa9ff", "#f28e2b", "#4cc38a", "#c792ea", "#edc948", "#76b7b2",
    "#ff9da7", "#9c755f", "#bab0ac", "#e15759", "#8cd17d", "#a0cbe8"];
  const SLOTS = PALETTE.length;
  const colours = new Map();
  function slotColour(slot) {
    if (slot < SLOTS) return PALETTE[slot];
    return `hsl(${Math.round((slot * 137.508) % 360)}, 70%, ${slot % 2 ? 70 : 55}%)`;
  }
  // The slot each service last had in this browser, so a displaced service keeps the
  // colour it was given the first time too.
  const REMEMBERED = "sidetrace.colours";
  function remembered() {
    try { return JSON.parse(localStorage.getItem(REMEMBERED) || "{}"); } catch (e) { return {}; }
  }
  function assignColours(names) {
    const taken = new Set();
    const memory = remembered();
    const unique = Array.from(new Set(names)).sort();
    const ordered = [...unique.filter((nm) => nm in memory), ...unique.filter((nm) => !(nm in memory))];
    ordered.forEach((name) => {
      let h = 0;
      for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
      let slot = name in memory ? Number(memory[name]) : h % SLOTS;
      for (let k = 0; k < SLOTS && taken.has(slot); k++) slot = (slot + 1) % SLOTS;
      while (taken.has(slot)) slot = Math.max(slot, SLOTS - 1) + 1;  // palette used up
      taken.add(slot);
      colours.set(name, slotColour(slot));
      memory[name] = slot;
    });
    const keys = Object.keys(memory);
    if (keys.length > 500) keys.slice(0, keys.length - 500).forEach((k) => delete memory[k]);
    localStorage.setItem(REMEMBERED, JSON.stringify(memory));
  }
  function colour(service) {
    if (!colours.has(service)) assignColours([...colours.keys(), service]);
    return colours.get(service);
  }

  // Column accessors: what the rest of the page reads of span i.
  const service = (i) => str[col.service[i]];
  const opName = (i) => str[col.name[i]];
  const isError = (i) => col.status[i] === errorCode;
  const hasFlag = (i, bit) => (col.flags[i] & bit) !== 0;

  function spanIndex(spanId) {
    if (!byId) {
      byId = new Map();
      for (let i = 0; i < n; i++) byId.set(col.spanId[i], i);
    }
    return byId.get(spanId);
  }

  function computeSubtrees() {
    // Spans come depth-first, so a subtree is a contiguous run of deeper rows.
    const depth = col.depth;
    subtreeEnd = new Int32Array(n);
    const stack = [];
    for (let i = 0; i < n; i++) {
      while (stack.length && depth[stack[stack.length - 1]] >= depth[i]) subtreeEnd[stack.pop()] = i;
      stack.push(i);
    }
    while (stack.length) subtreeEnd[stack.pop()] = n;
  }

  function computeVisible() {
    if (collapsed.size === 0) {
      if (visible.length !== n) visible = Array.from({ length: n }, (_, i) => i);
    } else {
      visible = [];
      for (let i = 0; i < n; ) {
        visible.push(i);
        i = collapsed.has(i) ? subtreeEnd[i] : i + 1;
      }
    }
    positions = null;
    rowsBox.style.height = visible.length * ROW_H + "px";
    if (minimap) minimap.rowsChanged();
  }

  function positionOf(i) {
    if (!positions) {
      positions = new Int32Array(n).fill(-1);
      visible.forEach((idx, pos) => { positions[idx] = pos; });
    }
    return positions[i];
  }

  function rowFor(i, pos) {
    const row = el("div", "row" + (i === selected ? " selected" : "") + (matchSet.has(i) ? " match" : ""));
    row.style.top = pos * ROW_H + "px";
    row.dataset.index = i;
    row.dataset.spanId = col.spanId[i];
    const name = el("div", "name");
    name.style.paddingLeft = Math.min(col.depth[i], 40) * 12 + "px";
    const children = col.childCount[i];
    if (children > 0) {
      const t = el("button", "toggle", collapsed.has(i) ? "▸" : "▾");
      t.type = "button";
      t.title = collapsed.has(i) ? `expand ${children} children` : "collapse";
      t.setAttribute("aria-expanded", String(!collapsed.has(i)));
      t.addEventListener("click", (ev) => { ev.stopPropagation(); toggle(i); });
      name.appendChild(t);
    } else {
      name.appendChild(el("span", "leaf"));
    }
    const svc = service(i);
    const sw = el("span", "swatch");
    sw.style.background = colour(svc);
    name.appendChild(sw);
    name.appendChild(el("span", "svc", svc));
    name.appendChild(el("span", "op", opName(i)));
    const kind = str[col.kind[i]];
    if (kind !== "unspecified" && kind !== "internal") name.appendChild(el("span", "mark kind", kind));
    if (isError(i)) name.appendChild(el("span", "mark err", "error"));
    if (hasFlag(i, ORPHAN)) name.appendChild(el("span", "mark orphan", "parent missing"));
    if (trace.skew[i]) name.appendChild(el("span", "mark skew", "skew"));
    row.appendChild(name);
    row.appendChild(lane(i));
    const dur = col.durationNs[i];
    row.title = `${svc}: ${opName(i)} — ${fmtDur(dur)}, self ${fmtDur(col.selfNs[i])}`;
    row.addEventListener("click", () => select(i, false));
    return row;
  }

  // The span's bar and duration on the time axis of the current window (clipped to it).
  function lane(i) {
    const box = el("div", "lane");
    const span = Math.max(1, win.t1 - win.t0);
    const off = col.offsetNs[i];
    const dur = col.durationNs[i];
    const left = (100 * (off - win.t0)) / span;
    const width = (100 * dur) / span;
    const start = Math.max(0, left);
    const end = Math.min(100, left + width);
    if (end >= 0 && start <= 100) {
      const bar = el("div", "bar" + (hasFlag(i, CRITICAL) ? " critical" : "") + (isError(i) ? " error" : ""));
      bar.style.left = start + "%";
      bar.style.width = Math.max(0.1, end - start) + "%";
      bar.style.background = colour(service(i));
      box.appendChild(bar);
    }
    const label = el("span", "dur", fmtDur(dur) + (col.childCount[i] ? ` (self ${fmtDur(col.selfNs[i])})` : ""));
    if (end < 0) {
      label.textContent = "◂ " + label.textContent;  // before the window shown
      label.style.left = "0.5%";
    } else if (start > 100) {
      label.textContent += " ▸";  // after it
      label.style.right = "0.5%";
    } else if (end <= 70) {
      label.style.left = Math.max(0, end) + 0.5 + "%";  // after the bar
    } else if (start >= 30) {
      label.style.right = 100 - start + 0.5 + "%";  // before the bar
    } else {
      label.classList.add("inside");  // long bar: on the bar itself, at its end
      label.style.right = 100 - end + 0.5 + "%";
    }
    box.appendChild(label);
    return box;
  }

  function rowsInView() {
    const top = Math.min(viewport.scrollTop, Math.max(0, visible.length * ROW_H - viewport.clientHeight));
    return [Math.floor(top / ROW_H), Math.ceil((top + viewport.clientHeight) / ROW_H)];
  }

  function render() {
    // The list may just have shrunk (collapse) before the browser clamped scrollTop.
    const [top, bottom] = rowsInView();
    const first = Math.max(0, top - OVERSCAN);
    const last = Math.min(visible.length, bottom + OVERSCAN);
    const frag = document.createDocumentFragment();
    for (let pos = first; pos < last; pos++) frag.appendChild(rowFor(visible[pos], pos));
    rowsBox.replaceChildren(frag);
    if (minimap) minimap.overlay();
  }

  let pending = false;
  viewport.addEventListener("scroll", () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; render(); });
  });
  window.addEventListener("resize", () => {
    if (!trace) return;
    render();
    if (minimap) minimap.draw();
    if (flame) flame.draw();
  });

  function toggle(i) {
    if (collapsed.has(i)) collapsed.delete(i); else collapsed.add(i);
    computeVisible();
    render();
  }

  function setAll(collapse) {
    collapsed = new Set();
    if (collapse) for (let i = 0; i < n; i++) if (col.childCount[i] > 0 && col.depth[i] >= 1) collapsed.add(i);
    computeVisible();
    render();
  }

  function scrollToPosition(pos) {
    viewport.scrollTop = Math.max(0, pos * ROW_H - viewport.clientHeight / 3);
  }

  function revealAndScroll(i) {
    // Expand collapsed ancestors so the row is visible, then scroll it into view.
    let changed = false;
    for (const c of Array.from(collapsed)) if (c < i && subtreeEnd[c] > i) { collapsed.delete(c); changed = true; }
    if (changed) computeVisible();
    const top = positionOf(i) * ROW_H;
    if (top < viewport.scrollTop || top > viewport.scrollTop + viewport.clientHeight - ROW_H) {
      viewport.scrollTop = Math.max(0, top - viewport.clientHeight / 3);
    }
    render();
  }

  // The time window shown by the waterfall, the flame graph and the minimap's frame.
  function setWindow(t0, t1) {
    const total = Math.max(1, trace.durationNs);
    const least = Math.min(total, Math.max(100, total / 1e6));  // narrowest zoom: 100 ns
    let a = Math.max(0, Math.min(t0, t1));
    let b = Math.min(total, Math.max(t0, t1));
    if (b - a < least) {
      const mid = (a + b) / 2;
      a = Math.max(0, Math.min(mid - least / 2, total - least));
      b = a + least;
    }
    win.t0 = a;
    win.t1 = b;
    const zoomed = a > 0 || b < total;
    app.dataset.viewStartNs = String(Math.round(a));
    app.dataset.viewEndNs = String(Math.round(b));
    document.getElementById("zoom-reset").hidden = !zoomed;
    document.getElementById("zoom-range").textContent = zoomed ? `${fmtDur(a)} – ${fmtDur(b)} of ${fmtDur(total)}` : "";
    ruler();
    render();
    if (minimap) minimap.overlay();
    if (flame) flame.draw();
  }

  function kvTable(items, id) {
    const t = el("table");
    if (id) t.id = id;
    if (!items.length) {
      const tr = el("tr"); tr.appendChild(el("td", "muted", "none")); t.appendChild(tr);
    }
    items.forEach((a) => {
      const tr = el("tr");
      const key = el("td", "mono");  // long keys break after a dot, not mid-word
      a.key.split(".").forEach((part, k) => {
        if (k) key.append(".", document.createElement("wbr"));
        key.append(part);
      });
      tr.appendChild(key);
      if (a.node) {
        const td = el("td", "mono");
        td.appendChild(a.node);
        tr.appendChild(td);
      } else {
        const v = typeof a.value === "object" ? JSON.stringify(a.value) : String(a.value);
        tr.appendChild(el("td", "mono", v));
      }
      t.appendChild(tr);
    });
    return t;
  }

  function spanLink(spanId) {
    return `/trace/${traceId}?span=${spanId}`;
  }

  // Attributes, resource, events and links of one span, fetched when it is shown.
  const details = new Map();
  function spanDetail(i) {
    const spanId = col.spanId[i];
    if (!details.has(spanId)) {
      details.set(spanId, fetch(`/api/v1/traces/${traceId}/spans/${spanId}`, { headers: { Accept: "application/json" } })
        .then((r) => r.ok ? r.json() : r.json().then((b) => Promise.reject(new Error(b.error || r.statusText))))
        .catch((err) => { details.delete(spanId); throw err; }));
    }
    return details.get(spanId);
  }

  let shownDetail = -1;
  function showDetail(i) {
    shownDetail = i;
    detail.replaceChildren();
    const close = el("button", "close", "×");
    close.type = "button";
    close.title = "close";
    close.setAttribute("aria-label", "close span details");
    close.addEventListener("click", () => { detail.hidden = true; selected = -1; shownDetail = -1; render(); });
    detail.appendChild(close);
    const h = el("h3", null, `${service(i)}: ${opName(i)}`);
    h.id = "detail-title";
    detail.appendChild(h);
    const loading = el("p", "muted", "Loading span…");
    detail.appendChild(loading);
    detail.hidden = false;
    spanDetail(i)
      .then((s) => { if (shownDetail === i) { loading.remove(); fillDetail(i, s); } })
      .catch((err) => { if (shownDetail === i) loading.textContent = "Could not load the span: " + err.message; });
  }

  function fillDetail(i, s) {
    const spanId = col.spanId[i];
    const link = el("a", "deep-link", "Link to this span");
    link.id = "span-link";
    link.href = spanLink(spanId);
    detail.appendChild(link);
    const anchor = (text, href, id) => { const a = el("a", null, text); a.href = href; if (id) a.id = id; return a; };
    let parent = { key: "parent", value: "(root)" };
    if (hasFlag(i, ORPHAN) && s.parentSpanId) parent = { key: "parent", value: s.parentSpanId + " (missing from trace)" };
    else if (col.parent[i] >= 0) {
      const p = col.parent[i];
      const a = anchor(col.spanId[p], spanLink(col.spanId[p]), "parent-link");
      a.addEventListener("click", (ev) => { ev.preventDefault(); select(p, true); });
      parent = { key: "parent", node: a };
    }
    const svc = service(i);
    const search = new URLSearchParams({ service: svc, operation: opName(i), lookback: "1h" });
    const off = col.offsetNs[i];
    const startMs = Number((BigInt(trace.startTimeUnixNano) + BigInt(off)) / 1000n) / 1000;
    const overview = [
      { key: "service", node: anchor(svc, `/services/${encodeURIComponent(svc)}`, "service-link") },
      { key: "operation", node: anchor(opName(i), "/search?" + search.toString(), "operation-link") },
      { key: "span id", value: spanId },
      parent,
      { key: "kind", value: str[col.kind[i]] },
      { key: "status", value: str[col.status[i]] + (s.status.message ? `: ${s.status.message}` : "") },
      { key: "start", value: window.sidetrace.formatTime(startMs) + ` (+${fmtDur(off)})` },
      { key: "duration", value: fmtDur(col.durationNs[i]) },
      { key: "self time", value: fmtDur(col.selfNs[i]) },
      { key: "critical path", value: hasFlag(i, CRITICAL) ? "yes" : "no" },
      { key: "scope", value: `${s.scope.name} ${s.scope.version}`.trim() },
    ];
    const skew = trace.skew[i];
    if (skew && skew[0]) overview.push({ key: "clock skew", value: `starts ${fmtDur(skew[0])} before its parent (another service's clock)` });
    if (skew && skew[1]) overview.push({ key: "clock skew", value: `ends ${fmtDur(skew[1])} after its parent (another service's clock)` });
    detail.appendChild(kvTable(overview, "span-overview"));
    detail.appendChild(el("h4", null, "Attributes"));
    detail.appendChild(kvTable(s.attributes, "span-attributes"));
    detail.appendChild(el("h4", null, "Resource"));
    detail.appendChild(kvTable(s.resource, "span-resource"));
    detail.appendChild(el("h4", null, `Events (${s.events.length})`));
    const start = BigInt(trace.startTimeUnixNano);
    s.events.forEach((e) => {
      detail.appendChild(el("div", "mono", `+${fmtDur(Number(BigInt(e.timeUnixNano) - start))} ${e.name}`));
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
  }

  function select(i, scroll) {
    selected = i;
    showDetail(i);
    const url = new URL(window.location.href);
    url.searchParams.set("span", col.spanId[i]);
    history.replaceState(null, "", url);
    if (scroll) revealAndScroll(i); else render();
    if (flame) flame.draw();
  }

  function ruler() {
    const ticks = document.getElementById("ruler-ticks");
    ticks.replaceChildren();
    for (let k = 0; k <= 4; k++) {
      const t = el("span", null, fmtDur(Math.round(win.t0 + ((win.t1 - win.t0) * k) / 4)));
      t.style.left = k * 25 + "%";
      ticks.appendChild(t);
    }
  }

  function header() {
    if (n) {
      document.getElementById("trace-title").textContent = `${service(0)}: ${opName(0)}`;
      document.title = `${service(0)}: ${opName(0)} · sidetrace`;
    }
    const counts = document.getElementById("trace-counts");
    const plural = (k, word) => `${k} ${word}${k === 1 ? "" : "s"}`;
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

  // Wall-clock time covered by a set of [start, end) intervals (overlaps counted once).
  function covered(intervals) {
    intervals.sort((a, b) => a[0] - b[0]);
    let sum = 0, start = 0, end = -1;
    for (const [a, b] of intervals) {
      if (a > end) { if (end >= start) sum += end - start; start = a; end = b; } else end = Math.max(end, b);
    }
    return end >= start ? sum + end - start : sum;
  }

  let statsDone = false;
  function stats() {
    // Per service: span and error counts, the self time its spans add up to (these sum to
    // the trace's self time) and the wall-clock time some span of it was running (nested
    // spans of one service count once, so this never exceeds the trace's duration).
    const services = new Map();
    for (let i = 0; i < n; i++) {
      const svc = service(i);
      const agg = services.get(svc) || { service: svc, count: 0, errors: 0, selfNs: 0, spans: [] };
      agg.count += 1;
      agg.errors += isError(i) ? 1 : 0;
      agg.selfNs += col.selfNs[i];
      const off = Math.max(0, col.offsetNs[i]);
      agg.spans.push([off, off + col.durationNs[i]]);
      services.set(svc, agg);
    }
    const rows = Array.from(services.values()).sort((a, b) => b.selfNs - a.selfNs);
    const allSelf = rows.reduce((k, r) => k + r.selfNs, 0);
    const body = document.querySelector("#stats-services tbody");
    body.replaceChildren();
    const cells = (tr, values) => values.forEach(([cls, text]) => tr.appendChild(el("td", cls, text)));
    rows.forEach((r) => {
      const tr = el("tr");
      tr.appendChild(serviceCell(r.service));
      const wall = covered(r.spans);
      tr.dataset.wallNs = String(wall);
      tr.dataset.selfNs = String(r.selfNs);
      cells(tr, [["num", String(r.count)], ["num", String(r.errors)], ["num", fmtDur(r.selfNs)],
        ["num", allSelf ? (100 * r.selfNs / allSelf).toFixed(1) + "%" : "–"], ["num", fmtDur(wall)]]);
      body.appendChild(tr);
    });
    const foot = document.querySelector("#stats-services tfoot");
    foot.replaceChildren();
    const tr = el("tr");
    tr.appendChild(el("th", null, "All services"));
    cells(tr, [["num", String(n)], ["num", String(rows.reduce((k, r) => k + r.errors, 0))],
      ["num", fmtDur(allSelf)], ["num", "100%"], ["num", fmtDur(trace.durationNs)]]);
    foot.appendChild(tr);

    const ops = document.querySelector("#stats-table tbody");
    ops.replaceChildren();
    trace.stats.forEach((st) => {
      const row = el("tr");
      row.appendChild(serviceCell(st.service));
      cells(row, [[null, st.name], ["num", String(st.count)], ["num", String(st.errors)],
        ["num", fmtDur(st.totalNs)], ["num", fmtDur(st.selfNs)], ["num", fmtDur(st.totalNs / st.count)]]);
      ops.appendChild(row);
    });
  }

  function serviceCell(svc) {
    const td = el("td");
    const sw = el("a", "badge", svc);
    sw.href = `/services/${encodeURIComponent(svc)}`;
    sw.style.borderColor = colour(svc);
    td.appendChild(sw);
    return td;
  }

  // Find within the trace: service, operation and span id here; attribute keys and values
  // by the server (they are not in the columns).
  const findBox = document.getElementById("find");
  const findCount = document.getElementById("find-count");
  let found = "";
  let findSeq = 0;
  function localMatches(text) {
    const hit = str.map((s) => s.toLowerCase().includes(text));
    const out = [];
    for (let i = 0; i < n; i++) {
      if (hit[col.service[i]] || hit[col.name[i]] || col.spanId[i].includes(text)) out.push(i);
    }
    return out;
  }
  function find() {
    const text = findBox.value.trim().toLowerCase();
    found = text;
    const seq = ++findSeq;
    if (!text) { showMatches([], ""); return; }
    findCount.textContent = "searching…";
    const local = localMatches(text);
    fetch(`/api/v1/traces/${traceId}/find?` + new URLSearchParams({ q: text }), { headers: { Accept: "application/json" } })
      .then((r) => r.ok ? r.json() : r.json().then((b) => Promise.reject(new Error(b.error || r.statusText))))
      .then((body) => {
        if (seq !== findSeq) return;
        const all = new Set(local);
        body.spanIds.forEach((id) => { const i = spanIndex(id); if (i !== undefined) all.add(i); });
        showMatches(Array.from(all).sort((a, b) => a - b), text);
        if (body.truncated) findCount.textContent += ` (only the first ${body.spanIds.length} attribute matches)`;
      })
      .catch((err) => { if (seq === findSeq) { showMatches(local, text); findCount.textContent += ` (attributes not searched: ${err.message})`; } });
  }
  function showMatches(list, text) {
    matches = list;
    matchSet = new Set(matches);
    matchAt = -1;
    findCount.textContent = text ? (matches.length ? `${matches.length} matches` : "no match") : "";
    if (matches.length) goToMatch(0); else render();
  }
  function goToMatch(k) {
    if (!matches.length) return;
    matchAt = (k + matches.length) % matches.length;
    findCount.textContent = `${matchAt + 1} of ${matches.length}`;
    select(matches[matchAt], true);
  }
  let findTimer = 0;
  findBox.addEventListener("input", () => { clearTimeout(findTimer); findTimer = setTimeout(find, 150); });
  findBox.addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter") return;
    ev.preventDefault();
    clearTimeout(findTimer);
    if (findBox.value.trim().toLowerCase() !== found) find(); else goToMatch(matchAt + (ev.shiftKey ? -1 : 1));
  });
  document.getElementById("find-next").addEventListener("click", () => goToMatch(matchAt + 1));
  document.getElementById("find-prev").addEventListener("click", () => goToMatch(matchAt - 1));

  const SECTIONS = { waterfall: "waterfall", flame: "flame", stats: "stats" };
  document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => {
    document.querySelectorAll(".tab").forEach((x) => {
      x.classList.toggle("active", x === b);
      x.setAttribute("aria-selected", String(x === b));
    });
    Object.entries(SECTIONS).forEach(([tab, id]) => { document.getElementById(id).hidden = b.dataset.tab !== tab; });
    document.getElementById("minimap-box").hidden = b.dataset.tab === "stats";
    if (b.dataset.tab === "stats" && !statsDone) { stats(); statsDone = true; }  // on first view
    if (b.dataset.tab === "waterfall") render();
    if (b.dataset.tab === "flame") {
      if (!flame) flame = parts.flame(document.getElementById("flame-scroll"), document.getElementById("flame-canvas"), model());
      flame.draw();
    }
    if (minimap && b.dataset.tab !== "stats") minimap.draw();
  }));
  document.getElementById("expand-all").addEventListener("click", () => setAll(false));
  document.getElementById("collapse-all").addEventListener("click", () => setAll(true));
  document.getElementById("zoom-reset").addEventListener("click", () => setWindow(0, trace.durationNs));
  viewport.addEventListener("keydown", (ev) => {
    if (selected < 0) return;
    const pos = positionOf(selected);
    if (ev.key === "ArrowDown" && pos + 1 < visible.length) { select(visible[pos + 1], true); ev.preventDefault(); }
    if (ev.key === "ArrowUp" && pos > 0) { select(visible[pos - 1], true); ev.preventDefault(); }
    if ((ev.key === "ArrowLeft" || ev.key === "ArrowRight") && col.childCount[selected]) {
      if ((ev.key === "ArrowLeft") !== collapsed.has(selected)) toggle(selected);
      ev.preventDefault();
    }
  });
  window.sidetrace.onTimeZoneChange(() => { if (selected >= 0) showDetail(selected); });

  // What the minimap and flame graph see of the trace (they draw; this module decides).
  function model() {
    return {
      col, n, colour, service, opName, isError,
      durationNs: () => trace.durationNs,
      window: () => [win.t0, win.t1],
      setWindow,
      visible: () => visible,
      rowsInView,
      scrollToPosition,
      selected: () => selected,
      select,
    };
  }

  fetch(`/api/v1/traces/${traceId}/view`)  // the same request as the page's preload link
    .then((r) => r.ok ? r.json() : r.json().then((b) => Promise.reject(new Error(b.error || r.statusText))))
    .then((data) => {
      const analysis = parts.analyze(data);
      trace = Object.assign(data, analysis);
      col = analysis.col;
      str = data.strings;
      n = col.spanId.length;
      errorCode = str.indexOf("error");
      assignColours(data.services);
      computeSubtrees();
      computeVisible();
      document.getElementById("loading").remove();
      header();
      notices();
      const m = model();
      minimap = parts.minimap(document.getElementById("minimap"), m);  // the flame graph: when shown
      minimap.rowsChanged();
      win.t1 = Math.max(1, trace.durationNs);
      const wanted = app.dataset.span;
      const target = wanted ? spanIndex(wanted) : undefined;
      if (target !== undefined) select(target, true);
      setWindow(0, trace.durationNs);
      app.dataset.loadedAt = String(performance.timeOrigin + performance.now());
      app.dataset.loaded = String(n);
    })
    .catch((err) => {
      const box = document.getElementById("loading");
      if (box) box.textContent = "Could not load the trace: " + err.message;
      else throw err;
    });
})();
