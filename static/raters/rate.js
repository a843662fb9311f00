// The rating screen: two synchronised OpenSeadragon viewers per trial, votes by key or
// button, the next pair preloaded in a hidden stage so the switch is immediate.
//
// A vote is written to localStorage before it is sent and removed only once the server
// has answered it; a reload resends it (the API is idempotent), so no vote is lost.
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("mosaic-config").textContent);
  const csrfToken = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const stagesEl = document.getElementById("stages");
  const levelButtons = Array.from(document.querySelectorAll("#levels button.level"));
  const statusEl = document.getElementById("status");
  const progressEl = document.getElementById("progress");
  const phaseEl = document.getElementById("phase");
  const feedbackEl = document.getElementById("feedback");
  const dpr = window.devicePixelRatio || 1;

  const state = {
    current: null, // Stage on screen
    upcoming: null, // Stage being preloaded (hidden)
    zoom: "fit",
    mode: "side", // "side" or "toggle"
    front: "reference", // pane shown in toggle mode
    accepting: false,
    shownAt: 0,
    onContinue: null,
  };
  window.mosaic = state; // read by the browser test and the viewer benchmark

  // ---------------------------------------------------------------- API
  async function api(method, url, body) {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    return { status: response.status, data };
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ---------------------------------------------------------------- viewers
  function tileSource(pane) {
    // The pyramid if it is built, else the whole file: correct either way, only slower.
    return pane.tiles || { type: "image", url: pane.url, buildPyramid: false };
  }

  function smoothingFor(viewer) {
    // Smooth when downscaling (fit); crisp pixels from 100% up, where raters inspect them.
    const item = viewer.world.getItemAt(0);
    if (!item) return;
    const imageZoom = item.viewportToImageZoom(viewer.viewport.getZoom(false)) * dpr;
    viewer.drawer.setImageSmoothingEnabled(imageZoom < 0.999);
  }

  function skipPreviewLevels(viewer) {
    // OpenSeadragon would fetch every coarser level as a blurry preview before the level
    // the fit view needs. The buttons wait for the full pair anyway, so those levels only
    // cost bytes: start the pyramid at the level drawn at fit (zooming in still uses the
    // finer levels; zooming out below fit draws this level smaller).
    const item = viewer.world.getItemAt(0);
    const source = item && item.source;
    if (!source || !(source.maxLevel > 0)) return;
    for (let level = source.maxLevel; level > (source.minLevel || 0); level--) {
      const ratio = viewer.viewport.deltaPixelsFromPointsNoRotate(source.getPixelRatio(level), true).x;
      if (ratio >= viewer.minPixelRatio) {
        source.minLevel = level; // the most detailed level OpenSeadragon draws at fit
        break;
      }
    }
  }

  class Stage {
    constructor(trial) {
      this.trial = trial;
      this.el = document.createElement("div");
      this.el.className = "stage hidden " + (state.mode === "toggle" ? "toggle" : "side");
      this.el.dataset.front = state.front;
      this.viewers = [];
      this.loaded = new Set();
      this.readyCallbacks = [];
      this.startedAt = performance.now();
      this.readyAt = null;
      stagesEl.appendChild(this.el);
      // Every pane is laid out before any viewer exists: a viewer created while its pane
      // is still alone in the stage would fit the image to the whole stage width and,
      // with preserveImageSizeOnResize, keep that size when the next pane halves it, so
      // "fit" would show the image smaller than its pane.
      const holders = trial.panes.map((pane) => this.addFigure(pane));
      trial.panes.forEach((pane, index) => this.addViewer(pane, holders[index]));
      this.syncViewers();
    }

    addFigure(pane) {
      const figure = document.createElement("figure");
      figure.className = "pane";
      figure.dataset.role = pane.role;
      const caption = document.createElement("figcaption");
      caption.textContent = pane.label;
      const holder = document.createElement("div");
      holder.className = "viewer";
      figure.append(caption, holder);
      this.el.appendChild(figure);
      return holder;
    }

    addViewer(pane, holder) {
      const viewer = OpenSeadragon({
        element: holder,
        tileSources: tileSource(pane),
        drawer: "canvas",
        showNavigationControl: false,
        keyboardNavEnabled: false,
        maxZoomPixelRatio: 8,
        minZoomImageRatio: 0.5,
        visibilityRatio: 0.5,
        animationTime: 0.25,
        blendTime: 0,
        // Fetch the level the view needs first instead of every coarser level on the way:
        // buttons wait for the full pair anyway, so blurry previews only cost bytes.
        immediateRender: true,
        preserveImageSizeOnResize: true,
        gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true },
      });
      viewer.addHandler("open-failed", () => {
        if (pane.tiles && viewer.__fellBack !== true) {
          viewer.__fellBack = true;
          viewer.open({ type: "image", url: pane.url, buildPyramid: false });
        }
      });
      viewer.addHandler("open", () => {
        // A new pair always starts at fit (display() resets the zoom), so a preloaded
        // pair fetches exactly the tiles it will show first.
        this.applyZoom("fit", true);
        skipPreviewLevels(viewer);
        smoothingFor(viewer);
      });
      viewer.addHandler("fully-loaded-change", (event) => {
        if (event.fullyLoaded) this.loaded.add(viewer);
        this.checkReady();
      });
      viewer.addHandler("zoom", () => smoothingFor(viewer));
      viewer.addHandler("resize", () => {
        // OpenSeadragon restores the previous image size (preserveImageSizeOnResize) after
        // this event, so refit on the next frame: "fit" must still fit after a window
        // resize or a switch between side by side and toggle.
        if (state.zoom !== "fit") return;
        requestAnimationFrame(() => {
          if (state.zoom === "fit") viewer.viewport.goHome(true);
        });
      });
      this.viewers.push(viewer);
    }

    syncViewers() {
      // Copy the target zoom and centre of the viewer the rater moves to the others; both
      // then animate with the same spring, so they stay in step.
      let leading = null;
      for (const source of this.viewers) {
        const follow = () => {
          if (leading && leading !== source) return;
          // Zoom is relative to the container width: while a layout change has resized one
          // viewer but not yet the other, copying it would shrink the other image. Each
          // viewer keeps its own image size through the resize, so they meet again after.
          const size = source.viewport.getContainerSize();
          const resizing = this.viewers.some((other) => !other.viewport.getContainerSize().equals(size));
          if (resizing) return;
          leading = source;
          for (const other of this.viewers) {
            if (other === source) continue;
            other.viewport.zoomTo(source.viewport.getZoom(false), null, false);
            other.viewport.panTo(source.viewport.getCenter(false), false);
          }
          leading = null;
        };
        source.addHandler("zoom", follow);
        source.addHandler("pan", follow);
      }
    }

    checkReady() {
      if (this.readyAt !== null) return;
      if (this.viewers.every((viewer) => this.loaded.has(viewer) && viewer.world.getItemCount() > 0)) {
        this.readyAt = performance.now();
        for (const callback of this.readyCallbacks.splice(0)) callback();
      }
    }

    whenReady(callback) {
      if (this.readyAt !== null) callback();
      else this.readyCallbacks.push(callback);
    }

    applyZoom(name, immediately) {
      for (const viewer of this.viewers) {
        const item = viewer.world.getItemAt(0);
        if (!item) continue;
        if (name === "fit") viewer.viewport.goHome(immediately);
        else {
          const factor = name === "200" ? 2 : 1;
          // One image pixel per device pixel at 100%: the pixels are the original's.
          viewer.viewport.zoomTo(item.imageToViewportZoom(factor / dpr), null, immediately);
        }
      }
    }

    show() {
      this.el.classList.remove("hidden");
    }

    setMode(mode, front) {
      this.el.classList.toggle("toggle", mode === "toggle");
      this.el.classList.toggle("side", mode !== "toggle");
      this.el.dataset.front = front;
    }

    destroy() {
      for (const viewer of this.viewers) viewer.destroy();
      this.el.remove();
    }
  }

  // ---------------------------------------------------------------- screen state
  function setAccepting(on) {
    state.accepting = on;
    for (const button of levelButtons) button.disabled = !on;
  }

  function setStatus(text) {
    statusEl.textContent = text;
  }

  function showProgress(trial) {
    progressEl.textContent = `${trial.number} / ${trial.total}`;
    phaseEl.textContent = trial.phase === "training" ? "Practice — not counted" : "";
    document.body.classList.toggle("training", trial.phase === "training");
  }

  function display(stage) {
    if (state.current && state.current !== stage) state.current.destroy();
    state.current = stage;
    stage.setMode(state.mode, state.front);
    stage.show();
    showProgress(stage.trial);
    state.zoom = "fit";
    stage.applyZoom("fit", true);
    setAccepting(false);
    setStatus("Loading images…");
    stage.whenReady(() => {
      if (state.current !== stage) return;
      state.shownAt = performance.now();
      setAccepting(true);
      setStatus("");
      preload();
    });
  }

  let pendingUpcoming = null;
  function preload() {
    // Only once the pair on screen is complete: it has the bandwidth first.
    const trial = pendingUpcoming;
    if (!trial || !state.current || state.current.readyAt === null) return;
    if (state.upcoming && state.upcoming.trial.token === trial.token) return;
    if (state.upcoming) state.upcoming.destroy();
    state.upcoming = new Stage(trial);
  }

  async function loadNext() {
    let result;
    for (let attempt = 0; ; attempt++) {
      try {
        result = await api("GET", config.urls.next);
        if (result.status === 200) break;
      } catch (error) {
        // network trouble: retry below
      }
      setStatus("Connection problem — retrying…");
      await sleep(Math.min(8000, 500 * 2 ** attempt));
    }
    const { trial, upcoming, session } = result.data;
    if (!trial) {
      window.location.assign(session.completion_page || config.urls.done);
      return;
    }
    pendingUpcoming = upcoming;
    if (state.current && state.current.trial.token === trial.token) {
      preload();
      return;
    }
    let stage = null;
    if (state.upcoming && state.upcoming.trial.token === trial.token) {
      stage = state.upcoming;
      state.upcoming = null;
    } else {
      stage = new Stage(trial);
    }
    display(stage);
  }

  // ---------------------------------------------------------------- votes
  function pendingVote() {
    try {
      return JSON.parse(window.localStorage.getItem(config.storageKey) || "null");
    } catch (error) {
      return null;
    }
  }

  function storePending(vote) {
    try {
      if (vote) window.localStorage.setItem(config.storageKey, JSON.stringify(vote));
      else window.localStorage.removeItem(config.storageKey);
    } catch (error) {
      // Private mode without storage: the in-memory retry loop still protects the vote.
    }
  }

  async function send(vote) {
    const url = config.urls.rating.replace("TRIAL", encodeURIComponent(vote.trial));
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await api("POST", url, { score: vote.score, response_ms: vote.response_ms });
        if (result.status < 500 && result.status !== 429) {
          storePending(null);
          return result;
        }
      } catch (error) {
        // network trouble: retry below
      }
      setStatus("Saving your answer — retrying…");
      await sleep(Math.min(8000, 500 * 2 ** attempt));
    }
  }

  function showFeedback(feedback, score) {
    const chosen = config.levels.find((level) => level.score === score);
    const expected = feedback.expected.map((level) => `${level.score} “${level.label}”`).join(" or ");
    document.getElementById("feedback-title").textContent = feedback.ok ? "Well judged" : "Not quite";
    document.getElementById("feedback-text").textContent =
      `You chose ${score} “${chosen ? chosen.label : ""}”. Expected: ${expected}.`;
    document.getElementById("feedback-hint").textContent = feedback.hint;
    feedbackEl.hidden = false;
    feedbackEl.dataset.ok = feedback.ok ? "yes" : "no";
    return new Promise((resolve) => {
      state.onContinue = () => {
        feedbackEl.hidden = true;
        state.onContinue = null;
        resolve();
      };
    });
  }

  async function vote(score) {
    if (!state.accepting || !state.current) return;
    setAccepting(false);
    const stage = state.current;
    const ballot = {
      trial: stage.trial.token,
      score,
      response_ms: Math.max(0, Math.round(performance.now() - state.shownAt)),
    };
    storePending(ballot);
    setStatus("Saving…");
    const result = await send(ballot);
    if (result.status === 400 || result.status === 403 || result.status === 404) {
      setStatus((result.data && (result.data.detail || JSON.stringify(result.data))) || "Error");
      setAccepting(true);
      return;
    }
    setStatus("");
    if (result.data && result.data.feedback) await showFeedback(result.data.feedback, score);
    // The preloaded pair goes up at once; the server then confirms it is the next trial.
    if (state.upcoming && pendingUpcoming && state.upcoming.trial.token === pendingUpcoming.token) {
      const stage2 = state.upcoming;
      state.upcoming = null;
      pendingUpcoming = null;
      display(stage2);
    }
    await loadNext();
  }

  // ---------------------------------------------------------------- controls
  function setZoom(name) {
    state.zoom = name;
    if (state.current) state.current.applyZoom(name, false);
  }

  function setMode(mode, front) {
    state.mode = mode;
    state.front = front;
    for (const stage of [state.current, state.upcoming]) if (stage) stage.setMode(mode, front);
  }

  function toggle() {
    if (config.protocol === "single") return;
    if (state.mode !== "toggle") setMode("toggle", "result");
    else setMode("toggle", state.front === "result" ? "reference" : "result");
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.altKey || event.metaKey) return;
    if (state.onContinue) {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        state.onContinue();
      }
      return;
    }
    const digit = Number.parseInt(event.key, 10);
    if (!Number.isNaN(digit) && digit >= 1 && digit <= levelButtons.length) {
      event.preventDefault();
      vote(Number(levelButtons[digit - 1].dataset.score));
      return;
    }
    const key = event.key.toLowerCase();
    if (key === " ") {
      event.preventDefault();
      toggle();
    } else if (key === "s") setMode("side", state.front);
    else if (key === "f") setZoom("fit");
    else if (key === "g") setZoom("100");
    else if (key === "h") setZoom("200");
  });

  for (const button of levelButtons) {
    button.addEventListener("click", () => {
      button.blur();
      vote(Number(button.dataset.score));
    });
  }
  for (const button of document.querySelectorAll("[data-zoom]")) {
    button.addEventListener("click", () => {
      button.blur();
      setZoom(button.dataset.zoom);
    });
  }
  for (const button of document.querySelectorAll("[data-mode]")) {
    button.addEventListener("click", () => {
      button.blur();
      if (button.dataset.mode === "toggle") toggle();
      else setMode("side", state.front);
    });
  }
  document.getElementById("feedback-continue").addEventListener("click", () => {
    if (state.onContinue) state.onContinue();
  });

  // ---------------------------------------------------------------- start
  async function start() {
    api("POST", config.urls.device, window.MosaicDevice()).catch(() => {});
    const pending = pendingVote();
    if (pending) {
      setStatus("Saving your last answer…");
      await send(pending);
    }
    await loadNext();
  }

  start();
})();
