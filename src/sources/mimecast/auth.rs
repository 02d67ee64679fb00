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

    // The signature and the key decoding are the mimecast-signature crate's, tested there
    // against the Python vector (tests/fixtures/mimecast_hmac_vector.json).

    #[test]
    fn date_format_is_the_documented_one() {
        let t = chrono::Utc
            .with_ymd_and_hms(2015, 11, 24, 12, 50, 11)
            .unwrap();
        assert_eq!(mc_date(t), "Tue, 24 Nov 2015 12:50:11 UTC");
    }
}
