// The rater API: JSON requests with the page's CSRF token, and the one retry helper that
// every request a rater cannot do without (the next pair, a vote) goes through.

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

export async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
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

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Call `request` until `accept(result)` holds: network errors and refused results are
// retried after 0.5 s, doubling up to 8 s, and `onRetry` is told before each wait.
export async function withRetry(request, { accept, onRetry }) {
  for (let attempt = 0; ; attempt++) {
    try {
      const result = await request();
      if (accept(result)) return result;
    } catch (error) {
      // network trouble: retried below
    }
    onRetry(attempt);
    await sleep(Math.min(8000, 500 * 2 ** attempt));
  }
}
