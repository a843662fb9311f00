// Fill the consent form's device fields, so the session records the rater's screen.
(function () {
  "use strict";
  const form = document.getElementById("start-form");
  if (!form) return;
  function fill() {
    const facts = window.MosaicDevice();
    for (const [name, value] of Object.entries(facts)) {
      const input = form.elements.namedItem(name);
      if (input) input.value = value;
    }
  }
  fill();
  form.addEventListener("submit", fill);
})();
