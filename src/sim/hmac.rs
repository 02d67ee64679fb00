//! Mimecast API 1.0 request signing (HMAC-SHA1), as the simulated server verifies it.
//!
//! signature = base64(HMAC-SHA1(key = base64decode(secret_key), msg = date ":" req_id ":" path
//! ":" app_key)), sent as `Authorization: MC {access_key}:{signature}`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::sources::mimecast::auth::signature_mac;

/// The `x-mc-date` format: `Tue, 24 Nov 2015 12:50:11 UTC`.
pub const MC_DATE_FORMAT: &str = "%a, %d %b %Y %H:%M:%S UTC";

/// The client's signature definition, keyed with the base64 secret as configured.
fn mac(
    secret_key_b64: &str,
    date: &str,
    req_id: &str,
    path: &str,
    app_key: &str,
) -> Option<Hmac<Sha1>> {
    let key = STANDARD.decode(secret_key_b64.trim()).ok()?;
    signature_mac(&key, date, req_id, path, app_key)
}

/// The request signature; `None` when the secret key is not valid base64.
pub fn sign(
    secret_key_b64: &str,
    date: &str,
    req_id: &str,
    path: &str,
    app_key: &str,
) -> Option<String> {
    let mac = mac(secret_key_b64, date, req_id, path, app_key)?;
    Some(STANDARD.encode(mac.finalize().into_bytes()))
}

/// Constant-time check of a received base64 signature.
pub fn verify(
    secret_key_b64: &str,
    date: &str,
    req_id: &str,
    path: &str,
    app_key: &str,
    signature_b64: &str,
) -> bool {
    let Ok(received) = STANDARD.decode(signature_b64.trim()) else {
        return false;
    };
    match mac(secret_key_b64, date, req_id, path, app_key) {
        Some(mac) => mac.verify_slice(&received).is_ok(),
        None => false,
    }
}

/// The current time as an `x-mc-date` value.
pub fn mc_date_now() -> String {
    chrono::Utc::now().format(MC_DATE_FORMAT).to_string()
}

/// Parse an `x-mc-date` value (`UTC` or `GMT` suffix) into unix seconds.
pub fn parse_mc_date(value: &str) -> Option<i64> {
    let value = value.trim();
    let normalized = value
        .strip_suffix(" GMT")
        .map(|s| format!("{s} UTC"))
        .unwrap_or_else(|| value.to_string());
    chrono::NaiveDateTime::parse_from_str(&normalized, MC_DATE_FORMAT)
        .ok()
        .map(|t| t.and_utc().timestamp())
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

    #[test]
    fn matches_python_vector() {
        let v: Vector = serde_json::from_str(include_str!(
            "../../tests/fixtures/mimecast_hmac_vector.json"
        ))
        .unwrap();
        let sig = sign(&v.secret_key_b64, &v.date, &v.req_id, &v.path, &v.app_key).unwrap();
        assert_eq!(sig, v.signature);
        assert!(verify(
            &v.secret_key_b64,
            &v.date,
            &v.req_id,
            &v.path,
            &v.app_key,
            &sig
        ));
        assert!(!verify(
            &v.secret_key_b64,
            &v.date,
            &v.req_id,
            "/api/other",
            &v.app_key,
            &sig
        ));
        assert!(sign("not base64!!", &v.date, &v.req_id, &v.path, &v.app_key).is_none());
        // The client signs with the same function: what it sends, the simulator accepts.
        let key = STANDARD.decode(&v.secret_key_b64).unwrap();
        let client =
            crate::sources::mimecast::auth::sign(&key, &v.date, &v.req_id, &v.path, &v.app_key);
        assert_eq!(client, v.signature);
        assert!(verify(
            &v.secret_key_b64,
            &v.date,
            &v.req_id,
            &v.path,
            &v.app_key,
            &client
        ));
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_mc_date("Tue, 24 Nov 2015 12:50:11 UTC"),
            Some(1_448_369_411)
        );
        assert_eq!(
            parse_mc_date("Tue, 24 Nov 2015 12:50:11 GMT"),
            Some(1_448_369_411)
        );
        assert_eq!(parse_mc_date("2015-11-24T12:50:11Z"), None);
        assert!(parse_mc_date(&mc_date_now()).is_some());
    }
}
