// The trace view's analysis of the columns /api/v1/traces/{id}/view sends: tree order,
// depth, orphans, self time, critical path, clock skew and per-operation statistics.
//
// It is dashboard/trace_analysis.py's algorithm, step for step, run here because the
// browser does it for 100k spans in tens of milliseconds where the server's Python takes
// seconds; tests/test_browser_trace_analysis.py holds the two to the same answers.
"use strict";
(function () {
  const ROOT = -1;  // `parent` of a span without a parent id (-2: its parent is not here)
  const ORPHAN = 1, CRITICAL = 2;  // bits of the flags column

  function analyze(view) {
    const S = view.spans, str = view.strings;
    const n = S.spanId.length;
    const id = S.spanId, off = S.offsetNs, dur = S.durationNs, parentOf = S.parent;
    const end = new Float64Array(n);
    for (let i = 0; i < n; i++) end[i] = off[i] + dur[i];
    const byStart = (a, b) => off[a] - off[b] || (id[a] < id[b] ? -1 : id[a] > id[b] ? 1 : 0);

    const kids = new Array(n);  // children of each span (undefined: none), start order
    const roots = [], orphans = [];
    for (let i = 0; i < n; i++) {
      const p = parentOf[i];
      if (p === ROOT) roots.push(i);
      else if (p >= 0 && p !== i) (kids[p] || (kids[p] = [])).push(i);
      else orphans.push(i);
    }
    for (let i = 0; i < n; i++) if (kids[i]) kids[i].sort(byStart);
    roots.sort(byStart);
    orphans.sort(byStart);

    const orphan = new Uint8Array(n);
    orphans.forEach((i) => { orphan[i] = 1; });
    const top = n ? (roots.length ? roots[0] : orphans[0]) : -1;
    const attached = orphans.filter((i) => i !== top);  // shown under the root, marked

    const order = [];
    const depth = new Int32Array(n), childCount = new Int32Array(n), visited = new Uint8Array(n);
    function walk(start, d0) {
      const stack = [start], depths = [d0];
      while (stack.length) {
        const s = stack.pop(), d = depths.pop();
        if (visited[s]) continue;
        visited[s] = 1;
        order.push(s);
        let list = kids[s] || [];
        if (s === top && attached.length) list = list.concat(attached);
        depth[s] = d;
        childCount[s] = list.length;
        for (let k = list.length - 1; k >= 0; k--) { stack.push(list[k]); depths.push(d + 1); }
      }
    }
    if (n) {
      walk(top, 0);
      roots.slice(1).forEach((r) => walk(r, 0));
      const leftovers = [];  // parent cycles
      for (let i = 0; i < n; i++) if (!visited[i]) leftovers.push(i);
      leftovers.sort(byStart).forEach((s) => {
        orphan[s] = 1;
        childCount[top] += 1;
        walk(s, 1);
      });
    }

    // Self time: the duration no child covers (children clipped to the span's interval;
    // in start order already, so their clipped starts are too).
    const self = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const list = kids[i];
      if (!list) { self[i] = dur[i]; continue; }
      let union = 0, from = 0, to = -Infinity;
      for (const c of list) {
        if (!(end[c] > off[i] && off[c] < end[i])) continue;
        const a = Math.max(off[c], off[i]), b = Math.min(end[c], end[i]);
        if (a > to) { if (to > -Infinity) union += to - from; from = a; to = b; } else to = Math.max(to, b);
      }
      if (to > -Infinity) union += to - from;
      self[i] = Math.max(0, dur[i] - union);
    }

    // Clock skew against a parent on another service; per-operation statistics.
    const skewAt = new Map();
    const stats = new Map();
    const errorCode = str.indexOf("error");
    let errors = 0;
    for (let i = 0; i < n; i++) {
      const p = parentOf[i];
      if (!orphan[i] && p >= 0 && S.service[p] !== S.service[i]) {
        const before = Math.max(0, off[p] - off[i]), after = Math.max(0, end[i] - end[p]);
        if (before || after) skewAt.set(i, [before, after]);
      }
      const key = S.service[i] * str.length + S.name[i];
      let st = stats.get(key);
      if (!st) stats.set(key, (st = { service: str[S.service[i]], name: str[S.name[i]], count: 0, totalNs: 0, selfNs: 0, errors: 0 }));
      const failed = S.status[i] === errorCode ? 1 : 0;
      st.count += 1;
      st.totalNs += dur[i];
      st.selfNs += self[i];
      st.errors += failed;
      errors += failed;
    }

    // Critical path: from each span, the child that finished last, then the one that
    // finished before that one started, and so on; descend into each.
    const critical = new Uint8Array(n);
    const stack = n ? [top] : [];
    while (stack.length) {
      const s = stack.pop();
      critical[s] = 1;
      let cursor = end[s];
      const byEnd = (kids[s] || []).slice().sort((a, b) => end[b] - end[a]);
      for (const c of byEnd) {
        if (off[c] >= end[s]) continue;
        if (Math.min(end[c], end[s]) <= cursor) { stack.push(c); cursor = off[c]; }
      }
    }

    // Everything in tree order: row k of each column is order[k].
    const row = new Int32Array(n);
    order.forEach((i, k) => { row[i] = k; });
    const pick = (column) => order.map((i) => column[i]);
    const skew = {};
    skewAt.forEach((v, i) => { skew[row[i]] = v; });
    const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
    return {
      col: {
        spanId: pick(id),
        parent: order.map((i) => (!orphan[i] && parentOf[i] >= 0 ? row[parentOf[i]] : -1)),
        service: pick(S.service), name: pick(S.name), kind: pick(S.kind), status: pick(S.status),
        offsetNs: pick(off), durationNs: pick(dur), selfNs: pick(self),
        depth: pick(depth), childCount: pick(childCount),
        flags: order.map((i) => (orphan[i] ? ORPHAN : 0) | (critical[i] ? CRITICAL : 0)),
      },
      skew,
      skewedSpans: skewAt.size,
      orphans: orphan.reduce((a, b) => a + b, 0),
      errors,
      services: Array.from(new Set(S.service)).map((k) => str[k]).sort(cmp),
      stats: Array.from(stats.values()).sort((a, b) => b.selfNs - a.selfNs || cmp(a.service, b.service) || cmp(a.name, b.name)),
    };
  }

  window.sidetraceTrace = Object.assign(window.sidetraceTrace || {}, { analyze, ORPHAN, CRITICAL });
})();
