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
  let matches = [];        // indexes of spans matching the find box, in tree order
  let matchSet = new Set();
  let matchAt = -1;        // which match is selected

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
    const ordered = [...unique.filter((n) => n in memory), ...unique.filter((n) => !(n in memory))];
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
    const row = el("div", "row" + (i === selected ? " selected" : "") + (matchSet.has(i) ? " match" : ""));
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
    const anchor = (text, href, id) => { const a = el("a", null, text); a.href = href; if (id) a.id = id; return a; };
    let parent = { key: "parent", value: "(root)" };
    if (s.orphan) parent = { key: "parent", value: s.parentSpanId + " (missing from trace)" };
    else if (s.parentSpanId) {
      const a = anchor(s.parentSpanId, spanLink(s.parentSpanId), "parent-link");
      a.addEventListener("click", (ev) => { ev.preventDefault(); select(byId.get(s.parentSpanId), true); });
      parent = { key: "parent", node: a };
    }
    const search = new URLSearchParams({ service: s.service, operation: s.name, lookback: "1h" });
    const overview = [
      { key: "service", node: anchor(s.service, `/services/${encodeURIComponent(s.service)}`, "service-link") },
      { key: "operation", node: anchor(s.name, "/search?" + search.toString(), "operation-link") },
      { key: "span id", value: s.spanId },
      parent,
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

  // Wall-clock time covered by a set of [start, end) intervals (overlaps counted once).
  function covered(intervals) {
    intervals.sort((a, b) => a[0] - b[0]);
    let sum = 0, start = 0, end = -1;
    for (const [a, b] of intervals) {
      if (a > end) { if (end >= start) sum += end - start; start = a; end = b; } else end = Math.max(end, b);
    }
    return end >= start ? sum + end - start : sum;
  }

  function stats() {
    // Per service: span and error counts, the self time its spans add up to (these sum to
    // the trace's self time) and the wall-clock time some span of it was running (nested
    // spans of one service count once, so this never exceeds the trace's duration).
    const services = new Map();
    spans.forEach((s) => {
      const agg = services.get(s.service) || { service: s.service, count: 0, errors: 0, selfNs: 0, spans: [] };
      agg.count += 1;
      agg.errors += s.status.code === "error" ? 1 : 0;
      agg.selfNs += s.selfNs;
      agg.spans.push([Math.max(0, s.offsetNs), Math.max(0, s.offsetNs) + s.durationNs]);
      services.set(s.service, agg);
    });
    const rows = Array.from(services.values()).sort((a, b) => b.selfNs - a.selfNs);
    const allSelf = rows.reduce((n, r) => n + r.selfNs, 0);
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
    cells(tr, [["num", String(spans.length)], ["num", String(rows.reduce((n, r) => n + r.errors, 0))],
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

  function serviceCell(service) {
    const td = el("td");
    const sw = el("a", "badge", service);
    sw.href = `/services/${encodeURIComponent(service)}`;
    sw.style.borderColor = colour(service);
    td.appendChild(sw);
    return td;
  }

  // Find within the trace: service, operation, span id or any attribute key or value.
  const findBox = document.getElementById("find");
  const findCount = document.getElementById("find-count");
  let haystacks = null;
  function haystack(s) {
    const parts = [s.service, s.name, s.spanId];
    for (const a of s.attributes) parts.push(a.key, typeof a.value === "object" ? JSON.stringify(a.value) : String(a.value));
    return parts.join("\u0000").toLowerCase();
  }
  let found = "";
  function find() {
    const text = findBox.value.trim().toLowerCase();
    found = text;
    matches = [];
    if (text) {
      if (!haystacks) haystacks = spans.map(haystack);
      haystacks.forEach((h, i) => { if (h.includes(text)) matches.push(i); });
    }
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
      assignColours(spans.map((s) => s.service));
      computeSubtrees();
      computeVisible();
      document.getElementById("loading").remove();
      header();
      ruler();
      notices();
      stats();
      app.dataset.loadedAt = String(performance.timeOrigin + performance.now());
      app.dataset.loaded = String(spans.length);
      const wanted = app.dataset.span;
      if (wanted && byId.has(wanted)) select(byId.get(wanted), true);
      else render();
    })
    .catch((err) => {
      document.getElementById("loading").textContent = "Could not load the trace: " + err.message;
    });
})();
