// Prolific expects a finished participant to be sent to its completion page: go there
// after a few seconds (the code stays on screen meanwhile, and the link works by hand).
(function () {
  "use strict";
  const link = document.getElementById("return-link");
  if (!link || !link.dataset.autoRedirect) return;
  let seconds = Number(link.dataset.autoRedirect) || 5;
  const note = document.getElementById("redirect-note");
  const tick = () => {
    if (note) note.textContent = `You will be taken back to Prolific in ${seconds} s.`;
    if (seconds <= 0) {
      window.location.assign(link.href);
      return;
    }
    seconds -= 1;
    setTimeout(tick, 1000);
  };
  tick();
})();
