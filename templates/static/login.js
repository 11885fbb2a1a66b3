/* The /login page: runs the handshake in this page (handshake.js), keeps only the session token. */
(function () {
  "use strict";
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  const button = document.getElementById("login-submit");
  const serverKey = document.querySelector('meta[name="gatehouse-server-key"]').content;
  const tenantInput = document.getElementById("tenant-id");
  const params = new URLSearchParams(location.search);
  if (params.get("tenant")) tenantInput.value = params.get("tenant");

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    button.disabled = true;
    const keyInput = document.getElementById("tenant-key");
    const apiInput = document.getElementById("api-key");
    try {
      const s = await window.GatehouseHandshake.signIn({
        tenantId: tenantInput.value.trim(),
        apiKey: apiInput.value.trim(),
        tenantKey: keyInput.value,
        serverPublic: serverKey,
      });
      keyInput.value = "";
      apiInput.value = "";
      window.GatehouseTenants.add(s.tenant_id, s.session_token, s.expires_at);
      location.assign("/secrets");
    } catch (e) {
      error.textContent = e.message || String(e);
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
})();
