/*
 * The secrets page: tenant switcher, sign-out, and secrets through the JSON API with the
 * active tenant's `Dispatched-Session` token.
 */
(function () {
  "use strict";
  const T = window.GatehouseTenants;
  const $ = (id) => document.getElementById(id);
  const status = $("status");

  function say(text) {
    status.textContent = text;
  }

  function nextOrLogin() {
    if (T.active()) {
      render();
    } else {
      location.assign("/login");
    }
  }

  async function api(method, path, body) {
    const tenant = T.active();
    const r = await fetch(path, {
      method,
      headers: Object.assign(
        { "Dispatched-Session": T.token(tenant) },
        body ? { "Content-Type": "application/json" } : {}
      ),
      body: body ? JSON.stringify(body) : undefined,
      cache: "no-store",
    });
    if (r.status === 401) {
      T.remove(tenant);
      say("The session of " + tenant + " ended.");
      nextOrLogin();
      throw new Error("signed out");
    }
    const json = r.status === 204 ? {} : await r.json().catch(() => ({}));
    if (!r.ok) throw new Error((json.error && json.error.message) || "Request failed (" + r.status + ")");
    return json;
  }

  function renderSwitcher() {
    const sel = $("tenant-switcher");
    sel.textContent = "";
    for (const id of T.ids()) {
      const o = document.createElement("option");
      o.value = id;
      o.textContent = id;
      o.selected = id === T.active();
      sel.appendChild(o);
    }
    $("signed-in-tenant").textContent = T.active() || "";
  }

  async function loadSecrets() {
    const body = $("secrets-table").querySelector("tbody");
    body.textContent = "";
    const list = await api("GET", "/api/secrets");
    for (const s of list.secrets) {
      const tr = document.createElement("tr");
      tr.dataset.name = s.name;
      const name = document.createElement("td");
      name.textContent = s.name;
      const when = document.createElement("td");
      when.textContent = new Date(s.updated_at * 1000).toLocaleString();
      const actions = document.createElement("td");
      const show = document.createElement("button");
      show.type = "button";
      show.className = "show-secret";
      show.textContent = "Show";
      show.addEventListener("click", () => showSecret(s.name).catch((e) => say(e.message)));
      const del = document.createElement("button");
      del.type = "button";
      del.className = "delete-secret";
      del.textContent = "Delete";
      del.addEventListener("click", () => deleteSecret(s.name).catch((e) => say(e.message)));
      actions.append(show, " ", del);
      tr.append(name, when, actions);
      body.appendChild(tr);
    }
  }

  async function showSecret(name) {
    const s = await api("GET", "/api/secrets/" + encodeURIComponent(name));
    $("secret-shown-name").textContent = s.name;
    $("secret-shown").textContent = s.value;
  }

  async function deleteSecret(name) {
    await api("DELETE", "/api/secrets/" + encodeURIComponent(name));
    say("Deleted " + name);
    await loadSecrets();
  }

  async function refresh() {
    const tenant = T.active();
    if (!tenant) return;
    const r = await api("POST", "/api/session/refresh");
    T.setExpiry(tenant, r.expires_at);
  }

  async function render() {
    renderSwitcher();
    $("secret-shown").textContent = "";
    $("secret-shown-name").textContent = "";
    try {
      await refresh();
      await loadSecrets();
      document.body.dataset.ready = T.active();
    } catch (e) {
      if (e.message !== "signed out") say(e.message);
    }
  }

  $("tenant-switcher").addEventListener("change", (ev) => {
    T.setActive(ev.target.value);
    render();
  });

  $("sign-out").addEventListener("click", async () => {
    const tenant = T.active();
    try {
      await api("DELETE", "/api/session");
    } catch (_) {
      /* already ended */
    }
    T.remove(tenant);
    say("Signed out of " + tenant);
    nextOrLogin();
  });

  $("secret-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("secret-name").value.trim();
    try {
      await api("PUT", "/api/secrets/" + encodeURIComponent(name), { value: $("secret-value").value });
      $("secret-value").value = "";
      $("secret-name").value = "";
      say("Saved " + name);
      await loadSecrets();
    } catch (e) {
      say(e.message);
    }
  });

  if (!T.active()) {
    location.replace("/login");
    return;
  }
  setInterval(() => refresh().catch(() => {}), 10 * 60 * 1000);
  render();
})();
