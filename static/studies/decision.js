// Reload the live decision figure on a study's admin page every few seconds. A file of
// its own: the Content-Security-Policy allows scripts from this site only, none inline.
document.addEventListener("DOMContentLoaded", () => {
  const image = document.getElementById("live-decision");
  if (!image) return;
  const seconds = Number(image.dataset.refreshSeconds) || 10;
  const base = image.getAttribute("src").split("?")[0];
  setInterval(() => {
    if (!document.hidden) image.src = `${base}?t=${Date.now()}`;
  }, seconds * 1000);
});
