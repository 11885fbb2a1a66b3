/*
 * Gatehouse handshake client: Noise_XK_25519_AESGCM_SHA256 (initiator) on the Web Crypto API.
 *
 * One small module, no third-party crypto. It follows SPEC §4.4 "Exact parameters" and is
 * tested byte for byte against shared/vectors/handshake-xk.json in real Chromium:
 *   - tenant private key  tsk_ + base64url(32-byte seed)
 *   - static private key  HKDF-SHA-256(ikm = seed, salt = empty, info = "gatehouse static v1")
 *   - wrapping key        HKDF-SHA-256(ikm = seed, salt = empty, info = "gatehouse wrap v1")
 *   - prologue            UTF-8 "gatehouse-dh-v1:" + tenant id
 *   - message 1 (-> e, es) and message 2 (<- e, ee) carry empty payloads;
 *     message 3 (-> s, se) carries the 32-byte wrapping key.
 * Primitives: X25519 deriveBits, HMAC-SHA-256 (Noise's HKDF), SHA-256, AES-256-GCM with the
 * Noise nonce (4 zero bytes + 64-bit big-endian counter) and the handshake hash as AD.
 *
 * The seed and the keys derived from it stay in this page's memory: nothing here stores them
 * or sends them anywhere; only the three Noise messages travel.
 */
