//! The Mimecast API 1.0 request signature: the one definition that the exporter's client signs
//! with and the simulator verifies with. Its own crate because the exporter (optionally)
//! depends on the simulator, so neither can hold it for the other.
//!
//! signature = base64(HMAC-SHA1(key = base64-decoded secret key,
//! message = `date:req_id:path:app_key`)), `path` being the URI path without host or query,
//! sent as `Authorization: MC {access_key}:{signature}` beside `x-mc-date` and `x-mc-req-id`.
//! The oracle is a vector computed independently with Python (tests/fixtures/mimecast_hmac_vector.json).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The `x-mc-date` format (chrono/strftime): `Tue, 24 Nov 2015 12:50:11 UTC`, always UTC.
pub const DATE_FORMAT: &str = "%a, %d %b %Y %H:%M:%S UTC";

/// The HMAC of an API 1.0 request, before encoding.
fn signature_mac(
    secret_key: &[u8],
    date: &str,
    req_id: &str,
    path: &str,
    app_key: &str,
) -> Option<Hmac<Sha1>> {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret_key).ok()?;
    mac.update(date.as_bytes());
    mac.update(b":");
    mac.update(req_id.as_bytes());
    mac.update(b":");
    mac.update(path.as_bytes());
    mac.update(b":");
    mac.update(app_key.as_bytes());
    Some(mac)
}

/// The base64 signature of a request, keyed with the decoded secret key.
pub fn sign(secret_key: &[u8], date: &str, req_id: &str, path: &str, app_key: &str) -> String {
    match signature_mac(secret_key, date, req_id, path, app_key) {
        Some(mac) => STANDARD.encode(mac.finalize().into_bytes()),
        // HMAC accepts keys of any length, so this cannot happen; an empty tag is never valid.
        None => String::new(),
    }
}

/// Whether `signature_b64` is the request's signature, compared in constant time.
pub fn verify(
    secret_key: &[u8],
    date: &str,
    req_id: &str,
    path: &str,
    app_key: &str,
    signature_b64: &str,
) -> bool {
    let Ok(received) = STANDARD.decode(signature_b64.trim()) else {
        return false;
    };
    signature_mac(secret_key, date, req_id, path, app_key)
        .is_some_and(|mac| mac.verify_slice(&received).is_ok())
}

/// Decodes a secret key as Mimecast issues it (standard base64); `None` if it is not base64 or
/// empty.
pub fn decode_secret_key(secret_key_b64: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret_key_b64.trim())
        .ok()
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Vector {
        secret_key_b64: String,
        date: String,
        req_id: String,
        path: String,
        app_key: String,
        signature: String,
    }

    fn vector() -> Vector {
        serde_json::from_str(include_str!(
            "../../../tests/fixtures/mimecast_hmac_vector.json"
        ))
        .unwrap()
    }

    /// The vector was computed with Python's hmac/hashlib/base64 modules, independently of
    /// this code.
    #[test]
    fn signature_matches_the_python_vector() {
        let v = vector();
        let key = decode_secret_key(&v.secret_key_b64).unwrap();
        assert_eq!(
            sign(&key, &v.date, &v.req_id, &v.path, &v.app_key),
            v.signature
        );
    }

    #[test]
    fn verify_accepts_the_vector_and_nothing_else() {
        let v = vector();
        let key = decode_secret_key(&v.secret_key_b64).unwrap();
        let ok = |path: &str, sig: &str| verify(&key, &v.date, &v.req_id, path, &v.app_key, sig);
        assert!(ok(&v.path, &v.signature));
        assert!(!ok("/api/other", &v.signature));
        assert!(!ok(&v.path, "not base64!!"));
        assert!(!ok(&v.path, ""));
    }

    #[test]
    fn bad_secret_keys_are_refused() {
        assert!(decode_secret_key("not base64!!").is_none());
        assert!(decode_secret_key("").is_none());
        assert!(decode_secret_key("  ").is_none());
    }
}
