// Device facts and the small-window warning, shared by the rater pages.
(function () {
  "use strict";
  const MIN_WIDTH = 1280;
  const MIN_HEIGHT = 720;

  function device() {
    return {
      screen_width: Math.round(window.screen.width),
      screen_height: Math.round(window.screen.height),
      viewport_width: Math.round(window.innerWidth),
      viewport_height: Math.round(window.innerHeight),
      device_pixel_ratio: window.devicePixelRatio || 1,
      user_agent: navigator.userAgent.slice(0, 1000),
    };
  }

  function updateWarning() {
    const warning = document.getElementById("viewport-warning");
    if (!warning) return;
    warning.hidden = window.innerWidth >= MIN_WIDTH && window.innerHeight >= MIN_HEIGHT;
  }

  window.addEventListener("resize", updateWarning);
  document.addEventListener("DOMContentLoaded", updateWarning);
  updateWarning();
  window.MosaicDevice = device;
})();
