//! The handshake sign-in's cryptography (SPEC §4.4 "Exact parameters").
//!
//! Noise `XK_25519_AESGCM_SHA256` through `snow`, in both roles: the server is the responder
//! (its static key is pinned by clients), the CLI is the initiator. The tenant private key
//! `tsk_…` is a 32-byte seed; HKDF-SHA-256 (empty salt) derives the client's static X25519
//! private key (info `gatehouse static v1`) and the wrapping key (info `gatehouse wrap v1`)
//! from it. The prologue is `gatehouse-dh-v1:` + tenant id. Messages 1 and 2 carry empty
//! payloads; message 3 carries the 32-byte wrapping key. Every public key that reaches a DH is
//! checked first: low-order (and all-zero) points are refused, because with them the DH output
//! is all zeros and the handshake would prove nothing.

use hkdf::Hkdf;
use sha2::Sha256;
use sodiumoxide::crypto::scalarmult::curve25519 as x25519;
use zeroize::Zeroizing;

use super::tokens::SecretToken;
use crate::error::{Error, Result};

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_XK_25519_AESGCM_SHA256";
/// HKDF info deriving the client's static X25519 private key from the tenant seed.
pub const STATIC_LABEL: &[u8] = b"gatehouse static v1";
/// HKDF info deriving the wrapping key from the tenant seed.
pub const WRAP_LABEL: &[u8] = b"gatehouse wrap v1";
/// Prologue prefix; the tenant id follows.
pub const PROLOGUE_PREFIX: &str = "gatehouse-dh-v1:";
/// Prefix of a tenant private key.
pub const TENANT_KEY_PREFIX: &str = "tsk_";
/// HKDF info of the key that seals a session's wrapping key under its token.
const SESSION_SEAL_LABEL: &[u8] = b"gatehouse session seal v1";
/// Length of message 1 (`e`, `es`, empty payload's tag).
pub const MESSAGE1_LEN: usize = 48;
/// Length of message 2 (`e`, `ee`, empty payload's tag).
pub const MESSAGE2_LEN: usize = 48;
/// Length of message 3 (encrypted `s`, `se`, encrypted 32-byte wrapping key).
pub const MESSAGE3_LEN: usize = 96;

/// A 32-byte secret key, wiped on drop, never printed.
#[derive(Clone)]
pub struct Key32(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key32(***SECRET***)")
    }
}

impl Key32 {
    /// Wraps 32 bytes; `None` for another length.
    pub fn from_slice(bytes: &[u8]) -> Option<Key32> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Key32(Zeroizing::new(arr)))
    }
    /// 32 random bytes.
    pub fn random() -> Key32 {
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(&super::random_bytes(32));
        Key32(k)
    }
    /// The key bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

fn hkdf32(ikm: &[u8], salt: Option<&[u8]>, info: &[u8]) -> Key32 {
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is always a valid HKDF-SHA-256 output length.
    let _ = Hkdf::<Sha256>::new(salt, ikm).expand(info, out.as_mut());
    Key32(out)
}

/// A tenant's 32-byte seed: the `tsk_…` private key. Lives only on the client.
pub struct TenantSeed(Key32);

impl std::fmt::Debug for TenantSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantSeed(***SECRET***)")
    }
}

