// Service map: pan and zoom. The map keeps its labels readable — it opens at no less than
// READABLE of full size (panning shows the rest), never shrunk to fit a narrow window —
// and pans by dragging or the arrow keys, zooms with the wheel, the buttons or + and −;
// "Fit" shows the whole graph, "1:1" full size.
"use strict";
(function () {
  const READABLE = 0.9;      // the smallest opening scale: 12 px node labels stay ≥ 10.8 px
  const MIN = 0.1, MAX = 4;  // zoom limits
  const FACTOR = 1.25;       // one button press or key
  const PAN = 80;            // px per arrow key

  function mapView(svg, viewport) {
    const content = svg.getBBox();
    const bounds = {
      x: Math.min(0, content.x), y: Math.min(0, content.y),
      w: Math.max(Number(svg.dataset.width), content.x + content.width) - Math.min(0, content.x),
      h: Math.max(Number(svg.dataset.height), content.y + content.height) - Math.min(0, content.y),
    };
    const view = { x: bounds.x, y: bounds.y, s: 1 };
    const size = () => ({ w: viewport.clientWidth, h: viewport.clientHeight });
    const fitScale = () => Math.min(size().w / bounds.w, size().h / bounds.h);

    // The viewport keeps the page's width; its height follows the graph, within the window.
    function sizeViewport(scale) {
      const room = Math.max(320, window.innerHeight - viewport.getBoundingClientRect().top - 24);
      viewport.style.height = Math.min(room, Math.ceil(bounds.h * scale) + 4) + "px";
    }

    function apply() {
      const { w, h } = size();
      const vw = w / view.s, vh = h / view.s;
      // Keep some of the graph in sight: the view may not leave the bounds entirely.
      view.x = Math.min(Math.max(view.x, bounds.x - vw * 0.8), bounds.x + bounds.w - vw * 0.2);
      view.y = Math.min(Math.max(view.y, bounds.y - vh * 0.8), bounds.y + bounds.h - vh * 0.2);
      svg.setAttribute("viewBox", `${view.x.toFixed(1)} ${view.y.toFixed(1)} ${vw.toFixed(1)} ${vh.toFixed(1)}`);
      svg.dataset.scale = view.s.toFixed(3);
    }

    // Zoom by ``factor`` keeping the map point under (px, py) (viewport px) in place.
    function zoom(factor, px, py) {
      const { w, h } = size();
      if (px === undefined) { px = w / 2; py = h / 2; }
      const s = Math.min(MAX, Math.max(Math.min(MIN, fitScale()), view.s * factor));
      view.x += px / view.s - px / s;
      view.y += py / view.s - py / s;
      view.s = s;
      apply();
    }

    function fit() {
      const s = fitScale();
      const { w, h } = size();
      view.s = s;
      view.x = bounds.x - (w / s - bounds.w) / 2;
      view.y = bounds.y - (h / s - bounds.h) / 2;
      apply();
    }

    function actual() {
      const { w, h } = size();
      const cx = view.x + w / view.s / 2, cy = view.y + h / view.s / 2;
      view.s = 1;
      view.x = cx - w / 2;
      view.y = cy - h / 2;
      apply();
    }

    function pan(dx, dy) {  // viewport px
      view.x -= dx / view.s;
      view.y -= dy / view.s;
      apply();
    }

    svg.removeAttribute("width");
    svg.removeAttribute("height");
    viewport.classList.add("managed");
    const opening = Math.min(1, Math.max(fitScale() || 1, READABLE));
    sizeViewport(opening);
    if (fitScale() >= READABLE) fit();
    else { view.s = opening; apply(); }

    // Drag to pan; a drag that starts on a node or an edge does not open it.
    let drag = null;
    viewport.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0) return;
      drag = { x: ev.clientX, y: ev.clientY, id: ev.pointerId, moved: false };
    });
    viewport.addEventListener("pointermove", (ev) => {
      if (!drag) return;
      const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (!drag.moved && Math.hypot(dx, dy) < 4) return;
      if (!drag.moved) { viewport.setPointerCapture(drag.id); viewport.classList.add("panning"); }
      drag.moved = true;
      drag.x = ev.clientX;
      drag.y = ev.clientY;
      pan(dx, dy);
    });
    const end = () => {
      if (drag && drag.moved) viewport.dataset.justPanned = "1";
      drag = null;
      viewport.classList.remove("panning");
    };
    viewport.addEventListener("pointerup", end);
    viewport.addEventListener("pointercancel", end);
    viewport.addEventListener("click", (ev) => {
      if (viewport.dataset.justPanned) { ev.preventDefault(); ev.stopPropagation(); }
      delete viewport.dataset.justPanned;
    }, true);
    viewport.addEventListener("dragstart", (ev) => ev.preventDefault());
    viewport.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const r = viewport.getBoundingClientRect();
      zoom(Math.pow(1.0015, -ev.deltaY), ev.clientX - r.left, ev.clientY - r.top);
    }, { passive: false });
    viewport.addEventListener("keydown", (ev) => {
      if (ev.target !== viewport) return;  // keys on a focused node or edge link are theirs
      const moves = { ArrowLeft: [PAN, 0], ArrowRight: [-PAN, 0], ArrowUp: [0, PAN], ArrowDown: [0, -PAN] };
      if (moves[ev.key]) pan(...moves[ev.key]);
      else if (ev.key === "+" || ev.key === "=") zoom(FACTOR);
      else if (ev.key === "-" || ev.key === "_") zoom(1 / FACTOR);
      else if (ev.key === "0") fit();
      else if (ev.key === "1") actual();
      else return;
      ev.preventDefault();
    });
    // A node or edge reached with Tab scrolls into the view.
    svg.addEventListener("focusin", (ev) => {
      const b = ev.target.getBBox ? ev.target.getBBox() : null;
      if (!b) return;
      const { w, h } = size();
      const vw = w / view.s, vh = h / view.s;
      if (b.x < view.x || b.x + b.width > view.x + vw) view.x = b.x + b.width / 2 - vw / 2;
      if (b.y < view.y || b.y + b.height > view.y + vh) view.y = b.y + b.height / 2 - vh / 2;
      apply();
    });
    viewport.addEventListener("scroll", () => { viewport.scrollLeft = 0; viewport.scrollTop = 0; });
    document.getElementById("map-zoom-in").addEventListener("click", () => zoom(FACTOR));
    document.getElementById("map-zoom-out").addEventListener("click", () => zoom(1 / FACTOR));
    document.getElementById("map-fit").addEventListener("click", fit);
    document.getElementById("map-actual").addEventListener("click", actual);
    window.addEventListener("resize", apply);
    return { zoom, fit, actual, pan };
  }

  document.addEventListener("DOMContentLoaded", () => {
    const svg = document.getElementById("service-map");
    const viewport = document.getElementById("map-viewport");
    if (!svg || !viewport) return;
    window.sidetraceMap = Object.assign(window.sidetraceMap || {}, { view: mapView(svg, viewport) });
  });
})();
