// Gatehouse pages: small progressive enhancements. No inline scripts (CSP script-src 'self').
"use strict";

function csrfToken() {
  var m = document.querySelector('meta[name="csrf-token"]');
  return m ? m.getAttribute("content") : "";
}

// JSON request with the session's CSRF token; rejects with the server's error message.
function api(method, url, body) {
  var opts = { method: method, credentials: "same-origin", headers: { "X-CSRF-Token": csrfToken(), "Accept": "application/json" } };
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  return fetch(url, opts).then(function (r) {
    if (r.status === 204) { return null; }
    return r.text().then(function (t) {
      var data = null;
      try { data = t ? JSON.parse(t) : null; } catch (e) { data = null; }
      if (!r.ok) {
        var msg = data && data.error && data.error.message ? data.error.message : ("Request failed (" + r.status + ")");
        throw new Error(msg);
      }
      return data;
    });
  });
}

function firstArray(data) {
  if (Array.isArray(data)) { return data; }
  if (data && typeof data === "object") {
    var keys = ["apiKeys", "api_keys", "keys", "data", "items", "results"];
    for (var i = 0; i < keys.length; i++) { if (Array.isArray(data[keys[i]])) { return data[keys[i]]; } }
    for (var k in data) { if (Array.isArray(data[k])) { return data[k]; } }
  }
  return [];
}

function when(t) {
  if (t === null || t === undefined || t === "") { return "—"; }
  var d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
  return isNaN(d.getTime()) ? String(t) : d.toISOString().replace("T", " ").slice(0, 16);
}

function cell(text) { var td = document.createElement("td"); td.textContent = text; return td; }

function setupKeys(root) {
  var rows = root.querySelector("[data-key-rows]");
  var err = root.querySelector("[data-key-error]");
  var secretBox = root.querySelector("[data-key-secret]");
  var secretValue = root.querySelector("[data-secret-value]");
  var user = root.getAttribute("data-user");
  var base = "/v1/api-keys";
  var listUrl = user ? base + "?user=" + encodeURIComponent(user) : base;

  function showError(e) { err.textContent = e.message || String(e); err.classList.remove("hidden"); }
  function clearError() { err.classList.add("hidden"); err.textContent = ""; }
  function showSecret(data) {
    var s = data && (data.secret || data.key || data.apiKey || data.publicKey);
    if (!s) { return; }
    secretValue.textContent = s;
    secretBox.classList.remove("hidden");
  }

  function render(keys) {
    rows.textContent = "";
    var live = keys.filter(function (k) { return !k.revoked_at && !k.revokedAt && !k.revoked; });
    if (live.length === 0) {
      var tr = document.createElement("tr"); var td = cell("No API keys yet."); td.colSpan = 5; tr.appendChild(td); rows.appendChild(tr); return;
    }
    live.forEach(function (k) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-key-id", k.id);
      tr.appendChild(cell(k.name || "—"));
      var code = document.createElement("td"); var c = document.createElement("code");
      c.textContent = k.masked || k.maskedKey || k.prefix || k.publicKey || "—"; code.appendChild(c); tr.appendChild(code);
      tr.appendChild(cell(when(k.created_at || k.createdAt)));
      tr.appendChild(cell(when(k.last_used_at || k.lastUsedAt)));
      var act = document.createElement("td"); act.className = "actions";
      var roll = document.createElement("button"); roll.type = "button"; roll.className = "secondary small"; roll.textContent = "Roll";
      roll.addEventListener("click", function () {
        if (!window.confirm("Issue a new key to replace \"" + (k.name || k.id) + "\"? The old one keeps working for the overlap period.")) { return; }
        clearError();
        api("POST", base + "/" + encodeURIComponent(k.id) + "/roll", {}).then(function (d) { showSecret(d); load(); }).catch(showError);
      });
      var rev = document.createElement("button"); rev.type = "button"; rev.className = "danger small"; rev.textContent = "Revoke";
      rev.setAttribute("data-revoke", k.id);
      rev.addEventListener("click", function () {
        if (!window.confirm("Revoke \"" + (k.name || k.id) + "\" now? Anything using it stops working.")) { return; }
        clearError();
        api("DELETE", base + "/" + encodeURIComponent(k.id)).then(load).catch(showError);
      });
      act.appendChild(roll); act.appendChild(rev); tr.appendChild(act);
      rows.appendChild(tr);
    });
  }

  function load() {
    return api("GET", listUrl).then(function (d) { render(firstArray(d)); }).catch(function (e) {
      rows.textContent = ""; showError(e);
    });
  }

  root.querySelector("[data-key-create]").addEventListener("submit", function (ev) {
    ev.preventDefault();
    clearError();
    var input = ev.target.querySelector("input[name=name]");
    var body = { name: input.value };
    if (user) { body.user = user; }
    api("POST", base, body).then(function (d) { input.value = ""; showSecret(d); load(); }).catch(showError);
  });
  root.querySelector("[data-copy]").addEventListener("click", function (ev) {
    var btn = ev.target;
    navigator.clipboard.writeText(secretValue.textContent).then(function () { btn.textContent = "Copied"; }, function () {
      var r = document.createRange(); r.selectNodeContents(secretValue);
      var s = window.getSelection(); s.removeAllRanges(); s.addRange(r); btn.textContent = "Press Ctrl+C";
    });
  });
  root.querySelector("[data-secret-done]").addEventListener("click", function () {
    secretValue.textContent = ""; secretBox.classList.add("hidden");
  });
  load();
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("form[data-autosubmit] select").forEach(function (s) {
    s.addEventListener("change", function () { s.form.submit(); });
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (ev) {
      if (!window.confirm(f.getAttribute("data-confirm"))) { ev.preventDefault(); }
    });
  });
  document.querySelectorAll("[data-api-keys]").forEach(setupKeys);
});
