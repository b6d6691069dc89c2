// Search form: absolute range toggle, absolute times typed in the chosen zone, no empty params.
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
    if (lookback.value !== "custom") {
      document.getElementById("f-start").value = "";
      document.getElementById("f-end").value = "";
    }
    // Leave empty fields out so shared URLs stay short.
    form.querySelectorAll("input, select, textarea").forEach((el) => {
      if (el.name && !el.value) el.removeAttribute("name");
    });
  });
})();
