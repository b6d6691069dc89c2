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
  form.addEventListener("submit", () => {
    form.querySelectorAll("input, select, textarea").forEach((el) => {
      if (el.name && !el.value) el.removeAttribute("name");
    });
  });
})();
