// Search results: tick two traces and compare them (the earlier one is A, the baseline).
"use strict";
(function () {
  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("compare-picked");
    if (!button) return;
    const picks = Array.from(document.querySelectorAll("input.pick"));
    let order = [];
    picks.forEach((box) => box.addEventListener("change", () => {
      order = order.filter((b) => b !== box);
      if (box.checked) order.push(box);
      while (order.length > 2) order.shift().checked = false;
      button.disabled = order.length !== 2;
    }));
    button.addEventListener("click", () => {
      if (order.length !== 2) return;
      const [a, b] = order.map((box) => box.value);
      window.location.href = `/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`;
    });
  });
})();
