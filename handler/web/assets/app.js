// berth's status page: the deploy and roll-back buttons post without leaving the page, a
// running deploy's steps appear as they happen, and the page refreshes its services and
// timeline when the event stream names a finished deploy it has not shown.
"use strict";

(function () {
  const flash = document.getElementById("flash");

  function say(text, bad) {
    flash.textContent = text;
    flash.className = bad ? "bad" : "";
  }

  async function deploy(form) {
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const res = await fetch(form.action, { method: "POST", body: new URLSearchParams(new FormData(form)), credentials: "same-origin" });
      const body = await res.json().catch(() => ({}));
      const what = form.classList.contains("rollback") ? "Roll-back " : "Deploy ";
      if (res.status === 202) {
        say(what + body.id + " queued: " + (body.services || []).join(", ") + " with " + body.image, false);
      } else {
        say(what + "refused (" + res.status + "): " + (body.error || res.statusText), true);
      }
    } catch (e) {
      say("Deploy failed: " + e, true);
    } finally {
      button.disabled = false;
    }
  }

  function bind() {
    document.querySelectorAll("form.deploy").forEach(function (form) {
      form.addEventListener("submit", function (ev) { ev.preventDefault(); deploy(form); });
    });
    document.querySelectorAll("form.filter select").forEach(function (sel) {
      sel.addEventListener("change", function () { sel.form.submit(); });
    });
  }

  // refresh swaps in a freshly rendered services table and timeline, keeping open deploys open.
  async function refresh() {
    const res = await fetch(location.href, { credentials: "same-origin" });
    if (!res.ok) return;
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    const open = Array.from(document.querySelectorAll("ol.deploys details[open]")).map(function (d) { return d.parentElement.id; });
    ["services", "timeline"].forEach(function (id) {
      const fresh = doc.getElementById(id);
      if (fresh) document.getElementById(id).replaceWith(fresh);
    });
    open.forEach(function (id) {
      const li = document.getElementById(id);
      if (li) li.querySelector("details").open = true;
    });
    document.body.dataset.newest = doc.body.dataset.newest || "";
    bind();
  }

  // running maps "deploy/project/service" to its entry under "Running now".
  const running = new Map();

  function mb(n) { return (n / 1e6).toFixed(1) + " MB"; }

  // stepText says what a step did, or how far it is while it runs.
  function stepText(e) {
    let text = e.step.name + (e.step.container ? " " + e.step.container : "");
    if (e.pull) {
      text += ": " + e.pull.layers_done + "/" + e.pull.layers + " layers";
      if (e.pull.bytes_total > 0) text += ", " + mb(e.pull.bytes) + " of " + mb(e.pull.bytes_total);
    } else if (e.done) {
      text += " " + (e.step.took_ns / 1e6).toFixed(0) + " ms" + (e.step.error ? ": " + e.step.error : "");
    } else {
      text += " …";
    }
    return text;
  }

  // showStep adds or updates a running deploy's step; every text goes in as text, never HTML.
  function showStep(e) {
    const section = document.getElementById("live");
    const key = e.deploy + "/" + e.project + "/" + e.service;
    let entry = running.get(key);
    if (!entry) {
      const li = document.createElement("li");
      const title = document.createElement("strong");
      title.textContent = e.project + "/" + e.service + " (deploy " + e.deploy + ")";
      const steps = document.createElement("ol");
      steps.className = "steps";
      li.append(title, steps);
      section.querySelector("ol").append(li);
      entry = { li: li, steps: steps, last: null };
      running.set(key, entry);
    }
    let item = entry.last;
    if (!item || item.dataset.done === "1" || item.dataset.name !== e.step.name) {
      item = document.createElement("li");
      item.dataset.name = e.step.name;
      entry.steps.append(item);
      entry.last = item;
    }
    item.textContent = stepText(e);
    item.className = e.done ? (e.step.error ? "bad" : "") : "pending";
    if (e.done) item.dataset.done = "1";
    section.hidden = false;
  }

  function finished(key) {
    const entry = running.get(key);
    if (entry) { entry.li.remove(); running.delete(key); }
    const section = document.getElementById("live");
    if (section && running.size === 0) section.hidden = true;
  }

  bind();
  const live = document.body.dataset.live;
  if (live && window.EventSource) {
    const events = new EventSource(live);
    events.addEventListener("record", function (ev) {
      finished(ev.data);
      if (ev.data !== document.body.dataset.newest) refresh();
    });
    events.addEventListener("step", function (ev) {
      try { showStep(JSON.parse(ev.data)); } catch (e) { /* a malformed event changes nothing */ }
    });
  }
})();
