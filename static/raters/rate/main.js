// The rating screen: two synchronised OpenSeadragon viewers per trial, votes by key or
// button, the next pair preloaded in a hidden stage so the switch is immediate.
//
// A vote is written to localStorage before it is sent and removed only once the server
// has answered it; a reload resends it (the API is idempotent), so no vote is lost.
//
// The next pair is ready when the rater votes: its tiles load (at the zoom it opens at)
// as soon as the pair on screen is complete, and a vote on a rated pair puts it up at
// once, while the vote is saved, then loads the pair after it. A practice pair
// waits for the answer, which carries its feedback. If the server refuses the vote, the
// pair it was for comes back.
import { api, withRetry } from "./api.js";
import { bindKeys } from "./keys.js";
import { Stage, imageScale } from "./stage.js";

const config = JSON.parse(document.getElementById("mosaic-config").textContent);
const stagesEl = document.getElementById("stages");
const levelButtons = Array.from(document.querySelectorAll("#levels button.level"));
const statusEl = document.getElementById("status");
const progressEl = document.getElementById("progress");
const phaseEl = document.getElementById("phase");
const feedbackEl = document.getElementById("feedback");
const helpEl = document.getElementById("help");
const viewStateEl = document.getElementById("view-state");
const keepZoomEl = document.getElementById("keep-zoom");
const KEEP_ZOOM_KEY = "mosaic-keep-zoom";

const state = {
  current: null, // Stage on screen
  upcoming: null, // Stage being preloaded (hidden)
  zoom: "fit", // "fit", "100", "200" or "free" (wheel, double click, pinch)
  mode: "side", // "side" or "toggle"
  front: "reference", // pane shown in toggle mode
  keepZoom: false, // the next pair opens at the zoom and place of this one
  keptView: null,
  accepting: false,
  saving: false, // a vote is on its way: the buttons wait for its answer
  shownAt: 0,
  onContinue: null,
  // What a newly opened pair starts at.
  initialView: () => (state.keepZoom && state.keptView ? state.keptView : { name: "fit" }),
};
window.mosaic = state; // read by the browser tests and the viewer benchmark

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
  phaseEl.replaceChildren();
  if (trial.phase === "training") {
    const note = document.createElement("span");
    note.className = "phase-note";
    note.textContent = " — not counted";
    phaseEl.append("Practice", note);
  }
  document.body.classList.toggle("training", trial.phase === "training");
}

function showViewState() {
  // The toolbar says which zoom and mode are active, in words and on the buttons.
  const viewer = state.current && state.current.viewers[0];
  const scale = viewer ? imageScale(viewer, false) : null;
  const percent = scale === null ? "" : `${Math.round(scale * 100)}%`;
  const zoomText = { fit: `Fit (${percent})`, 100: "100%", 200: "200%" }[state.zoom] || percent;
  let modeText = "side by side";
  if (state.mode === "toggle") {
    const front = state.current && state.current.trial.panes.find((pane) => pane.role === state.front);
    modeText = `toggle: ${front ? front.label : state.front}`;
  }
  viewStateEl.textContent = `${zoomText} · ${modeText}`;
  for (const button of document.querySelectorAll("[data-zoom]")) {
    button.setAttribute("aria-pressed", String(button.dataset.zoom === state.zoom));
  }
  for (const button of document.querySelectorAll("[data-mode]")) {
    button.setAttribute("aria-pressed", String(button.dataset.mode === state.mode));
  }
}

function watch(stage) {
  stage.onViewChange = () => {
    if (stage === state.current) showViewState();
  };
  stage.onFreeZoom = () => {
    if (stage === state.current) state.zoom = "free";
  };
  return stage;
}

function newStage(trial) {
  return watch(new Stage(trial, stagesEl, state));
}

function unlockIfReady() {
  setAccepting(!state.saving && state.current !== null && state.current.readyAt !== null);
}

// `keepPrevious`: the pair on screen is hidden, not destroyed (its vote is unconfirmed).
function display(stage, { keepPrevious = false } = {}) {
  const previous = state.current;
  if (previous && previous !== stage) {
    if (keepPrevious) previous.hide();
    else previous.destroy();
  }
  state.current = stage;
  stage.setMode(state.mode, state.front);
  stage.show();
  showProgress(stage.trial);
  const view = state.initialView();
  state.zoom = view.name;
  stage.applyView(view, true);
  showViewState();
  setAccepting(false);
  setStatus("Loading images…");
  stage.whenReady(() => {
    if (state.current !== stage) return;
    state.shownAt = performance.now();
    unlockIfReady();
    if (!state.saving) setStatus("");
    showViewState();
    preload();
  });
}

let pendingUpcoming = null; // the trial after the one on screen, as the server last said
let pendingLater = null; // and the one after that
function preload() {
  // Only once the pair on screen is complete: it has the bandwidth first. And not while
  // a vote is on its way: the browser's few connections would queue it behind tiles.
  const trial = pendingUpcoming;
  if (!trial || state.saving || !state.current || state.current.readyAt === null) return;
  if (state.upcoming && state.upcoming.trial.token === trial.token) return;
  if (state.upcoming) state.upcoming.destroy();
  if (state.keepZoom) state.keptView = state.current.view();
  state.upcoming = newStage(trial);
}

async function loadNext() {
  const result = await withRetry(() => api("GET", config.urls.next), {
    accept: (answer) => answer.status === 200,
    onRetry: () => setStatus("Connection problem — retrying…"),
  });
  const { trial, upcoming, later, session } = result.data;
  if (!trial) {
    window.location.assign(session.completion_page || config.urls.done);
    return;
  }
  pendingUpcoming = upcoming;
  pendingLater = later || null;
  if (state.current && state.current.trial.token === trial.token) {
    preload();
    return;
  }
  let stage = null;
  if (state.upcoming && state.upcoming.trial.token === trial.token) {
    stage = state.upcoming;
    state.upcoming = null;
  } else {
    stage = newStage(trial);
  }
  display(stage);
}

