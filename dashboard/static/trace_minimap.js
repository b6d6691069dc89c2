// The trace's minimap: every row of the waterfall squeezed into a strip, time across.
// The frame over it is the time window the waterfall and flame graph show: drag across the
// strip to zoom into a time range, drag the frame to pan, double-click (or Escape) to see
// the whole trace again; a click without a drag scrolls the waterfall to that row.
// Keyboard: ←/→ pan, +/− zoom, 0 or Escape resets.
"use strict";
(function () {
  const DRAG_PX = 4;  // less movement than this is a click

  function minimap(canvas, m) {
    const ctx = canvas.getContext("2d");
    const strip = document.createElement("canvas");  // the spans, drawn once per layout
    let width = 0, height = 0, dpr = 1;
    let drag = null;   // {mode: "select" | "pan", x0, t0, t1, x}

    const toX = (t) => (t / Math.max(1, m.durationNs())) * width;
    const toT = (x) => (Math.min(Math.max(x, 0), width) / Math.max(1, width)) * m.durationNs();

    function layout() {
      dpr = window.devicePixelRatio || 1;
      width = canvas.clientWidth;
      height = canvas.clientHeight;
      for (const c of [canvas, strip]) { c.width = Math.round(width * dpr); c.height = Math.round(height * dpr); }
    }

    // Spans grouped by service so each colour is set once (100k fillStyle changes cost more
    // than the rectangles).
    function drawStrip() {
      const g = strip.getContext("2d");
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.clearRect(0, 0, width, height);
      const rows = m.visible();
      const total = Math.max(1, m.durationNs());
      const rowH = height / Math.max(1, rows.length);
      const h = Math.max(rowH, 1 / dpr);
      const groups = new Map();
      for (let pos = 0; pos < rows.length; pos++) {
        const key = m.col.service[rows[pos]];
        let list = groups.get(key);
        if (!list) groups.set(key, (list = []));
        list.push(pos);
      }
      const off = m.col.offsetNs, dur = m.col.durationNs;
      const scale = width / total;
      // Thousands of rows share a device pixel row here; a box that covers the same device
      // pixels as one already drawn in its colour is skipped.
      const px = width * dpr + 1, drawn = new Set();
      for (const [svc, list] of groups) {
        g.fillStyle = m.colour(m.service(rows[list[0]]));
        for (const pos of list) {
          const i = rows[pos];
          const x = off[i] * scale, w = Math.max(dur[i] * scale, 1 / dpr), y = pos * rowH;
          const key = ((Math.floor(y * dpr) * px + Math.floor(x * dpr)) * px + Math.ceil((x + w) * dpr)) * 4096 + svc;
          if (drawn.has(key)) continue;
          drawn.add(key);
          g.fillRect(x, y, w, h);
        }
      }
      canvas.dataset.rows = String(rows.length);
    }

    // The frame (zoom window), what a drag would select, and the rows scrolled into view.
    function overlay() {
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.drawImage(strip, 0, 0);
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      const rows = Math.max(1, m.visible().length);
      const [first, last] = m.rowsInView();
      ctx.fillStyle = "rgba(255,255,255,0.10)";
      ctx.fillRect(0, (first / rows) * height, width, Math.max(2, ((last - first) / rows) * height));
      let [t0, t1] = m.window();
      if (drag && drag.mode === "select") [t0, t1] = [toT(Math.min(drag.x0, drag.x)), toT(Math.max(drag.x0, drag.x))];
      const x0 = toX(t0), x1 = toX(t1);
      ctx.fillStyle = "rgba(0,0,0,0.55)";  // shade what is outside the window
      ctx.fillRect(0, 0, x0, height);
      ctx.fillRect(x1, 0, width - x1, height);
      ctx.strokeStyle = "#5aa9ff";
      ctx.lineWidth = 2;
      ctx.strokeRect(x0 + 1, 1, Math.max(2, x1 - x0 - 2), height - 2);
    }

    function draw() {
      if (!canvas.clientWidth) return;  // hidden
      layout();
      drawStrip();
      overlay();
    }

    function localX(ev) { return ev.clientX - canvas.getBoundingClientRect().left; }

    canvas.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0) return;
      const x = localX(ev);
      const [t0, t1] = m.window();
      const zoomed = t0 > 0 || t1 < m.durationNs();
      const inside = zoomed && x >= toX(t0) && x <= toX(t1);
      drag = { mode: inside ? "pan" : "select", x0: x, x, t0, t1, y: ev.clientY - canvas.getBoundingClientRect().top };
      canvas.setPointerCapture(ev.pointerId);
      ev.preventDefault();
    });
    canvas.addEventListener("pointermove", (ev) => {
      if (!drag) return;
      drag.x = localX(ev);
      if (drag.mode === "pan") {
        const shift = toT(drag.x) - toT(drag.x0);
        const span = drag.t1 - drag.t0;
        const t0 = Math.min(Math.max(0, drag.t0 + shift), m.durationNs() - span);
        m.setWindow(t0, t0 + span);
      } else {
        overlay();
      }
    });
    canvas.addEventListener("pointerup", (ev) => {
      if (!drag) return;
      const d = drag;
      drag = null;
      canvas.releasePointerCapture(ev.pointerId);
      if (Math.abs(d.x - d.x0) < DRAG_PX) {
        // A click: scroll the waterfall to the row under the pointer.
        const rows = m.visible().length;
        m.scrollToPosition(Math.floor((d.y / Math.max(1, height)) * rows));
        overlay();
      } else if (d.mode === "select") {
        m.setWindow(toT(Math.min(d.x0, d.x)), toT(Math.max(d.x0, d.x)));
      }
    });
    canvas.addEventListener("dblclick", () => m.setWindow(0, m.durationNs()));
    canvas.addEventListener("keydown", (ev) => {
      const [t0, t1] = m.window();
      const span = t1 - t0, total = m.durationNs();
      const pan = (by) => { const a = Math.min(Math.max(0, t0 + by), total - span); m.setWindow(a, a + span); };
      const zoom = (f) => { const mid = (t0 + t1) / 2; m.setWindow(mid - (span * f) / 2, mid + (span * f) / 2); };
      const keys = {
        ArrowLeft: () => pan(-span / 10), ArrowRight: () => pan(span / 10),
        "+": () => zoom(0.5), "=": () => zoom(0.5), "-": () => zoom(2),
        "0": () => m.setWindow(0, total), Escape: () => m.setWindow(0, total),
      };
      if (!keys[ev.key]) return;
      keys[ev.key]();
      ev.preventDefault();
    });

    return { draw, overlay, rowsChanged: draw };
  }

  window.sidetraceTrace = Object.assign(window.sidetraceTrace || {}, { minimap });
})();
