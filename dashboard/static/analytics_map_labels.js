// Service map: edge labels beside their lines, not on them. The server puts each label on
// its edge, mid-gap between two columns; here, with the text measured, each label turns to
// run along its edge's segment and sits just above (or below) it, at the first place along
// the segment that crosses no line, no node and no other label; where edges crowd so that
// no such place exists, the label shows only while its edge is hovered or focused.
"use strict";
(function () {
  const OFFSET = 3;    // px between a line and its label
  const PAD = 1.5;     // px kept clear around a label
  const END = 16;      // px kept free at each end of a segment (the node, the arrow head)
  // Places along a segment, from its middle outwards.
  const ALONG = [0.5];
  for (let k = 1; k <= 8; k++) ALONG.push(0.5 - k * 0.05, 0.5 + k * 0.05);

  function points(polyline) {
    return Array.from(polyline.points, (p) => [p.x, p.y]);
  }

  // A box as four corners, from its centre, unit axis d and half sizes along d and its normal.
  function corners(c, d, hu, hv) {
    const n = [-d[1], d[0]];
    return [[-1, -1], [1, -1], [1, 1], [-1, 1]].map(([a, b]) =>
      [c[0] + d[0] * hu * a + n[0] * hv * b, c[1] + d[1] * hu * a + n[1] * hv * b]);
  }

  // Separating-axis test for two convex polygons.
  function overlaps(p, q) {
    for (const poly of [p, q]) {
      for (let i = 0; i < poly.length; i++) {
        const a = poly[i], b = poly[(i + 1) % poly.length];
        const axis = [a[1] - b[1], b[0] - a[0]];
        const span = (ps) => ps.map((v) => v[0] * axis[0] + v[1] * axis[1]);
        const sp = span(p), sq = span(q);
        if (Math.max(...sp) <= Math.min(...sq) || Math.max(...sq) <= Math.min(...sp)) return false;
      }
    }
    return true;
  }

  // Whether segment a-b passes through the box (centre c, axis d, half sizes hu, hv):
  // Liang-Barsky clipping in the box's own frame.
  function crosses(a, b, c, d, hu, hv) {
    const local = (p) => [(p[0] - c[0]) * d[0] + (p[1] - c[1]) * d[1], -(p[0] - c[0]) * d[1] + (p[1] - c[1]) * d[0]];
    const [ax, ay] = local(a), [bx, by] = local(b);
    const dx = bx - ax, dy = by - ay;
    let t0 = 0, t1 = 1;
    for (const [p, q] of [[-dx, ax + hu], [dx, hu - ax], [-dy, ay + hv], [dy, hv - ay]]) {
      if (p === 0) { if (q < 0) return false; continue; }
      const r = q / p;
      if (p < 0) { if (r > t1) return false; if (r > t0) t0 = r; }
      else { if (r < t0) return false; if (r < t1) t1 = r; }
    }
    return true;
  }

  function hitsLine(line, c, d, hu, hv) {
    for (let i = 1; i < line.length; i++) if (crosses(line[i - 1], line[i], c, d, hu, hv)) return true;
    return false;
  }

  // The segment of ``line`` the server's label x falls in (the longest when none does).
  function segmentAt(line, x) {
    let best = 1, longest = -1;
    for (let i = 1; i < line.length; i++) {
      const [ax, ay] = line[i - 1], [bx, by] = line[i];
      if (x >= Math.min(ax, bx) && x <= Math.max(ax, bx) && ax !== bx) return i;
      const len = Math.hypot(bx - ax, by - ay);
      if (len > longest) { longest = len; best = i; }
    }
    return best;
  }

  // Turn and move every edge label beside its line; returns how many found no clear place.
  function placeEdgeLabels(svg) {
    const edges = Array.from(svg.querySelectorAll("g.edge"));
    const lines = edges.map((g) => points(g.querySelector(".edge-line")));
    const taken = [];
    svg.querySelectorAll("g.node .node-label, g.node circle, g.node rect").forEach((n) => {
      const b = n.getBBox();
      taken.push(corners([b.x + b.width / 2, b.y + b.height / 2], [1, 0], b.width / 2, b.height / 2));
    });
    let crowded = 0;
    edges.forEach((g, k) => {
      const text = g.querySelector(".edge-label");
      if (!text) return;
      const line = lines[k];
      const first = segmentAt(line, Number(text.getAttribute("x")));
      const box = text.getBBox();
      const hu = box.width / 2 + PAD, hv = box.height / 2 + PAD;
      // Candidate [centre, axis] pairs: beside the server's segment first, then the edge's
      // others; then the same one label further out, for crowded fans.
      const tries = [];
      const order = [first, ...line.map((_, i) => i).filter((i) => i > 0 && i !== first)];
      for (const ring of [0, 1]) {
        for (const i of order) {
          const a = line[i - 1], b = line[i];
          const len = Math.hypot(b[0] - a[0], b[1] - a[1]) || 1;
          let d = [(b[0] - a[0]) / len, (b[1] - a[1]) / len];
          if (d[0] < 0) d = [-d[0], -d[1]];  // never upside down
          const n = [-d[1], d[0]];
          const ts = ALONG.filter((t) => t * len - hu >= END && len - t * len - hu >= END);
          for (const t of ts.length || i !== first ? ts : [0.5]) {
            const p = [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t];
            for (const side of [-1, 1]) {
              const off = side * (OFFSET + hv + ring * (2 * hv + OFFSET));
              tries.push([[p[0] + n[0] * off, p[1] + n[1] * off], d]);
            }
          }
        }
      }
      const free = ([c, d]) => !taken.some((t) => overlaps(t, corners(c, d, hu, hv)));
      const linesHit = ([c, d]) => lines.filter((l) => hitsLine(l, c, d, hu, hv)).length;
      let best = tries.find((t) => free(t) && linesHit(t) === 0);
      if (best === undefined) {
        // Crowded: the label beside its line but hidden until its edge is hovered or
        // focused (the edge's title carries it too), so the labels shown never collide.
        crowded += 1;
        text.classList.add("crowded");
        best = tries.slice(0, 2).find(free) || tries[0];
      }
      const [c, d] = best;
      const angle = (Math.atan2(d[1], d[0]) * 180) / Math.PI;
      text.setAttribute("x", c[0].toFixed(1));
      text.setAttribute("y", c[1].toFixed(1));
      text.setAttribute("dominant-baseline", "central");
      text.setAttribute("transform", `rotate(${angle.toFixed(2)} ${c[0].toFixed(1)} ${c[1].toFixed(1)})`);
      if (!text.classList.contains("crowded")) taken.push(corners(c, d, hu, hv));
    });
    svg.dataset.labelsPlaced = String(crowded);
    const note = document.getElementById("map-crowded");
    if (note && crowded) {
      note.textContent = `${crowded} edge label${crowded > 1 ? "s" : ""} shown on hover, where edges crowd`;
      note.hidden = false;
    }
    return crowded;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const svg = document.getElementById("service-map");
    if (svg) placeEdgeLabels(svg);
  });
})();
