// Refresh a study's Jobs page in the admin from its staff-only JSON endpoint while any
// work runs. A file of its own: the Content-Security-Policy allows no inline script.
// Everything is written with textContent: file names and problems come from uploads.
(() => {
  "use strict";

  function element(tag, attributes = {}, text = "") {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text) node.textContent = text;
    return node;
  }

  function bar(done, total) {
    return element("progress", { max: String(total || 1), value: String(done) });
  }

  function errors(items, className) {
    const list = element("ul", { class: `errorlist ${className}` });
    for (const item of items) list.append(element("li", {}, item));
    return list;
  }

  function jobCard(job) {
    const card = element("div", { class: "job", id: `job-${job.id}`, "data-status": job.status });
    const title = element("h3", {}, `${job.kind}: ${job.source_name} `);
    title.append(element("span", { class: "job-status" }, job.status_label));
    const row = element("div");
    row.append(bar(job.done, job.total), " ",
      element("span", { class: "job-count" }, `files checked ${job.done} / ${job.total}`));
    card.append(title, row, element("p", { class: "job-message" }, job.message));
    if (job.warning) card.append(element("p", { class: "job-warning warning" }, job.warning));
    if (job.problems.length) card.append(errors(job.problems, "job-problems"));
    return card;
  }

  function work(id, label, counts) {
    const box = document.getElementById(id);
    const failed = counts.failed ? `, ${counts.failed} failed` : "";
    box.replaceChildren(`${label}: `, bar(counts.done, counts.total), " ",
      element("span", { class: "work-count" }, `${counts.done} / ${counts.total}${failed}`));
  }

  function runLine(run) {
    const line = element("div", { class: "work", id: `run-${run.number}`, "data-status": run.status });
    const state = run.stage ? `${run.status_label}: ${run.stage}` : run.status_label;
    line.append(`Run ${run.number}: `, bar(run.done, run.total), " ", element("span", { class: "work-count" }, state));
    if (run.error) line.append(errors([run.error], ""));
    return line;
  }

  function render(data) {
    const jobs = document.getElementById("jobs");
    if (data.jobs.length) jobs.replaceChildren(...data.jobs.map(jobCard));
    work("work-metrics", "PSNR/SSIM", data.metrics);
    work("work-tiles", "Tile pyramids", data.tiles);
    if (data.analysis.length) document.getElementById("analysis").replaceChildren(...data.analysis.map(runLine));
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("progress");
    if (!root) return;
    const interval = Number(root.dataset.refreshMs) || 1000;
    // Once nothing runs, a few more polls catch work queued by the last step (the tiles
    // and metrics an import queues when it commits), then the page stops asking.
    let idlePolls = root.dataset.active === "1" ? 0 : 2;
    async function poll() {
      try {
        const response = await fetch(root.dataset.url, { credentials: "same-origin", cache: "no-store" });
        if (!response.ok) return;
        const data = await response.json();
        render(data);
        root.dataset.active = data.active ? "1" : "0";
        idlePolls = data.active ? 0 : idlePolls + 1;
      } catch (error) {
        // The network or the server is briefly away: try again at the next tick.
      } finally {
        if (idlePolls < 3) setTimeout(poll, interval);
      }
    }
    setTimeout(poll, interval);
  });
})();