// The stage of the trial the server named next, preloaded or (not started yet) now.
function takeUpcoming() {
  if (!pendingUpcoming) return null;
  let stage = state.upcoming;
  if (stage && stage.trial.token === pendingUpcoming.token) state.upcoming = null;
  else stage = newStage(pendingUpcoming);
  return stage;
}

// Put up the next pair before the vote on `stage` is answered, and load the one after.
function advanceEarly() {
  const next = takeUpcoming();
  if (!next) return null;
  pendingUpcoming = pendingLater;
  pendingLater = null;
  display(next, { keepPrevious: true });
  return next;
}

// The vote on `stage` was refused: it comes back, the pair shown early waits again.
function restore(stage, shown) {
  if (state.upcoming) state.upcoming.destroy();
  pendingLater = pendingUpcoming;
  pendingUpcoming = shown.trial;
  shown.hide();
  state.upcoming = shown;
  state.current = stage;
  stage.show();
  showProgress(stage.trial);
  showViewState();
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
  const result = await withRetry(() => api("POST", url, { score: vote.score, response_ms: vote.response_ms }), {
    // An answer the server gave for good: the vote stored, or refused with a reason.
    accept: (answer) => answer.status < 500 && answer.status !== 429,
    onRetry: () => setStatus("Saving your answer — retrying…"),
  });
  storePending(null);
  return result;
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
  if (!state.accepting || !state.current || !helpEl.hidden) return;
  setAccepting(false);
  const stage = state.current;
  if (state.keepZoom) state.keptView = stage.view();
  const ballot = {
    trial: stage.trial.token,
    score,
    response_ms: Math.max(0, Math.round(performance.now() - state.shownAt)),
  };
  storePending(ballot);
  state.saving = true;
  // A rated pair has no feedback to wait for: the next pair goes up now.
  const early = stage.trial.phase === "training" ? null : advanceEarly();
  if (!early) setStatus("Saving…");
  const result = await send(ballot);
  state.saving = false;
  if (result.status === 400 || result.status === 403 || result.status === 404) {
    if (early) restore(stage, early);
    setStatus((result.data && (result.data.detail || JSON.stringify(result.data))) || "Error");
    setAccepting(true);
    return;
  }
  if (early) {
    stage.destroy();
    if (state.current && state.current.readyAt !== null) setStatus("");
    unlockIfReady();
    preload();
  } else {
    setStatus("");
    if (result.data && result.data.feedback) await showFeedback(result.data.feedback, score);
    // The preloaded pair goes up at once; the server then confirms it is the next trial.
    const next = state.upcoming;
    if (next && pendingUpcoming && next.trial.token === pendingUpcoming.token) {
      state.upcoming = null;
      pendingUpcoming = pendingLater;
      pendingLater = null;
      display(next);
    }
  }
  await loadNext();
}

// ---------------------------------------------------------------- controls
function setZoom(name) {
  state.zoom = name;
  if (state.current) state.current.applyView({ name }, false);
  showViewState();
}

function setMode(mode, front) {
  state.mode = mode;
  state.front = front;
  for (const stage of [state.current, state.upcoming]) if (stage) stage.setMode(mode, front);
  showViewState();
}

function toggle() {
  if (config.protocol === "single") return;
  if (state.mode !== "toggle") setMode("toggle", "result");
  else setMode("toggle", state.front === "result" ? "reference" : "result");
}

function setKeepZoom(on) {
  state.keepZoom = on;
  keepZoomEl.checked = on;
  state.keptView = on && state.current ? state.current.view() : null;
  try {
    window.sessionStorage.setItem(KEEP_ZOOM_KEY, on ? "1" : "");
  } catch (error) {
    // no storage: the choice lasts until a reload
  }
}

function toggleHelp() {
  helpEl.hidden = !helpEl.hidden;
  if (!helpEl.hidden) document.getElementById("help-close").focus();
}

bindKeys({
  levelCount: levelButtons.length,
  isBlocked: () => (state.onContinue ? "feedback" : helpEl.hidden ? null : "help"),
  onContinue: () => state.onContinue && state.onContinue(),
  actions: {
    vote: (digit) => vote(Number(levelButtons[digit - 1].dataset.score)),
    toggle,
    side: () => setMode("side", state.front),
    zoom: setZoom,
    keepZoom: () => setKeepZoom(!state.keepZoom),
    help: toggleHelp,
  },
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
keepZoomEl.addEventListener("change", () => {
  keepZoomEl.blur(); // Space must flip the images, not this box
  setKeepZoom(keepZoomEl.checked);
});
for (const button of document.querySelectorAll("[data-help]")) {
  button.addEventListener("click", () => {
    button.blur();
    toggleHelp();
  });
}
document.getElementById("feedback-continue").addEventListener("click", () => {
  if (state.onContinue) state.onContinue();
});

// ---------------------------------------------------------------- start
async function start() {
  try {
    setKeepZoom(window.sessionStorage.getItem(KEEP_ZOOM_KEY) === "1");
  } catch (error) {
    setKeepZoom(false);
  }
  api("POST", config.urls.device, window.MosaicDevice()).catch(() => {});
  const pending = pendingVote();
  if (pending) {
    setStatus("Saving your last answer…");
    await send(pending);
  }
  await loadNext();
}

start();
