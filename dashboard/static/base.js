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

  // Text typed as times are shown ("YYYY-MM-DD HH:MM[:SS[.mmm]]", optional " UTC", "Z" or
  // "+05:30") -> ms since epoch; a time without a zone is read in the chosen zone. NaN if
  // the text is not in that shape (the server then reports what it expected).
  const TYPED = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?\s*(UTC|Z|[+-]\d{2}:?\d{2})?$/i;
  function parseTime(text) {
    const m = TYPED.exec(String(text).trim());
    if (!m) return NaN;
    const f = [+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0), +(m[6] || 0), +((m[7] || "0").padEnd(3, "0"))];
    const zone = (m[8] || "").toUpperCase();
    if (zone === "UTC" || zone === "Z" || (!zone && utc())) return Date.UTC(...f);
    if (!zone) return new Date(...f).getTime();
    const sign = zone[0] === "-" ? -1 : 1;
    const digits = zone.slice(1).replace(":", "");
    return Date.UTC(...f) - sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60000;
  }

  // ms since epoch -> "2026-01-01T10:00:00Z": what links and URLs carry, readable by people.
  function isoUtc(ms) { return new Date(ms).toISOString().replace(/\.000Z$/, "Z"); }

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
    document.querySelectorAll(".tz-name").forEach((el) => { el.textContent = utc() ? "UTC" : "local time"; });
  }

  // Time inputs (input.time-input) show the range in the chosen zone unless the user typed
  // there (or the server returned what was typed, with no data-range-ns).
  function fillTimeInputs() {
    document.querySelectorAll("input.time-input").forEach((input) => {
      if (input.dataset.edited || !input.dataset.rangeNs) return;
      input.value = formatTime(Number(input.dataset.rangeNs) / 1e6, false);
    });
  }
  document.addEventListener("input", (ev) => {
    if (ev.target.matches && ev.target.matches("input.time-input")) ev.target.dataset.edited = "1";
  });
  // Before any form's own handler: a hidden time input is dropped; a typed time is sent as
  // UTC ISO-8601 (what URLs carry); anything else goes as typed, for the server to refuse.
  document.addEventListener("submit", (ev) => {
    ev.target.querySelectorAll("input.time-input").forEach((input) => {
      if (input.closest("[hidden]")) { input.value = ""; return; }
      const ms = parseTime(input.value);
      if (!Number.isNaN(ms)) input.value = isoUtc(ms);
    });
  }, true);
  listeners.push(fillTimeInputs);

  // Buttons with data-copy put that text on the clipboard (the textarea fallback serves
  // pages opened over plain HTTP from another host, where navigator.clipboard is missing).
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    return Promise.resolve();
  }
  document.addEventListener("click", (ev) => {
    const button = ev.target.closest && ev.target.closest("button[data-copy]");
    if (!button) return;
    copyText(button.dataset.copy).then(() => {
      button.classList.add("copied");
      button.textContent = "Copied";
    });
  });

  document.addEventListener("DOMContentLoaded", () => {
    updateToggle();
    renderTimes(document);
    fillTimeInputs();
    const b = document.getElementById("tz-toggle");
    if (b) b.addEventListener("click", () => {
      localStorage.setItem(KEY, utc() ? "local" : "utc");
      updateToggle();
      renderTimes(document);
      listeners.forEach((cb) => cb());
    });
  });

  window.sidetrace = { formatTime, parseTime, isoUtc, formatDuration, renderTimes, onTimeZoneChange, isUTC: utc };
})();