impl TenantSeed {
    /// A fresh random seed.
    pub fn generate() -> TenantSeed {
        TenantSeed(Key32::random())
    }
    /// Parses `tsk_` + base64url(32 bytes).
    pub fn parse(s: &str) -> Result<TenantSeed> {
        let bad = || {
            Error::bad_request("a tenant private key is tsk_ followed by 43 base64url characters")
        };
        let body = s.trim().strip_prefix(TENANT_KEY_PREFIX).ok_or_else(bad)?;
        let bytes = Zeroizing::new(super::unb64(body).ok_or_else(bad)?);
        Key32::from_slice(&bytes).map(TenantSeed).ok_or_else(bad)
    }
    /// The `tsk_…` text, shown once.
    pub fn encode(&self) -> SecretToken {
        SecretToken::new(format!("{TENANT_KEY_PREFIX}{}", super::b64(self.0.bytes())))
    }
    /// The client's static X25519 private key.
    pub fn static_private(&self) -> Key32 {
        hkdf32(self.0.bytes(), None, STATIC_LABEL)
    }
    /// The client's static X25519 public key: what the server registers.
    pub fn static_public(&self) -> [u8; 32] {
        public_key(&self.static_private())
    }
    /// The wrapping key that wraps the tenant data key.
    pub fn wrapping_key(&self) -> Key32 {
        hkdf32(self.0.bytes(), None, WRAP_LABEL)
    }
}

/// The X25519 public key of a private key.
pub fn public_key(private: &Key32) -> [u8; 32] {
    let s = x25519::Scalar(*private.bytes());
    x25519::scalarmult_base(&s).0
}

/// Whether `pk` is unusable as an X25519 public key: wrong length, all zero, or of low order.
///
/// Clamped scalars are multiples of the cofactor 8, so a low-order point gives an all-zero
/// product with every scalar; libsodium reports exactly that as an error.
pub fn is_weak_public_key(pk: &[u8]) -> bool {
    let Ok(arr) = <[u8; 32]>::try_from(pk) else {
        return true;
    };
    let probe = x25519::Scalar([0x5a; 32]);
    x25519::scalarmult(&probe, &x25519::GroupElement(arr)).is_err()
}

/// The Noise prologue for a tenant.
pub fn prologue(tenant_id: &str) -> Vec<u8> {
    format!("{PROLOGUE_PREFIX}{tenant_id}").into_bytes()
}

fn params() -> Result<snow::params::NoiseParams> {
    NOISE_PARAMS.parse().map_err(Error::internal)
}

/// The key that seals a session's wrapping key under its token: HKDF-SHA-256 with the raw
/// token as input and a pepper-derived salt. Distinct from the keyed hash that stores the
/// token, so the stored hash does not open the seal.
pub fn session_seal_key(token: &str, salt: &[u8; 32]) -> Key32 {
    hkdf32(token.as_bytes(), Some(salt), SESSION_SEAL_LABEL)
}

/// The server side of one handshake, between message 2 and message 3.
pub struct Responder {
    state: snow::HandshakeState,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Responder")
    }
}

/// What message 3 proved and carried.
#[derive(Debug)]
pub struct Finished {
    /// The client's static public key (to compare with the tenant's registered one).
    pub remote_static: [u8; 32],
    /// The wrapping key from message 3's payload.
    pub wrapping_key: Key32,
    /// The Noise handshake hash.
    pub handshake_hash: Vec<u8>,
}

/// Reads message 1 and writes message 2. `fixed_ephemeral` only for the test vector.
pub fn respond(
    server_static: &Key32,
    tenant_id: &str,
    message1: &[u8],
    fixed_ephemeral: Option<&Key32>,
) -> Result<(Responder, Vec<u8>)> {
    if message1.len() != MESSAGE1_LEN {
        return Err(Error::bad_request(format!(
            "handshake message 1 must be {MESSAGE1_LEN} bytes"
        )));
    }
    if is_weak_public_key(&message1[..32]) {
        return Err(Error::bad_request(
            "handshake message 1 carries a low-order or all-zero public key",
        ));
    }
    let prologue = prologue(tenant_id);
    let mut b = snow::Builder::new(params()?)
        .local_private_key(server_static.bytes())
        .prologue(&prologue);
    if let Some(e) = fixed_ephemeral {
        b = b.fixed_ephemeral_key_for_testing_only(e.bytes());
    }
    let mut state = b.build_responder().map_err(Error::internal)?;
    let mut buf = [0u8; 64];
    state.read_message(message1, &mut buf).map_err(|_| {
        Error::bad_request(
            "handshake message 1 failed to authenticate: altered, for another tenant, or encrypted to another server key",
        )
    })?;
    let mut out = vec![0u8; 128];
    let n = state
        .write_message(&[], &mut out)
        .map_err(Error::internal)?;
    out.truncate(n);
    Ok((Responder { state }, out))
}

