// One pair on screen (or preloaded, hidden): a pane per image, each with its OpenSeadragon
// viewer, zoom and pan kept in step.
//
// Pixel-exact 100%: OpenSeadragon sizes its canvas from the container's clientWidth
// (whole CSS pixels) times devicePixelRatio, and the browser stretches that canvas over
// the container's real box. A pane of 892.34 CSS px would show a canvas of 892 px
// stretched, every screen row blending two image rows. So each viewer's box is snapped
// inside its pane to whole device pixels (and whole CSS pixels), and at a whole zoom
// factor the image's corner is panned onto a device pixel.

const EPSILON = 1e-6;

function dpr() {
  return window.devicePixelRatio || 1;
}

function tileSource(pane) {
  // The pyramid if it is built, else the whole file: correct either way, only slower.
  return pane.tiles || { type: "image", url: pane.url, buildPyramid: false };
}

// The largest length of at most `device` device pixels that is a whole number of CSS
// pixels too (any length is, at a devicePixelRatio of 1 or 2), in CSS pixels.
function wholeCssLength(device, ratio) {
  for (let length = device; length > device - 16 && length > 0; length--) {
    const css = length / ratio;
    if (Math.abs(css - Math.round(css)) < EPSILON) return Math.round(css);
  }
  return Math.floor(device / ratio);
}

export function snapToDevicePixels(holder) {
  const rect = holder.parentElement.getBoundingClientRect();
  const ratio = dpr();
  const left = Math.ceil(rect.left * ratio - EPSILON);
  const top = Math.ceil(rect.top * ratio - EPSILON);
  const width = wholeCssLength(Math.floor(rect.right * ratio + EPSILON) - left, ratio);
  const height = wholeCssLength(Math.floor(rect.bottom * ratio + EPSILON) - top, ratio);
  holder.style.left = `${left / ratio - rect.left}px`;
  holder.style.top = `${top / ratio - rect.top}px`;
  holder.style.width = `${Math.max(width, 1)}px`;
  holder.style.height = `${Math.max(height, 1)}px`;
}

// Device pixels per image pixel in the viewer, as drawn now (or at its target).
export function imageScale(viewer, current = true) {
  const item = viewer.world.getItemAt(0);
  if (!item) return null;
  return item.viewportToImageZoom(viewer.viewport.getZoom(current)) * dpr();
}

function smoothingFor(viewer) {
  // Smooth when downscaling (fit); crisp pixels from 100% up, where raters inspect them.
  const scale = imageScale(viewer, false);
  if (scale !== null) viewer.drawer.setImageSmoothingEnabled(scale < 0.999);
}

function alignToDevicePixels(viewer) {
  // At a whole zoom factor, move the image by less than a device pixel so that its
  // corner, and with it every image pixel, lands on a device pixel.
  const item = viewer.world.getItemAt(0);
  const scale = imageScale(viewer, false);
  if (!item || scale === null || scale < 0.999 || Math.abs(scale - Math.round(scale)) > EPSILON) return;
  const ratio = dpr();
  const corner = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
  const dx = Math.round(corner.x * ratio) - corner.x * ratio;
  const dy = Math.round(corner.y * ratio) - corner.y * ratio;
  if (Math.abs(dx) < 1e-3 && Math.abs(dy) < 1e-3) return;
  const delta = viewer.viewport.deltaPointsFromPixels(new OpenSeadragon.Point(-dx / ratio, -dy / ratio), false);
  viewer.viewport.panBy(delta, true);
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

export class Stage {
  // `screen` is the shared screen state: mode, front, zoom, and initialView(), the view
  // a newly opened pair starts at.
  constructor(trial, container, screen) {
    this.trial = trial;
    this.screen = screen;
    this.el = document.createElement("div");
    this.el.className = "stage hidden " + (screen.mode === "toggle" ? "toggle" : "side");
    this.el.dataset.front = screen.front;
    this.viewers = [];
    this.holders = [];
    this.loaded = new Set();
    this.readyCallbacks = [];
    this.startedAt = performance.now();
    this.readyAt = null;
    container.appendChild(this.el);
    // Every pane is laid out (and its viewer box snapped) before any viewer exists: a
    // viewer created while its pane is still alone in the stage would fit the image to
    // the whole stage width and, with preserveImageSizeOnResize, keep that size when the
    // next pane halves it, so "fit" would show the image smaller than its pane.
    this.holders = trial.panes.map((pane) => this.addFigure(pane));
    this.snap();
    trial.panes.forEach((pane, index) => this.addViewer(pane, this.holders[index]));
    this.syncViewers();
    this.resizeObserver = new ResizeObserver(() => this.snap());
    for (const holder of this.holders) this.resizeObserver.observe(holder.parentElement);
  }

  snap() {
    for (const holder of this.holders) snapToDevicePixels(holder);
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
      // A preloaded pair opens at the view it will be shown at (fit, unless the rater
      // keeps the zoom), so it fetches exactly the tiles it will show first.
      this.applyView(this.screen.initialView(), true);
      skipPreviewLevels(viewer);
      smoothingFor(viewer);
    });
    viewer.addHandler("fully-loaded-change", (event) => {
      if (event.fullyLoaded) this.loaded.add(viewer);
      this.checkReady();
    });
    viewer.addHandler("zoom", () => {
      smoothingFor(viewer);
      if (this.onViewChange) this.onViewChange();
    });
    viewer.addHandler("animation-finish", () => alignToDevicePixels(viewer));
    // A wheel, a double click or a pinch leaves the named zoom levels.
    for (const name of ["canvas-scroll", "canvas-double-click", "canvas-pinch"]) {
      viewer.addHandler(name, () => {
        if (this.onFreeZoom) this.onFreeZoom();
      });
    }
    viewer.addHandler("resize", () => {
      // OpenSeadragon restores the previous image size (preserveImageSizeOnResize) after
      // this event, so refit on the next frame: "fit" must still fit after a window
      // resize or a switch between side by side and toggle.
      requestAnimationFrame(() => {
        if (this.screen.zoom === "fit") viewer.viewport.goHome(true);
        else alignToDevicePixels(viewer);
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

  // The view now: a named zoom level, or a free one as image pixels per device pixel,
  // with the centre (in image widths, the same for every image of a pair's size).
  view() {
    const viewer = this.viewers[0];
    if (!viewer || !viewer.world.getItemAt(0)) return { name: "fit" };
    return { name: this.screen.zoom, scale: imageScale(viewer, false), center: viewer.viewport.getCenter(false) };
  }

  applyView(view, immediately) {
    for (const viewer of this.viewers) {
      const item = viewer.world.getItemAt(0);
      if (!item) continue;
      if (view.name === "fit") {
        viewer.viewport.goHome(immediately);
        continue;
      }
      const scale = view.name === "100" ? 1 : view.name === "200" ? 2 : view.scale;
      // One image pixel per device pixel at 100%: the pixels are the original's.
      viewer.viewport.zoomTo(item.imageToViewportZoom(scale / dpr()), null, immediately);
      if (view.center) viewer.viewport.panTo(view.center, immediately);
      if (immediately) alignToDevicePixels(viewer);
    }
  }

  show() {
    this.el.classList.remove("hidden");
  }

  hide() {
    this.el.classList.add("hidden");
  }

  setMode(mode, front) {
    this.el.classList.toggle("toggle", mode === "toggle");
    this.el.classList.toggle("side", mode !== "toggle");
    this.el.dataset.front = front;
    this.snap();
  }

  destroy() {
    this.resizeObserver.disconnect();
    for (const viewer of this.viewers) viewer.destroy();
    this.el.remove();
  }
}
