// The trace as a flame graph: time across, depth down, one box per span in its service's
// colour. Only the depths in view are drawn (a 10,000-deep chain stays one canvas the size
// of the screen). Clicking a span selects it and zooms the shared time window to it;
// double-click (or the "Reset zoom" button) shows the whole trace again. Keyboard: arrows
// move the selection (up: parent, down: first child, left/right: neighbours at that depth),
// Enter zooms to it, 0 or Escape resets.
"use strict";
(function () {
  const ROW_H = 18;
  const TEXT_MIN_PX = 36;  // narrower boxes get no label

  function flame(scroller, canvas, m) {
    const ctx = canvas.getContext("2d");
    const spacer = document.createElement("div");
    spacer.className = "flame-spacer";
    scroller.appendChild(spacer);
    canvas.dataset.rowHeight = String(ROW_H);

    // Spans by depth, each list in start order, so a row is drawn and hit-tested alone.
    const byDepth = [];
    for (let i = 0; i < m.n; i++) {
      const d = m.col.depth[i];
      while (byDepth.length <= d) byDepth.push([]);
      byDepth[d].push(i);
    }
    byDepth.forEach((list) => list.sort((a, b) => m.col.offsetNs[a] - m.col.offsetNs[b]));
    const place = new Int32Array(m.n);  // each span's position in its depth's list
    byDepth.forEach((list) => list.forEach((i, k) => { place[i] = k; }));
    spacer.style.height = byDepth.length * ROW_H + "px";

    let width = 0, height = 0;

    function box(i, t0, scale) {
      const x0 = (m.col.offsetNs[i] - t0) * scale;
      return [x0, x0 + m.col.durationNs[i] * scale];
    }

    function draw() {
      if (!scroller.clientWidth) return;  // hidden
      const dpr = window.devicePixelRatio || 1;
      width = scroller.clientWidth;
      height = scroller.clientHeight;
      canvas.style.top = scroller.scrollTop + "px";
      canvas.style.width = width + "px";
      canvas.style.height = height + "px";
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, width, height);
      ctx.font = "11px system-ui, sans-serif";
      ctx.textBaseline = "middle";
      const [t0, t1] = m.window();
      const scale = width / Math.max(1, t1 - t0);
      const top = scroller.scrollTop;
      const first = Math.floor(top / ROW_H);
      const last = Math.min(byDepth.length, Math.ceil((top + height) / ROW_H));
      const chosen = m.selected();
      let drawn = 0;
      for (let d = first; d < last; d++) {
        const y = d * ROW_H - top;
        let lastPx = -1;  // boxes under one pixel merge into the pixel already drawn
        for (const i of byDepth[d]) {
          let [x0, x1] = box(i, t0, scale);
          if (x1 < 0 || x0 > width) continue;
          x0 = Math.max(0, x0);
          x1 = Math.min(width, x1);
          if (x1 - x0 < 1 && Math.floor(x0) === lastPx) continue;
          lastPx = Math.floor(x0);
          drawn++;
          const w = Math.max(1, x1 - x0);
          ctx.fillStyle = m.colour(m.service(i));
          ctx.fillRect(x0, y + 1, w, ROW_H - 2);
          if (m.isError(i) || i === chosen) {
            ctx.strokeStyle = i === chosen ? "#ffffff" : "#ff5c5c";
            ctx.lineWidth = i === chosen ? 2 : 1;
            ctx.strokeRect(x0 + 0.5, y + 1.5, Math.max(0, w - 1), ROW_H - 3);
          }
          if (w >= TEXT_MIN_PX) {
            const label = `${m.service(i)}: ${m.opName(i)}`;
            const fits = Math.floor((w - 6) / 6.2);
            ctx.fillStyle = "#0d0f12";
            ctx.fillText(label.length > fits ? label.slice(0, Math.max(0, fits - 1)) + "…" : label, x0 + 3, y + ROW_H / 2);
          }
        }
      }
      canvas.dataset.drawn = String(drawn);
    }

    // The span under a point of the canvas (boxes under a pixel wide count as one pixel).
    function spanAt(x, y) {
      const d = Math.floor((y + scroller.scrollTop) / ROW_H);
      if (d < 0 || d >= byDepth.length) return -1;
      const [t0, t1] = m.window();
      const scale = width / Math.max(1, t1 - t0);
      let best = -1;
      for (const i of byDepth[d]) {
        const [x0, x1] = box(i, t0, scale);
        if (x >= x0 - 0.5 && x <= Math.max(x1, x0 + 1) + 0.5) {
          if (best < 0 || m.col.durationNs[i] > m.col.durationNs[best]) best = i;
        }
      }
      return best;
    }

    function point(ev) {
      const r = canvas.getBoundingClientRect();
      return [ev.clientX - r.left, ev.clientY - r.top];
    }

    let pending = false;
    scroller.addEventListener("scroll", () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; draw(); });
    });
    const zoomTo = (i) => m.setWindow(m.col.offsetNs[i], m.col.offsetNs[i] + m.col.durationNs[i]);
    canvas.addEventListener("click", (ev) => {
      const i = spanAt(...point(ev));
      if (i < 0) return;
      m.select(i, true);
      zoomTo(i);
    });
    canvas.addEventListener("dblclick", () => m.setWindow(0, m.durationNs()));
    canvas.addEventListener("keydown", (ev) => {
      const cur = m.selected();
      const d = cur < 0 ? 0 : m.col.depth[cur];
      const row = cur < 0 ? [] : byDepth[d];
      const moves = {
        ArrowUp: () => (cur > 0 ? m.col.parent[cur] : -1),
        ArrowDown: () => (cur >= 0 && m.col.childCount[cur] ? cur + 1 : -1),
        ArrowLeft: () => (cur >= 0 && place[cur] > 0 ? row[place[cur] - 1] : -1),
        ArrowRight: () => (cur >= 0 && place[cur] + 1 < row.length ? row[place[cur] + 1] : -1),
      };
      if (moves[ev.key]) {
        const next = cur < 0 ? 0 : moves[ev.key]();
        if (next >= 0 && next < m.n) {
          m.select(next, true);
          const top = m.col.depth[next] * ROW_H;  // keep its row in view
          if (top < scroller.scrollTop || top + ROW_H > scroller.scrollTop + scroller.clientHeight) scroller.scrollTop = top - ROW_H;
        }
      } else if (ev.key === "Enter" && cur >= 0) zoomTo(cur);
      else if (ev.key === "Escape" || ev.key === "0") m.setWindow(0, m.durationNs());
      else return;
      ev.preventDefault();
    });
    canvas.addEventListener("mousemove", (ev) => {
      const i = spanAt(...point(ev));
      canvas.title = i < 0 ? "" : `${m.service(i)}: ${m.opName(i)} — ${window.sidetrace.formatDuration(m.col.durationNs[i])} (click to zoom)`;
      canvas.style.cursor = i < 0 ? "default" : "pointer";
    });

    return { draw, depth: byDepth.length };
  }

  window.sidetraceTrace = Object.assign(window.sidetraceTrace || {}, { flame });
})();
