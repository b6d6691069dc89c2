// Shared page helpers: time rendering (local or UTC), durations, the trace-id box.
"use strict";
(function () {
  const KEY = "sidetrace.tz";
  const listeners = [];
  function utc() { return localStorage.getItem(KEY) === "utc"; }
  function pad(n, w) { return String(n).padStart(w || 2, "0"); }

  // ms since epoch -> "YYYY-MM-DD HH:MM:SS.mmm" in the chosen zone.
  function formatTime(ms, withMs) {
    const d = new Date(ms);
    const p = utc()
      ? [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()]
      : [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds(), d.getMilliseconds()];
    let s = `${p[0]}-${pad(p[1])}-${pad(p[2])} ${pad(p[3])}:${pad(p[4])}:${pad(p[5])}`;
    if (withMs !== false) s += "." + pad(p[6], 3);
    return s + (utc() ? " UTC" : "");
  }

  // nanoseconds -> short human duration.
  function formatDuration(ns) {
    ns = Number(ns);
    if (ns < 1e3) return ns + "ns";
    if (ns < 1e6) return (ns / 1e3).toFixed(ns < 1e4 ? 2 : 1) + "µs";
    if (ns < 1e9) return (ns / 1e6).toFixed(ns < 1e7 ? 2 : 1) + "ms";
    return (ns / 1e9).toFixed(2) + "s";
  }

  // Elements with data-ns / data-us / data-ms get their text from the timestamp.
  function renderTimes(root) {
    (root || document).querySelectorAll("[data-ns],[data-us],[data-ms]").forEach((el) => {
      let ms;
      if (el.dataset.ns) ms = Number(el.dataset.ns) / 1e6;
      else if (el.dataset.us) ms = Number(el.dataset.us) / 1e3;
      else ms = Number(el.dataset.ms);
      el.textContent = formatTime(ms, el.dataset.noMs === undefined);
      el.title = new Date(ms).toISOString();
    });
    (root || document).querySelectorAll("[data-duration-ns]").forEach((el) => {
      el.textContent = formatDuration(el.dataset.durationNs);
    });
  }

  function onTimeZoneChange(cb) { listeners.push(cb); }

  function updateToggle() {
    const b = document.getElementById("tz-toggle");
    if (b) b.textContent = utc() ? "UTC" : "Local";
  }

  document.addEventListener("DOMContentLoaded", () => {
    updateToggle();
    renderTimes(document);
    const b = document.getElementById("tz-toggle");
    if (b) b.addEventListener("click", () => {
      localStorage.setItem(KEY, utc() ? "local" : "utc");
      updateToggle();
      renderTimes(document);
      listeners.forEach((cb) => cb());
    });
  });

  window.sidetrace = { formatTime, formatDuration, renderTimes, onTimeZoneChange, isUTC: utc };
})();
