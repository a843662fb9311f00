// Device facts and the small-window warning, shared by the rater pages. The warning can
// be dismissed: a rater who cannot enlarge the window should not lose screen rows to it.
(function () {
  "use strict";
  const MIN_WIDTH = 1280;
  const MIN_HEIGHT = 720;
  const DISMISSED_KEY = "mosaic-viewport-warning-dismissed";

  function dismissed() {
    try {
      return window.sessionStorage.getItem(DISMISSED_KEY) === "1";
    } catch (error) {
      return dismissedHere;
    }
  }
  let dismissedHere = false;

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
    const large = window.innerWidth >= MIN_WIDTH && window.innerHeight >= MIN_HEIGHT;
    warning.hidden = large || dismissed() || dismissedHere;
  }

  function dismiss() {
    dismissedHere = true;
    try {
      window.sessionStorage.setItem(DISMISSED_KEY, "1");
    } catch (error) {
      // no storage: hidden until the next page
    }
    updateWarning();
  }

  function bindDismiss() {
    const button = document.getElementById("viewport-warning-dismiss");
    if (button && !button.dataset.bound) {
      button.dataset.bound = "yes";
      button.addEventListener("click", () => {
        button.blur();
        dismiss();
      });
    }
  }

  window.addEventListener("resize", updateWarning);
  document.addEventListener("DOMContentLoaded", () => {
    bindDismiss();
    updateWarning();
  });
  bindDismiss();
  updateWarning();
  window.MosaicDevice = device;
})();
