// Auto-refresh for the SLO and alert pages: reloads every N seconds (30, or ?refresh=N) while
// the box is ticked, the tab is visible and nothing has been typed into a form on the page.
"use strict";
(function () {
  const box = document.getElementById("auto-refresh");
  if (!box) return;
  const KEY = "sidetrace.autorefresh";
  const asked = Number(new URLSearchParams(window.location.search).get("refresh"));
  const seconds = asked >= 2 && asked <= 3600 ? asked : 30;
  document.getElementById("auto-refresh-seconds").textContent = String(seconds);
  box.checked = localStorage.getItem(KEY) !== "off";
  box.addEventListener("change", () => localStorage.setItem(KEY, box.checked ? "on" : "off"));
  let typed = false;
  document.addEventListener("input", (ev) => { if (ev.target !== box) typed = true; });
  window.setInterval(() => {
    if (box.checked && !typed && document.visibilityState === "visible") window.location.reload();
  }, seconds * 1000);
})();
