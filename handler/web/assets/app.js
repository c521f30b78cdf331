// berth's status page: the deploy buttons post without leaving the page, and the page
// refreshes its services and timeline when the event stream names a deploy it has not shown.
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

  bind();
  const live = document.body.dataset.live;
  if (live && window.EventSource) {
    const events = new EventSource(live);
    events.addEventListener("record", function (ev) {
      if (ev.data !== document.body.dataset.newest) refresh();
    });
  }
})();