(function () {
  "use strict";
  const subtle = window.crypto.subtle;
  const enc = new TextEncoder();
  const PROTOCOL = "Noise_XK_25519_AESGCM_SHA256";
  const STATIC_LABEL = "gatehouse static v1";
  const WRAP_LABEL = "gatehouse wrap v1";
  const PROLOGUE_PREFIX = "gatehouse-dh-v1:";
  // PKCS#8 header of an X25519 private key: a raw 32-byte key follows.
  const PKCS8_X25519 = Uint8Array.from([
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
  ]);

  function b64u(bytes) {
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function unb64u(text) {
    if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new Error("not base64url");
    const s = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
    return Uint8Array.from(s, (c) => c.charCodeAt(0));
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let i = 0;
    for (const p of parts) {
      out.set(p, i);
      i += p.length;
    }
    return out;
  }

  async function sha256(data) {
    return new Uint8Array(await subtle.digest("SHA-256", data));
  }

  async function hmac(key, data) {
    const k = await subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    return new Uint8Array(await subtle.sign("HMAC", k, data));
  }

  // RFC 5869 HKDF-SHA-256 with an empty salt (= 32 zero bytes), one 32-byte block.
  async function hkdfSeed(seed, info) {
    const prk = await hmac(new Uint8Array(32), seed);
    return hmac(prk, concat(enc.encode(info), Uint8Array.of(1)));
  }

  // Noise's HKDF(ck, ikm) with two outputs.
  async function noiseHkdf(ck, ikm) {
    const temp = await hmac(ck, ikm);
    const o1 = await hmac(temp, Uint8Array.of(1));
    const o2 = await hmac(temp, concat(o1, Uint8Array.of(2)));
    return [o1, o2];
  }

  // An X25519 key pair from 32 raw private bytes: { priv: CryptoKey, pub: Uint8Array }.
  async function keyPairFromRaw(raw) {
    const pkcs8 = concat(PKCS8_X25519, raw);
    // Extractable only long enough to read the public half (JWK "x"), then re-imported sealed.
    const probe = await subtle.importKey("pkcs8", pkcs8, { name: "X25519" }, true, ["deriveBits"]);
    const pub = unb64u((await subtle.exportKey("jwk", probe)).x);
    const priv = await subtle.importKey("pkcs8", pkcs8, { name: "X25519" }, false, ["deriveBits"]);
    pkcs8.fill(0);
    return { priv, pub };
  }

  async function freshKeyPair() {
    const kp = await subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
    return { priv: kp.privateKey, pub: new Uint8Array(await subtle.exportKey("raw", kp.publicKey)) };
  }

  async function dh(priv, pubBytes) {
    if (pubBytes.length !== 32) throw new Error("public key must be 32 bytes");
    const pub = await subtle.importKey("raw", pubBytes, { name: "X25519" }, false, []);
    // Web Crypto refuses an all-zero result (low-order point); check again to be sure.
    const out = new Uint8Array(await subtle.deriveBits({ name: "X25519", public: pub }, priv, 256));
    if (out.every((b) => b === 0)) throw new Error("low-order public key");
    return out;
  }

  function nonce(n) {
    const iv = new Uint8Array(12);
    new DataView(iv.buffer).setBigUint64(4, BigInt(n), false);
    return iv;
  }

  async function aead(encrypt, key, n, ad, data) {
    const k = await subtle.importKey("raw", key, { name: "AES-GCM" }, false, [encrypt ? "encrypt" : "decrypt"]);
    const params = { name: "AES-GCM", iv: nonce(n), additionalData: ad, tagLength: 128 };
    const out = encrypt ? await subtle.encrypt(params, k, data) : await subtle.decrypt(params, k, data);
    return new Uint8Array(out);
  }

  // Noise SymmetricState.
  class Symmetric {
    static async start(prologue, serverStatic) {
      const s = new Symmetric();
      const name = enc.encode(PROTOCOL);
      s.h = name.length <= 32 ? concat(name, new Uint8Array(32 - name.length)) : await sha256(name);
      s.ck = s.h;
      s.k = null;
      s.n = 0;
      await s.mixHash(prologue);
      await s.mixHash(serverStatic); // XK pre-message: <- s
      return s;
    }
    async mixHash(data) {
      this.h = await sha256(concat(this.h, data));
    }
    async mixKey(ikm) {
      [this.ck, this.k] = await noiseHkdf(this.ck, ikm);
      this.n = 0;
    }
    async encryptAndHash(plain) {
      const c = this.k ? await aead(true, this.k, this.n++, this.h, plain) : plain;
      await this.mixHash(c);
      return c;
    }
    async decryptAndHash(cipher) {
      const p = this.k ? await aead(false, this.k, this.n++, this.h, cipher) : cipher;
      await this.mixHash(cipher);
      return p;
    }
  }

  /** Parses `tsk_…` into the 32-byte seed. */
  function parseTenantKey(text) {
    const t = String(text).trim();
    if (!t.startsWith("tsk_")) throw new Error("A tenant private key starts with tsk_");
    const seed = unb64u(t.slice(4));
    if (seed.length !== 32) throw new Error("A tenant private key holds 32 bytes");
    return seed;
  }

  /**
   * Starts a handshake as the initiator. Returns { message1, finish(message2) } where finish
   * answers { message3, handshakeHash }. `testOnlyEphemeral` (32 raw bytes) exists only for the
   * test vector; real sign-ins always use a fresh key from generateKey.
   */
  async function start({ tenantId, seed, serverPublic, testOnlyEphemeral }) {
    const s = await keyPairFromRaw(await hkdfSeed(seed, STATIC_LABEL));
    const wrappingKey = await hkdfSeed(seed, WRAP_LABEL);
    const rs = serverPublic;
    const sym = await Symmetric.start(enc.encode(PROLOGUE_PREFIX + tenantId), rs);
    const e = testOnlyEphemeral ? await keyPairFromRaw(testOnlyEphemeral) : await freshKeyPair();
    // -> e, es
    await sym.mixHash(e.pub);
    await sym.mixKey(await dh(e.priv, rs));
    const message1 = concat(e.pub, await sym.encryptAndHash(new Uint8Array(0)));
    async function finish(message2) {
      if (message2.length !== 48) throw new Error("The server's handshake message is malformed");
      // <- e, ee
      const re = message2.slice(0, 32);
      await sym.mixHash(re);
      await sym.mixKey(await dh(e.priv, re));
      try {
        await sym.decryptAndHash(message2.slice(32));
      } catch (_) {
        throw new Error("The server failed to authenticate: this is not the pinned server");
      }
      // -> s, se
      const encS = await sym.encryptAndHash(s.pub);
      await sym.mixKey(await dh(s.priv, re));
      const encPayload = await sym.encryptAndHash(wrappingKey);
      wrappingKey.fill(0);
      return { message3: concat(encS, encPayload), handshakeHash: sym.h };
    }
    return { message1, finish };
  }

  async function post(path, body, headers) {
    const r = await fetch(path, {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/json" }, headers || {}),
      body: JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
    const json = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error((json.error && json.error.message) || "Request failed (" + r.status + ")");
    return json;
  }

  /**
   * The whole sign-in: two calls. The API key rides in the headers of the first call; the
   * tenant private key never leaves this function. Answers { session_token, expires_at, tenant_id }.
   */
  async function signIn({ tenantId, apiKey, tenantKey, serverPublic }) {
    const seed = parseTenantKey(tenantKey);
    try {
      const hs = await start({ tenantId, seed, serverPublic: unb64u(serverPublic) });
      const r1 = await post("/api/session", { tenant_id: tenantId, message: b64u(hs.message1) }, { "X-API-Key": apiKey });
      const { message3 } = await hs.finish(unb64u(r1.message));
      return await post("/api/session/confirm", { handshake_id: r1.handshake_id, message: b64u(message3) });
    } finally {
      seed.fill(0);
    }
  }

  /**
   * A new tenant key pair made in this page: { privateKey: "tsk_…", publicKey: base64url }.
   * Only the public key is meant to be sent; the private key is shown once to the user.
   */
  async function newTenantKey(seed) {
    const s = seed || window.crypto.getRandomValues(new Uint8Array(32));
    const kp = await keyPairFromRaw(await hkdfSeed(s, STATIC_LABEL));
    return { privateKey: "tsk_" + b64u(s), publicKey: b64u(kp.pub) };
  }

  window.GatehouseHandshake = Object.freeze({ start, signIn, newTenantKey, parseTenantKey, b64u, unb64u, PROTOCOL });
})();
