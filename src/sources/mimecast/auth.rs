//! Mimecast authentication: API 2.0 OAuth2 client credentials, or API 1.0 HMAC-SHA1 signed
//! requests.

/// The request signature and the secret-key decoding are the `mimecast-signature` crate's: one
/// definition for this client and for the simulator that verifies it.
pub use mimecast_signature::{decode_secret_key, sign};

/// The `x-mc-date` form: `Tue, 24 Nov 2015 12:50:11 UTC`, always UTC.
pub fn mc_date(now: chrono::DateTime<chrono::Utc>) -> String {
    now.format(mimecast_signature::DATE_FORMAT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[derive(serde::Deserialize)]
    struct Vector {
        secret_key_b64: String,
        date: String,
        req_id: String,
        path: String,
        app_key: String,
        signature: String,
    }

    /// The vector was computed with Python's hmac/hashlib/base64 modules, independently of
    /// this code (see tests/fixtures/mimecast_hmac_vector.json).
    #[test]
    fn signature_matches_independent_vector() {
        let v: Vector = serde_json::from_str(include_str!(
            "../../../tests/fixtures/mimecast_hmac_vector.json"
        ))
        .unwrap();
        let key = decode_secret_key(&v.secret_key_b64).unwrap();
        assert_eq!(
            sign(&key, &v.date, &v.req_id, &v.path, &v.app_key),
            v.signature
        );
    }

    #[test]
    fn date_format_is_the_documented_one() {
        let t = chrono::Utc
            .with_ymd_and_hms(2015, 11, 24, 12, 50, 11)
            .unwrap();
        assert_eq!(mc_date(t), "Tue, 24 Nov 2015 12:50:11 UTC");
    }

    #[test]
    fn bad_secret_key_is_rejected() {
        assert!(decode_secret_key("not base64!!").is_none());
        assert!(decode_secret_key("").is_none());
    }
}
