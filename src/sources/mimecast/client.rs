//! Mimecast requests, each authenticated: by an API 2.0 OAuth2 bearer token (client
//! credentials) that the poll's sections share, or by an API 1.0 HMAC-SHA1 signature. The
//! signature and the secret-key decoding are the `mimecast-signature` crate's: one definition
//! for this client and for the simulator that verifies it.

use mimecast_signature::{decode_secret_key, sign, DATE_FORMAT};
use zeroize::Zeroizing;

use super::config::MimecastAuth;
use super::MimecastSource;
use crate::config::Secret;
use crate::http::{Refusal, Reply};
use crate::model::{FailureReason, FetchError, Retry};
use crate::sources::token::request_token;

const API_PREFIX: &str = "/api/awareness-training/";
const TOKEN_ENDPOINT: &str = "oauth/token";

/// The decoded HMAC key (API 1.0), zeroized when dropped; `None` for OAuth2, or for a key that
/// is not base64 (which the config refuses).
pub(super) fn secret_key(auth: &MimecastAuth) -> Option<Zeroizing<Vec<u8>>> {
    match auth {
        MimecastAuth::Hmac { secret_key, .. } => {
            decode_secret_key(secret_key.expose()).map(Zeroizing::new)
        }
        MimecastAuth::OAuth2 { .. } => None,
    }
}

impl MimecastSource {
    /// The poll's bearer token: the cached one, or one requested with the client credentials.
    async fn bearer(&self, client_id: &str, client_secret: &Secret) -> Result<String, FetchError> {
        let url = format!("{}/{TOKEN_ENDPOINT}", self.config.base_url);
        let transport = &self.engine.transport;
        let issue = request_token(transport, TOKEN_ENDPOINT, "token request", || {
            transport.client().post(&url).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", client_secret.expose()),
            ])
        });
        // A refused token is the account's failure, never an endpoint not offered (a 403 or
        // 404 of the token endpoint reads as one in http.rs).
        let retry = Retry::Backoff;
        let issue = async { issue.await.map_err(|e| FetchError { retry, ..e }) };
        self.token.get(|| issue).await
    }

    /// Starts a poll: the engine's count and deadline and, for OAuth2, the token the poll's
    /// sections share (the last poll's token failure forgotten), so a failed token fails the
    /// whole poll at once.
    pub(super) async fn authenticate(&self) -> Result<(), FetchError> {
        self.engine.begin_poll();
        if let MimecastAuth::OAuth2 {
            client_id,
            client_secret,
        } = &self.config.auth
        {
            self.token.begin_poll().await;
            self.bearer(client_id, client_secret).await?;
        }
        Ok(())
    }

    /// One POST, authenticated, its answer handed to `accept`; for OAuth2 a refused token is
    /// replaced once.
    pub(super) async fn post<R, A, AF>(
        &self,
        endpoint: &'static str,
        body: &serde_json::Value,
        accept: A,
    ) -> Result<R, FetchError>
    where
        A: Fn(Reply) -> AF,
        AF: std::future::Future<Output = Result<R, Refusal>>,
    {
        let path = format!("{API_PREFIX}{endpoint}");
        let url = format!("{}{path}", self.config.base_url);
        let body = serde_json::to_vec(body).unwrap_or_default();
        let transport = &self.engine.transport;
        let request = || {
            transport
                .client()
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", "application/json")
                .body(body.clone())
        };
        match &self.config.auth {
            MimecastAuth::Hmac {
                app_id,
                app_key,
                access_key,
                ..
            } => {
                let secret = self.secret_key.as_ref().ok_or_else(|| {
                    let why = "secret_key is not valid base64; cannot sign requests";
                    FetchError::new(FailureReason::Auth, why)
                })?;
                let signed = || {
                    // Fresh date and request id per attempt: the signature covers both.
                    let date = chrono::Utc::now().format(DATE_FORMAT).to_string();
                    let req_id = uuid::Uuid::new_v4().to_string();
                    let signature = sign(secret, &date, &req_id, &path, app_key.expose());
                    let authorization = format!("MC {}:{signature}", access_key.expose());
                    request()
                        .header("x-mc-date", &date)
                        .header("x-mc-req-id", &req_id)
                        .header("x-mc-app-id", app_id)
                        .header("authorization", authorization)
                };
                transport.fetch(endpoint, signed, accept).await
            }
            MimecastAuth::OAuth2 {
                client_id,
                client_secret,
            } => {
                let token = || self.bearer(client_id, client_secret);
                let fetched = self
                    .token
                    .fetch(transport, endpoint, token, request, accept);
                fetched.await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    // The signature and the key decoding are the mimecast-signature crate's, tested there
    // against the Python vector (tests/fixtures/mimecast_hmac_vector.json).

    #[test]
    fn date_format_is_the_documented_one() {
        let t = chrono::Utc
            .with_ymd_and_hms(2015, 11, 24, 12, 50, 11)
            .unwrap();
        let date = t.format(super::DATE_FORMAT).to_string();
        assert_eq!(date, "Tue, 24 Nov 2015 12:50:11 UTC");
    }
}
