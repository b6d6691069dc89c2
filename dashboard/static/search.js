// Search form: From/To shown only for an absolute range (base.js fills and reads them in the
// chosen zone); a new service clears the operation; empty params left out of shared URLs.
"use strict";
(function () {
  const form = document.getElementById("search-form");
  if (!form) return;
  const lookback = document.getElementById("f-lookback");
  const absolute = document.getElementById("absolute-range");
  lookback.addEventListener("change", () => { absolute.hidden = lookback.value !== "custom"; });
  const service = document.getElementById("f-service");
  service.addEventListener("change", () => { document.getElementById("f-operation").value = ""; });
  // "Add a filter": a suggested key (or key=value) appended as a line of the attribute box.
  const attrs = document.getElementById("f-attrs");
  const adder = document.getElementById("f-attr-add");
  function addFilter() {
    const text = adder.value.trim();
    if (!text) return;
    attrs.value = (attrs.value.trim() ? attrs.value.trim() + "\n" : "") + text;
    adder.value = "";
  }
  document.getElementById("f-attr-add-button").addEventListener("click", addFilter);
  adder.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") { ev.preventDefault(); addFilter(); }
  });

  form.addEventListener("submit", () => {
    form.querySelectorAll("input, select, textarea").forEach((el) => {
      if (el.name && !el.value) el.removeAttribute("name");
    });
  });

  // Drag across the scatter to narrow the search to that stretch of time.
  const svg = document.getElementById("scatter");
  if (!svg) return;
  const band = document.getElementById("zoom-band");
  const left = Number(svg.dataset.left), right = Number(svg.dataset.right);
  const t0 = Number(svg.dataset.startNs) / 1e6, t1 = Number(svg.dataset.endNs) / 1e6;
  let from = null;
  function plotX(ev) {
    const box = svg.getBoundingClientRect();
    const x = ((ev.clientX - box.left) / box.width) * svg.viewBox.baseVal.width;
    return Math.min(right, Math.max(left, x));
  }
  function drawBand(x) {
    band.setAttribute("x", Math.min(from, x));
    band.setAttribute("width", Math.abs(x - from));
  }
  svg.addEventListener("mousedown", (ev) => {
    if (ev.button !== 0 || ev.target.closest("a")) return;
    ev.preventDefault();
    from = plotX(ev);
    drawBand(from);
    band.classList.add("on");
  });
  svg.addEventListener("mousemove", (ev) => { if (from !== null) drawBand(plotX(ev)); });
  window.addEventListener("mouseup", (ev) => {
    if (from === null) return;
    const to = plotX(ev), a = Math.min(from, to), b = Math.max(from, to);
    from = null;
    if (b - a < 4) { band.classList.remove("on"); return; }
    const ms = (x) => Math.round(t0 + ((x - left) / (right - left)) * (t1 - t0));
    const q = new URLSearchParams(window.location.search);
    q.set("lookback", "custom");
    q.set("start", window.sidetrace.isoUtc(Math.floor(ms(a) / 1000) * 1000));
    q.set("end", window.sidetrace.isoUtc(Math.ceil(ms(b) / 1000) * 1000));
    window.location.search = q.toString();
  });
})();
