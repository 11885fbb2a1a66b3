/*
 * Signed-in tenants of this browser tab: { tenant_id -> session token } in sessionStorage, so a
 * page refresh keeps every session while closing the tab ends them. Never holds a private key.
 */
(function () {
  "use strict";
  const KEY = "gatehouse.sessions";
  const ACTIVE = "gatehouse.active";

  function all() {
    try {
      return JSON.parse(sessionStorage.getItem(KEY) || "{}");
    } catch (_) {
      return {};
    }
  }
  function save(map) {
    sessionStorage.setItem(KEY, JSON.stringify(map));
  }
  const Tenants = {
    all,
    ids() {
      return Object.keys(all()).sort();
    },
    add(tenantId, token, expiresAt) {
      const m = all();
      m[tenantId] = { token, expires_at: expiresAt };
      save(m);
      sessionStorage.setItem(ACTIVE, tenantId);
    },
    remove(tenantId) {
      const m = all();
      delete m[tenantId];
      save(m);
      if (sessionStorage.getItem(ACTIVE) === tenantId) {
        const next = Object.keys(m).sort()[0];
        if (next) sessionStorage.setItem(ACTIVE, next);
        else sessionStorage.removeItem(ACTIVE);
      }
    },
    active() {
      const a = sessionStorage.getItem(ACTIVE);
      const m = all();
      if (a && m[a]) return a;
      return Object.keys(m).sort()[0] || null;
    },
    setActive(tenantId) {
      if (all()[tenantId]) sessionStorage.setItem(ACTIVE, tenantId);
    },
    token(tenantId) {
      const s = all()[tenantId];
      return s ? s.token : null;
    },
    setExpiry(tenantId, expiresAt) {
      const m = all();
      if (m[tenantId]) {
        m[tenantId].expires_at = expiresAt;
        save(m);
      }
    },
  };
  window.GatehouseTenants = Object.freeze(Tenants);
})();
