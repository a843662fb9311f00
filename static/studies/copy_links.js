// The study page's rater links: one click copies a link, ready to paste into the platform.
(function () {
  "use strict";

  async function copy(input) {
    try {
      await navigator.clipboard.writeText(input.value);
      return true;
    } catch (error) {
      // No clipboard API (a page served over plain HTTP to another host): select and copy.
      input.focus();
      input.select();
      return document.execCommand && document.execCommand("copy");
    }
  }

  function bind() {
    for (const button of document.querySelectorAll("button.copy-link")) {
      button.addEventListener("click", async () => {
        const input = document.getElementById(button.dataset.copy);
        const done = await copy(input);
        button.textContent = done ? "Copied" : "Select and copy by hand";
        setTimeout(() => {
          button.textContent = "Copy";
        }, 2000);
      });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", bind);
  else bind();
})();
