// The rating screen's keyboard: digits vote, letters change the view. Modifier chords
// stay the browser's.

export function bindKeys({ levelCount, isBlocked, onContinue, actions }) {
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.altKey || event.metaKey) return;
    const key = event.key.toLowerCase();
    const blocker = isBlocked();
    if (blocker === "feedback") {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        onContinue();
      }
      return;
    }
    if (blocker === "help") {
      if (key === "escape" || key === "i") {
        event.preventDefault();
        actions.help();
      }
      return;
    }
    const digit = Number.parseInt(event.key, 10);
    if (!Number.isNaN(digit) && digit >= 1 && digit <= levelCount) {
      event.preventDefault();
      actions.vote(digit);
      return;
    }
    const action = {
      " ": actions.toggle,
      s: actions.side,
      f: () => actions.zoom("fit"),
      g: () => actions.zoom("100"),
      h: () => actions.zoom("200"),
      k: actions.keepZoom,
      i: actions.help,
    }[key];
    if (action) {
      event.preventDefault();
      action();
    }
  });
}
