//! EdDSA (Ed25519) JSON Web Tokens: key generation, signing, and strict verification.
//!
//! Keys are made from a 32-byte random seed (libsodium derives the public key); `jsonwebtoken`
//! signs with the seed wrapped in its fixed RFC 8410 PKCS#8 envelope. The key id is the RFC 7638
//! JWK thumbprint. Verification refuses before any signature check every header that is not
//! exactly ours: an `alg` other than `EdDSA` (so `none` and HS256-with-the-public-key never
//! reach a verifier), `jku`/`jwk`/`x5u`/`x5c`/`crit` (a token must not name its own key), and a
//! missing or unknown `kid`. Then `jsonwebtoken` checks the signature with the algorithm pinned,
//! and `exp`, `iss`, `aud` and `sub` as required claims.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sodiumoxide::crypto::sign::ed25519;
use zeroize::Zeroizing;

use super::{b64, random_bytes, unb64};

/// The only algorithm Gatehouse signs or accepts.
pub const ALG: &str = "EdDSA";

/// RFC 8410 PKCS#8 v1 prefix of an Ed25519 private key; the 32-byte seed follows.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A fresh Ed25519 key: seed (secret) and public key.
pub struct NewKey {
    /// The RFC 7638 thumbprint, used as `kid`.
    pub kid: String,
    /// The 32-byte public key.
    pub public: [u8; 32],
    /// The 32-byte private seed. Wiped on drop; never printed.
    pub seed: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewKey({}, seed: ***SECRET***)", self.kid)
    }
}

/// Generates a new Ed25519 key pair.
pub fn generate() -> NewKey {
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&random_bytes(32));
    let public = public_of(&seed);
    NewKey {
        kid: thumbprint(&public),
        public,
        seed,
    }
}

/// The public key belonging to a seed.
pub fn public_of(seed: &[u8; 32]) -> [u8; 32] {
    let (pk, _sk) = ed25519::keypair_from_seed(&ed25519::Seed(*seed));
    pk.0
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url) of an Ed25519 public key.
pub fn thumbprint(public: &[u8; 32]) -> String {
    // Members in lexicographic order, no whitespace, as RFC 7638 §3 requires.
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(public));
    b64(&Sha256::digest(canonical.as_bytes()))
}

/// Signs with one key; the private part never leaves it.
#[derive(Clone)]
pub struct Signer {
    kid: String,
    key: EncodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.kid)
    }
}

impl Signer {
    /// A signer from a 32-byte seed.
    pub fn from_seed(kid: &str, seed: &[u8; 32]) -> Signer {
        let mut der = Zeroizing::new(Vec::with_capacity(48));
        der.extend_from_slice(&PKCS8_ED25519_PREFIX);
        der.extend_from_slice(seed);
        Signer {
            kid: kid.to_owned(),
            key: EncodingKey::from_ed_der(&der),
        }
    }

    /// The key id put in the header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs claims as a compact JWT with header `{"typ":"JWT","alg":"EdDSA","kid":…}`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| format!("jwt signing: {e}"))
    }
}

/// A public verification key.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

impl Verifier {
    /// From a raw 32-byte Ed25519 public key.
    pub fn from_public(public: &[u8; 32]) -> Verifier {
        Verifier {
            key: DecodingKey::from_ed_der(public),
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Not a JWT at all: wrong number of parts, bad base64, header not JSON (a 400).
    Malformed,
    /// A JWT we refuse; the text says why (a 401). Never contains token material.
    Invalid(&'static str),
    /// A JWT whose `exp` has passed (a 401).
    Expired,
}

/// What the header told us; only returned once every check passed.
#[derive(Debug, Clone)]
pub struct CheckedHeader {
    /// The key id.
    pub kid: String,
}

/// Reads and checks a token's header without trusting anything in it.
pub fn check_header(token: &str) -> Result<CheckedHeader, Rejection> {
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::Malformed);
    };
    let raw = unb64(h).ok_or(Rejection::Malformed)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&raw).map_err(|_| Rejection::Malformed)?;
    match header.get("alg").and_then(|v| v.as_str()) {
        Some(ALG) => {}
        Some(_) => return Err(Rejection::Invalid("Token algorithm is not accepted")),
        None => return Err(Rejection::Malformed),
    }
    for forbidden in ["jku", "jwk", "x5u", "x5c", "crit"] {
        if header.contains_key(forbidden) {
            return Err(Rejection::Invalid(
                "Token header names its own key; refused",
            ));
        }
    }
    if let Some(typ) = header.get("typ") {
        if !typ.as_str().is_some_and(|t| t.eq_ignore_ascii_case("JWT")) {
            return Err(Rejection::Invalid("Token type header is not JWT"));
        }
    }
    let kid = header
        .get("kid")
        .and_then(|v| v.as_str())
        .filter(|k| !k.is_empty() && k.len() <= 128)
        .ok_or(Rejection::Invalid("Token has no key id"))?;
    Ok(CheckedHeader {
        kid: kid.to_owned(),
    })
}

