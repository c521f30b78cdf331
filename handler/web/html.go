package web

import (
	"bytes"
	"html"

	"github.com/berth-dev/berth/deployer"
)

// The page and the login form are written here in plain Go rather than with html/template:
// text/template looks methods up by name through reflect, which makes the linker keep every
// exported method of every reachable type, and that cost the binary 3.4 MB.
//
// Escaping is therefore this file's job, and it stays simple only while every dynamic value
// sits in element text or in a double-quoted attribute value, where html.EscapeString is
// enough. Keep it so: no dynamic URL (href, src, action), script, style, event handler or
// unquoted attribute. Those need the contextual escaping html/template did.

// markup is HTML as it goes out: literal markup from this file, or a value passed through
// esc. An untyped string constant converts to markup and a string variable does not, so a
// dynamic value reaches the page only through esc (or a conversion that shows in review).
type markup string

// esc escapes s for element text or a double-quoted attribute value.
func esc(s string) markup { return markup(html.EscapeString(s)) }

// htmlWriter collects a page; put is its only way in.
type htmlWriter struct{ buf bytes.Buffer }

// put appends parts in order.
func (w *htmlWriter) put(parts ...markup) {
	for _, p := range parts {
		w.buf.WriteString(string(p))
	}
}

// pageHTML is the status page: the services table, the running deploys and the timeline.
func pageHTML(p page) []byte {
	var w htmlWriter
	w.put(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>berth</title>
<link rel="stylesheet" href="/ui/assets/style.css">
<script src="/ui/assets/app.js" defer></script>
</head>
<body data-newest="`, esc(p.Newest), `"`)
	if p.Live {
		w.put(` data-live="/ui/events"`)
	}
	w.put(`>
<header>
  <h1>berth</h1>
  <p id="flash" role="status" aria-live="polite"></p>
  `)
	if p.CSRF != "" {
		w.put(`<form method="post" action="/ui/logout" class="logout">
    <input type="hidden" name="csrf" value="`, esc(p.CSRF), `"><button type="submit">Log out</button>
  </form>`)
	}
	w.put(`
</header>
<main>
<section id="services">
  <h2>Services</h2>
  `)
	if p.ServicesErr != "" {
		w.put(`<p class="message bad" role="alert">The engine did not answer: `, esc(p.ServicesErr), `</p>`)
	}
	w.put(`
  <div class="scroll">
  <table>
    <thead><tr><th>Service</th><th>Image</th><th>Running</th><th>Version</th><th>State</th><th>Last deploy</th><th></th></tr></thead>
    <tbody>
    `)
	for _, s := range p.Services {
		w.serviceRow(s, p.CanDeploy, p.CSRF)
	}
	if len(p.Services) == 0 {
		w.put(`
    <tr><td colspan="7">No service yet.</td></tr>
    `)
	}
	w.put(`
    </tbody>
  </table>
  </div>
</section>
`)
	if p.Live {
		w.put(`<section id="live" hidden>
  <h2>Running now</h2>
  <ol class="deploys running" aria-live="polite"></ol>
</section>
`)
	}
	w.put(`<section id="timeline">
  <h2>Deploys</h2>
  <form method="get" action="/ui/" class="filter">
    <label>Service <select name="service"><option value="">all</option>
      `)
	w.options(p.Known, p.Filter.Service)
	w.put(`</select></label>
    <label>Outcome <select name="outcome"><option value="">all</option>
      `)
	w.options(p.Filter.outcomes(), p.Filter.Outcome)
	w.put(`</select></label>
    <button type="submit">Filter</button>
  </form>
  <ol class="deploys">
  `)
	for _, r := range p.Deploys {
		w.deploy(r)
	}
	if len(p.Deploys) == 0 {
		w.put(`
  <li>No deploy yet.</li>
  `)
	}
	w.put(`
  </ol>
</section>
</main>
</body>
</html>
`)
	return w.buf.Bytes()
}

// serviceRow is one line of the services table, with its buttons when canDeploy.
func (w *htmlWriter) serviceRow(s serviceRow, canDeploy bool, csrf string) {
	w.put(`
    <tr data-service="`, esc(s.Key), `">
      <td><span class="project">`, esc(s.Project), `/</span><strong>`, esc(s.Service), `</strong></td>
      <td><code>`, esc(s.Image), `</code></td>
      <td>`)
	switch {
	case s.RepoDigest != "":
		w.put(`<code title="`, esc(s.RepoDigest), `">`, esc(shortID(s.RepoDigest)), `</code>`)
	case s.ImageID != "":
		w.put(`<code title="`, esc(s.ImageID), `">`, esc(shortID(s.ImageID)), `</code>`)
	default:
		w.put(`—`)
	}
	w.put(`</td>
      <td>`)
	if v := label(s.ImageLabels, "version"); v != "" {
		w.put(esc(v))
	}
	w.put(`
        `)
	if v := label(s.ImageLabels, "revision"); v != "" {
		w.put(`<code title="`, esc(v), `">`, esc(firstRunes(v, 12)), `</code>`)
	}
	w.put(`
        `)
	if v := label(s.ImageLabels, "source"); v != "" {
		w.put(`<span class="source">`, esc(v), `</span>`)
	}
	state := stateOf(s.Containers)
	w.put(`</td>
      <td><span class="pill `, esc(tone(state)), `">`, esc(state), `</span></td>
      <td>`)
	if r := s.Last; r != nil {
		w.put(`<span class="pill `, esc(tone(r.Outcome)), `">`, esc(r.Outcome), `</span> <time datetime="`, esc(iso(r.Started)), `">`, esc(when(r.Started)), `</time>`)
	} else {
		w.put(`—`)
	}
	w.put(`
        `)
	for _, f := range s.FailedImages {
		w.put(`<div class="failed" title="`, esc(f.Reason), `">not retried: <code>`, esc(shortID(f.ID)), `</code></div>`)
	}
	w.put(`</td>
      <td>`)
	if canDeploy {
		w.put(`<form method="post" action="/ui/deploy" class="deploy">
        <input type="hidden" name="csrf" value="`, esc(csrf), `"><input type="hidden" name="service" value="`, esc(s.Key), `">
        <button type="submit"`)
		if !s.Deploys {
			w.put(` disabled title="berth.enable or OPT_IN leaves this service out"`)
		}
		w.put(`>Deploy now</button>
      </form>`)
		if s.Previous != "" {
			w.put(`<form method="post" action="/ui/rollback" class="deploy rollback">
        <input type="hidden" name="csrf" value="`, esc(csrf), `"><input type="hidden" name="service" value="`, esc(s.Key), `">
        <button type="submit" title="back to `, esc(shortID(s.Previous)), `, the image it ran before berth's last deploy">Roll back</button>
      </form>`)
		}
	}
	w.put(`</td>
    </tr>
    `)
}

// options are a filter's choices, the one equal to selected marked.
func (w *htmlWriter) options(values []string, selected string) {
	for _, v := range values {
		w.put(`<option`)
		if v == selected {
			w.put(` selected`)
		}
		w.put(`>`, esc(v), `</option>`)
	}
}

// deploy is one record of the timeline: its summary line, then its details and steps.
func (w *htmlWriter) deploy(r deployer.Record) {
	w.put(`
  <li class="`, esc(tone(r.Outcome)), `" id="deploy-`, esc(r.ID), `-`, esc(r.Project), `-`, esc(r.Service), `">
    <details>
      <summary><span class="pill `, esc(tone(r.Outcome)), `">`, esc(r.Outcome), `</span>
        <strong>`, esc(r.Project), `/`, esc(r.Service), `</strong> <code>`, esc(r.Repository), `:`, esc(r.Tag), `</code>
        <time datetime="`, esc(iso(r.Started)), `">`, esc(when(r.Started)), `</time> <span class="took">`, esc(took(r.Duration)), `</span></summary>
      <dl>
        <dt>Deploy</dt><dd><code>`, esc(r.ID), `</code> from `, esc(r.Source))
	if r.Pusher != "" {
		w.put(`, pushed by `, esc(r.Pusher))
	}
	w.put(`</dd>
        `)
	if r.Digest != "" {
		w.put(`<dt>Digest</dt><dd><code>`, esc(r.Digest), `</code></dd>`)
	}
	w.put(`
        `)
	if r.Error != "" {
		w.put(`<dt>Error</dt><dd class="bad">`, esc(r.Error), `</dd>`)
	}
	w.put(`
      </dl>
      <ol class="steps">
      `)
	for _, s := range r.Steps {
		w.put(`<li`)
		if s.Error != "" {
			w.put(` class="bad"`)
		}
		w.put(`><strong>`, esc(s.Name), `</strong>`)
		if s.Container != "" {
			w.put(` `, esc(s.Container))
		}
		w.put(` <span class="took">`, esc(took(s.Took)), `</span>`)
		if s.Error != "" {
			w.put(`<div>`, esc(s.Error), `</div>`)
		}
		w.put(`</li>`)
	}
	w.put(`
      </ol>
    </details>
  </li>
  `)
}

// loginHTML is the login form, with message (if any) under it.
func loginHTML(message string) []byte {
	var w htmlWriter
	w.put(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>berth — log in</title>
<link rel="stylesheet" href="/ui/assets/style.css">
</head>
<body class="login">
<main>
<h1>berth</h1>
<form method="post" action="/ui/login">
  <label for="token">API token</label>
  <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
  <button type="submit">Log in</button>
  `)
	if message != "" {
		w.put(`<p class="message bad" role="alert">`, esc(message), `</p>`)
	}
	w.put(`
</form>
<p class="hint">The token is berth's <code>API_TOKEN</code>. Scripts may send it as <code>Authorization: Bearer</code> instead.</p>
</main>
</body>
</html>
`)
	return w.buf.Bytes()
}