impl Responder {
    /// Reads message 3: the client's static key and the wrapping key.
    pub fn finish(mut self, message3: &[u8]) -> Result<Finished> {
        if message3.len() != MESSAGE3_LEN {
            return Err(Error::bad_request(format!(
                "handshake message 3 must be {MESSAGE3_LEN} bytes"
            )));
        }
        let mut payload = Zeroizing::new([0u8; 64]);
        let n = self
            .state
            .read_message(message3, payload.as_mut())
            .map_err(|_| {
                Error::bad_request(
                    "handshake message 3 failed to authenticate: altered or replayed",
                )
            })?;
        let remote: [u8; 32] = self
            .state
            .get_remote_static()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| Error::internal("no remote static key after message 3"))?;
        if is_weak_public_key(&remote) {
            return Err(Error::bad_request(
                "handshake message 3 carries a low-order or all-zero static key",
            ));
        }
        let wrapping_key = Key32::from_slice(&payload[..n]).ok_or_else(|| {
            Error::bad_request("handshake message 3 must carry the 32-byte wrapping key")
        })?;
        Ok(Finished {
            remote_static: remote,
            wrapping_key,
            handshake_hash: self.state.get_handshake_hash().to_vec(),
        })
    }
}

/// The client side of one handshake, between message 1 and message 2.
pub struct Initiator {
    state: snow::HandshakeState,
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Initiator")
    }
}

/// Starts a handshake as the client: writes message 1 to the pinned server key.
pub fn initiate(
    seed: &TenantSeed,
    server_public: &[u8],
    tenant_id: &str,
    fixed_ephemeral: Option<&Key32>,
) -> Result<(Initiator, Vec<u8>)> {
    if is_weak_public_key(server_public) {
        return Err(Error::bad_request(
            "the server's static key is not a valid X25519 public key",
        ));
    }
    let private = seed.static_private();
    let prologue = prologue(tenant_id);
    let mut b = snow::Builder::new(params()?)
        .local_private_key(private.bytes())
        .remote_public_key(server_public)
        .prologue(&prologue);
    if let Some(e) = fixed_ephemeral {
        b = b.fixed_ephemeral_key_for_testing_only(e.bytes());
    }
    let mut state = b.build_initiator().map_err(Error::internal)?;
    let mut out = vec![0u8; 128];
    let n = state
        .write_message(&[], &mut out)
        .map_err(Error::internal)?;
    out.truncate(n);
    Ok((Initiator { state }, out))
}