/// What a token must carry besides a good signature.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// The one accepted issuer.
    pub issuer: &'a str,
    /// The one accepted audience.
    pub audience: &'a str,
    /// Clock-skew allowance for `exp`, in seconds.
    pub leeway_secs: u64,
}

/// Verifies the signature with `key` (chosen by the caller from the checked `kid`) and the
/// registered claims, then deserialises the claims.
pub fn verify<T: DeserializeOwned>(
    token: &str,
    key: &Verifier,
    expect: &Expect<'_>,
) -> Result<T, Rejection> {
    let mut v = Validation::new(Algorithm::EdDSA);
    v.algorithms = vec![Algorithm::EdDSA];
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.set_issuer(&[expect.issuer]);
    v.set_audience(&[expect.audience]);
    v.validate_exp = true;
    v.validate_aud = true;
    v.leeway = expect.leeway_secs;
    match jsonwebtoken::decode::<T>(token, &key.key, &v) {
        Ok(data) => Ok(data.claims),
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind as K;
            Err(match e.kind() {
                K::ExpiredSignature => Rejection::Expired,
                K::InvalidIssuer => Rejection::Invalid("Token issuer is not accepted"),
                K::InvalidAudience => Rejection::Invalid("Token audience is not accepted"),
                K::MissingRequiredClaim(_) => Rejection::Invalid("Token lacks a required claim"),
                K::InvalidSignature => Rejection::Invalid("Token signature is invalid"),
                K::InvalidAlgorithm => Rejection::Invalid("Token algorithm is not accepted"),
                K::Base64(_) | K::Utf8(_) | K::InvalidToken => Rejection::Malformed,
                _ => Rejection::Invalid("Token is invalid"),
            })
        }
    }
}

/// The JWK (RFC 8037 OKP) of a public key, for the JWKS document.
pub fn public_jwk(kid: &str, public: &[u8; 32]) -> serde_json::Value {
    serde_json::json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64(public),
        "kid": kid,
        "alg": ALG,
        "use": "sig",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize)]
    struct C {
        iss: String,
        aud: String,
        sub: String,
        exp: i64,
    }

    fn claims(exp: i64) -> C {
        C {
            iss: "i".into(),
            aud: "a".into(),
            sub: "1".into(),
            exp,
        }
    }

    const E: Expect<'static> = Expect {
        issuer: "i",
        audience: "a",
        leeway_secs: 0,
    };

    #[test]
    fn sign_and_verify_roundtrip() {
        crate::crypto::init().unwrap();
        let k = generate();
        let s = Signer::from_seed(&k.kid, &k.seed);
        let t = s
            .sign(&claims(chrono::Utc::now().timestamp() + 60))
            .unwrap();
        assert_eq!(check_header(&t).unwrap().kid, k.kid);
        let c: C = verify(&t, &Verifier::from_public(&k.public), &E).unwrap();
        assert_eq!(c.sub, "1");
        let other = generate();
        assert_eq!(
            verify::<C>(&t, &Verifier::from_public(&other.public), &E).err(),
            Some(Rejection::Invalid("Token signature is invalid"))
        );
        let old = s
            .sign(&claims(chrono::Utc::now().timestamp() - 10))
            .unwrap();
        assert_eq!(
            verify::<C>(&old, &Verifier::from_public(&k.public), &E).err(),
            Some(Rejection::Expired)
        );
        assert!(!format!("{k:?}").contains(&b64(&k.seed[..])));
    }

    #[test]
    fn hostile_headers() {
        let body = b64(br#"{"sub":"1"}"#);
        for (h, want) in [
            (
                r#"{"alg":"none","kid":"x"}"#,
                "Token algorithm is not accepted",
            ),
            (
                r#"{"alg":"HS256","kid":"x"}"#,
                "Token algorithm is not accepted",
            ),
            (
                r#"{"alg":"EdDSA","kid":"x","jku":"http://e"}"#,
                "Token header names its own key; refused",
            ),
            (
                r#"{"alg":"EdDSA","kid":"x","jwk":{}}"#,
                "Token header names its own key; refused",
            ),
            (
                r#"{"alg":"EdDSA","kid":"x","x5u":"http://e"}"#,
                "Token header names its own key; refused",
            ),
            (r#"{"alg":"EdDSA"}"#, "Token has no key id"),
        ] {
            let t = format!("{}.{body}.", b64(h.as_bytes()));
            assert_eq!(
                check_header(&t).err(),
                Some(Rejection::Invalid(want)),
                "{h}"
            );
        }
        assert_eq!(check_header("eyJ.x").err(), Some(Rejection::Malformed));
        assert_eq!(
            check_header("eyJhbGc.a.b").err(),
            Some(Rejection::Malformed)
        );
    }

    #[test]
    fn thumbprint_matches_rfc8037_example() {
        // RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key.
        let x = unb64("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap();
        let mut public = [0u8; 32];
        public.copy_from_slice(&x);
        assert_eq!(
            thumbprint(&public),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        // RFC 8037 A.1/A.2: the public key belongs to this seed.
        let d = unb64("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap();
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&d);
        crate::crypto::init().unwrap();
        assert_eq!(public_of(&seed), public);
    }
}
