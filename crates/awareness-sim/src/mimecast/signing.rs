//! Mimecast API 1.0 request signing (HMAC-SHA1), as the simulated server verifies it: the
//! `mimecast-signature` crate (the client's own definition), keyed with the base64 secret as a
//! tenant is configured.

use mimecast_signature::{decode_secret_key, DATE_FORMAT};

/// The `x-mc-date` format: `Tue, 24 Nov 2015 12:50:11 UTC`.
pub const MC_DATE_FORMAT: &str = DATE_FORMAT;

/// The request signature; `None` when the secret key is not valid base64.
pub fn sign(
    secret_key_b64: &str,
    date: &str,
    req_id: &str,
    path: &str,
    app_key: &str,
) -> Option<String> {
    let key = decode_secret_key(secret_key_b64)?;
    Some(mimecast_signature::sign(&key, date, req_id, path, app_key))
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
    decode_secret_key(secret_key_b64).is_some_and(|key| {
        mimecast_signature::verify(&key, date, req_id, path, app_key, signature_b64)
    })
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
            "../../../../tests/fixtures/mimecast_hmac_vector.json"
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
