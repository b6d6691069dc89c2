// "Keep this trace": pins the trace so retention tiering keeps it past the hot window.
// A separate file (strict CSP: no inline scripts); the button carries the trace id.
(function () {
  "use strict";
  const button = document.getElementById("pin-trace");
  if (!button) return;
  const url = "/api/v1/traces/" + encodeURIComponent(button.dataset.traceId) + "/pin";

  function showPinned() {
    button.textContent = "Kept (pinned)";
    button.disabled = true;
    button.title = "retention tiering keeps this trace after the hot window";
  }

  fetch(url, { headers: { Accept: "application/json" } })
    .then((r) => (r.ok ? r.json() : null))
    .then((body) => {
      if (body && body.pinned) showPinned();
      const decision = body && body.decision;
      if (decision && decision.kept) {
        const state = document.getElementById("tier-state");
        if (state) state.textContent = "kept: " + decision.reasons.join(", ");
      }
    })
    .catch(() => {});

  button.addEventListener("click", () => {
    button.disabled = true;
    fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: "{}",
    })
      .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
      .then(({ ok, body }) => {
        if (ok) {
          showPinned();
        } else {
          button.disabled = false;
          button.title = (body && body.error) || "could not pin this trace";
        }
      })
      .catch(() => {
        button.disabled = false;
        button.title = "could not reach the dashboard";
      });
  });
})();