impl Initiator {
    /// Reads message 2 (authenticating the server) and writes message 3 carrying the wrapping
    /// key. Returns message 3 and the handshake hash.
    pub fn finish(mut self, message2: &[u8], wrapping_key: &Key32) -> Result<(Vec<u8>, Vec<u8>)> {
        if message2.len() != MESSAGE2_LEN || is_weak_public_key(&message2[..32]) {
            return Err(Error::bad_request(
                "the server's handshake message is malformed",
            ));
        }
        let mut buf = [0u8; 64];
        self.state.read_message(message2, &mut buf).map_err(|_| {
            Error::bad_request(
                "the server's handshake message failed to authenticate: this is not the pinned server",
            )
        })?;
        let mut out = vec![0u8; 160];
        let n = self
            .state
            .write_message(wrapping_key.bytes(), &mut out)
            .map_err(Error::internal)?;
        out.truncate(n);
        Ok((out, self.state.get_handshake_hash().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{b64, unb64};

    fn vector() -> serde_json::Value {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/vectors/handshake-xk.json"
        );
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn key(v: &serde_json::Value, name: &str) -> Key32 {
        Key32::from_slice(&unb64(v[name].as_str().unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn seed_derivations_match_the_vector() {
        crate::crypto::init().unwrap();
        let v = vector();
        let seed = TenantSeed::parse(v["tenant_private_key"].as_str().unwrap()).unwrap();
        assert_eq!(
            b64(seed.static_private().bytes()),
            v["client_static_private"]
        );
        assert_eq!(b64(&seed.static_public()), v["client_static_public"]);
        assert_eq!(b64(seed.wrapping_key().bytes()), v["wrapping_key"]);
        assert_eq!(seed.encode().expose(), v["tenant_private_key"]);
        assert_eq!(
            String::from_utf8(prologue(v["tenant_id"].as_str().unwrap())).unwrap(),
            v["prologue_utf8"]
        );
        let server = key(&v, "server_static_private");
        assert_eq!(b64(&public_key(&server)), v["server_static_public"]);
    }

    #[test]
    fn snow_both_sides_reproduce_the_vector() {
        crate::crypto::init().unwrap();
        let v = vector();
        let tenant = v["tenant_id"].as_str().unwrap();
        let seed = TenantSeed::parse(v["tenant_private_key"].as_str().unwrap()).unwrap();
        let server_pub = unb64(v["server_static_public"].as_str().unwrap()).unwrap();
        let (client, m1) = initiate(
            &seed,
            &server_pub,
            tenant,
            Some(&key(&v, "client_ephemeral_private")),
        )
        .unwrap();
        assert_eq!(b64(&m1), v["message1"]);
        let (server, m2) = respond(
            &key(&v, "server_static_private"),
            tenant,
            &m1,
            Some(&key(&v, "server_ephemeral_private")),
        )
        .unwrap();
        assert_eq!(b64(&m2), v["message2"]);
        let (m3, hash) = client.finish(&m2, &seed.wrapping_key()).unwrap();
        assert_eq!(b64(&m3), v["message3"]);
        assert_eq!(b64(&hash), v["handshake_hash"]);
        let done = server.finish(&m3).unwrap();
        assert_eq!(b64(&done.remote_static), v["client_static_public"]);
        assert_eq!(b64(done.wrapping_key.bytes()), v["wrapping_key"]);
        assert_eq!(b64(&done.handshake_hash), v["handshake_hash"]);
    }

    #[test]
    fn weak_keys_and_tampering_are_refused() {
        crate::crypto::init().unwrap();
        assert!(is_weak_public_key(&[0u8; 32]));
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(is_weak_public_key(&one));
        assert!(is_weak_public_key(&[1u8; 31]));
        assert!(!is_weak_public_key(&public_key(&Key32::random())));
        let v = vector();
        let tenant = v["tenant_id"].as_str().unwrap();
        let server = key(&v, "server_static_private");
        let mut m1 = unb64(v["message1"].as_str().unwrap()).unwrap();
        m1[..32].copy_from_slice(&[0u8; 32]);
        assert!(respond(&server, tenant, &m1, None).is_err());
        let mut m1 = unb64(v["message1"].as_str().unwrap()).unwrap();
        m1[40] ^= 1;
        assert!(respond(&server, tenant, &m1, None).is_err());
        let m1 = unb64(v["message1"].as_str().unwrap()).unwrap();
        assert!(respond(&server, "ten_ffffffffffffffff", &m1, None).is_err());
        let (srv, _) = respond(
            &server,
            tenant,
            &m1,
            Some(&key(&v, "server_ephemeral_private")),
        )
        .unwrap();
        let mut m3 = unb64(v["message3"].as_str().unwrap()).unwrap();
        m3[70] ^= 1;
        assert!(srv.finish(&m3).is_err());
    }

    #[test]
    fn secrets_do_not_debug() {
        crate::crypto::init().unwrap();
        let s = TenantSeed::generate();
        let text = s.encode().expose().to_owned();
        assert!(!format!("{s:?}").contains(&text[4..]));
        assert!(format!("{:?}", s.wrapping_key()).contains("SECRET"));
    }
}
