/*
 * The "new tenant" page: the key pair is made here (handshake.js), only the public key is sent;
 * the private key is shown once and never stored.
 */
(function () {
  "use strict";
  const T = window.GatehouseTenants;
  const $ = (id) => document.getElementById(id);
  $("tenant-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("tenant-error").hidden = true;
    try {
      const key = await window.GatehouseHandshake.newTenantKey();
      const r = await fetch("/api/tenants", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Dispatched-Session": T.token(T.active()) || "" },
        body: JSON.stringify({ name: $("tenant-name").value.trim(), public_key: key.publicKey }),
        cache: "no-store",
      });
      const json = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error((json.error && json.error.message) || "Request failed (" + r.status + ")");
      $("new-tenant-id").textContent = json.tenant_id;
      $("new-private-key").textContent = key.privateKey;
      $("tenant-result").hidden = false;
      $("tenant-form").hidden = true;
    } catch (e) {
      $("tenant-error").textContent = e.message || String(e);
      $("tenant-error").hidden = false;
    }
  });
})();
