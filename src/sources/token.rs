//! Access tokens shared by the OAuth2 flows (CyberPilot password grant, Mimecast and Defender
//! client credentials): fetched once, cached, refreshed shortly before they expire.

use std::future::Future;
use std::time::{Duration, SystemTime};

use base64::Engine;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::http::{Refusal, Reply, Transport};
use crate::model::{FailureReason, FetchError};

/// Lifetime assumed when the server tells none.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Longest lifetime believed: a vendor's "valid for a century" still gets refreshed daily.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A vendor-given lifetime in seconds, within sane bounds: `None` for zero, negative or
/// non-finite values, at most [`MAX_LIFETIME`]. Never panics (`Duration::from_secs_f64` does
/// on huge or NaN values).
pub(crate) fn clamp_lifetime(secs: f64) -> Option<Duration> {
    let max = MAX_LIFETIME.as_secs_f64();
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs.min(max)))
}

/// One cached bearer token: the token and when to refresh it (zeroized when replaced or
/// dropped; the copies handed to a request live only as long as it), or the error of the
/// poll's failed fetch. The lock is held while fetching, so concurrent requests that all find
/// the token missing cause a single token request. A failed fetch is remembered until the next
/// poll begins: the sections of a poll share one token acquisition, so an unreachable token
/// endpoint fails the poll once instead of once per section.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    state: Mutex<Option<Result<Cached, FetchError>>>,
}

/// A token and when to refresh it.
type Cached = (Zeroizing<String>, Instant);

/// A token as issued: its value and how long it lives (`expires_in`, else a JWT's `exp`).
#[derive(Debug)]
pub(crate) struct Issued {
    pub value: String,
    pub lifetime: Option<Duration>,
}

impl TokenCache {
    /// The cached token, or a fresh one from `fetch` when there is none or it is about to expire.
    pub(crate) async fn get<Fut>(&self, fetch: impl FnOnce() -> Fut) -> Result<String, FetchError>
    where
        Fut: Future<Output = Result<Issued, FetchError>>,
    {
        let mut state = self.state.lock().await;
        match &*state {
            Some(Err(e)) => return Err(e.clone()),
            Some(Ok((token, refresh_at))) if Instant::now() < *refresh_at => {
                return Ok(token.to_string())
            }
            _ => {}
        }
        let issued = fetch()
            .await
            .inspect_err(|e| *state = Some(Err(e.clone())))?;
        let lifetime = issued.lifetime.unwrap_or(DEFAULT_LIFETIME);
        let refresh_at = Instant::now() + refresh_after(lifetime);
        *state = Some(Ok((Zeroizing::new(issued.value.clone()), refresh_at)));
        Ok(issued.value)
    }

    /// A new poll begins: the last poll's token failure is forgotten, so this poll tries again.
    pub(crate) async fn begin_poll(&self) {
        self.state.lock().await.take_if(|s| s.is_err());
    }

    /// Sends a request with `Authorization: Bearer` and the token `token` gives (this cache's,
    /// or one fetched into it). When the vendor answers 401 (a 403 is a missing permission,
    /// which a new token does not change), the refused token is forgotten and the request sent
    /// once more with a fresh one. A token already replaced by a concurrent request is left
    /// alone, so requests that were refused together cause one renewal, not one each.
    pub(crate) async fn fetch<T, TF, AF>(
        &self,
        transport: &Transport,
        endpoint: &'static str,
        token: impl Fn() -> TF,
        build: impl Fn() -> reqwest::RequestBuilder,
        accept: impl Fn(Reply) -> AF,
    ) -> Result<T, FetchError>
    where
        TF: Future<Output = Result<String, FetchError>>,
        AF: Future<Output = Result<T, Refusal>>,
    {
        let first = token().await?;
        let result = transport.fetch(endpoint, || build().bearer_auth(&first), &accept);
        match result.await {
            Err(e) if e.status == Some(401) => {
                let refused =
                    |s: &mut Result<Cached, _>| matches!(s, Ok((t, _)) if t.as_str() == first);
                self.state.lock().await.take_if(refused);
                let fresh = token().await?;
                let build = || build().bearer_auth(&fresh);
                transport.fetch(endpoint, build, &accept).await
            }
            other => other,
        }
    }
}

/// Refresh a little before expiry: 10% of the lifetime, between 1 s and 5 min early.
pub(crate) fn refresh_after(lifetime: Duration) -> Duration {
    let margin = (lifetime / 10).clamp(Duration::from_secs(1), Duration::from_secs(300));
    lifetime.saturating_sub(margin)
}

/// The remaining lifetime of a JWT from its `exp` claim (the signature is not ours to check).
pub(crate) fn jwt_lifetime(token: &str, now: SystemTime) -> Option<Duration> {
    let payload = token.split('.').nth(1)?.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let now = now.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    clamp_lifetime(claims.get("exp")?.as_f64()? - now.as_secs_f64())
}

/// Asks a token endpoint for a token (`build` makes the request, for every attempt) and reads
/// the OAuth2 answer (`access_token`, optional `expires_in`) inside the transport's retry loop;
/// `what` names the step in the error ("login failed: ...").
pub(crate) async fn request_token(
    transport: &Transport,
    endpoint: &'static str,
    what: &str,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Issued, FetchError> {
    let read =
        |reply: Reply| async move { parse_token_response(&reply.body).map_err(Refusal::fatal) };
    let issued = transport.send(endpoint, true, &build, read).await;
    issued.map_err(|e| FetchError {
        message: format!("{what} failed: {}", e.message),
        ..e
    })
}

/// Reads an OAuth2 token response (`access_token`, optional `expires_in` as a number or
/// numeric text; anything else there means "not told", no reason to refuse a token).
pub(crate) fn parse_token_response(body: &[u8]) -> Result<Issued, FetchError> {
    #[derive(Deserialize)]
    struct TokenResponse {
        access_token: Option<String>,
        expires_in: Option<serde_json::Value>,
    }
    let parsed: TokenResponse = serde_json::from_slice(body).map_err(|e| {
        let message = format!("token response is not JSON: {e}");
        FetchError::new(FailureReason::Decode, message)
    })?;
    let Some(value) = parsed.access_token.filter(|t| !t.is_empty()) else {
        let message = "token response has no access_token";
        return Err(FetchError::new(FailureReason::Auth, message));
    };
    let expires_in = parsed.expires_in.as_ref();
    let secs = expires_in.and_then(|v| v.as_f64().or_else(|| v.as_str()?.trim().parse().ok()));
    let jwt = || jwt_lifetime(&value, SystemTime::now());
    let lifetime = secs.and_then(clamp_lifetime).or_else(jwt);
    Ok(Issued { value, lifetime })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    use std::sync::Arc;

    /// Answers 200 `ok` only to `Bearer fresh`, `refusal` to anything else; counts requests.
    async fn bearer_vendor(refusal: u16) -> (String, Arc<AtomicU32>) {
        let count = Arc::new(AtomicU32::new(0));
        let seen = count.clone();
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
            seen.fetch_add(1, SeqCst);
            let ok = headers
                .get("authorization")
                .is_some_and(|v| v == "Bearer fresh");
            let status = if ok { 200 } else { refusal };
            async move { (axum::http::StatusCode::from_u16(status).unwrap(), "ok") }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, count)
    }

    fn transport() -> Transport {
        let poll = crate::config::PollConfig {
            max_attempts: 2,
            retry_backoff: Duration::from_millis(1),
            ..Default::default()
        };
        let global = Arc::new(tokio::sync::Semaphore::new(8));
        let plain = Arc::new(crate::http::PlainHttp);
        let stats = Arc::default();
        let scrub = crate::http::Scrub::default();
        Transport::new(crate::http::client(), stats, poll, global, plain, scrub)
    }

    fn issued(value: &str) -> Result<Issued, FetchError> {
        let value = value.to_string();
        Ok(Issued {
            value,
            lifetime: None,
        })
    }

    #[tokio::test]
    async fn a_refused_bearer_token_is_renewed_once_and_only_once() {
        let t = transport();
        let ok = |r: Reply| async move { Ok::<_, Refusal>(r) };

        // A stale cached token, then a fresh one: one renewal, success, the fresh one cached.
        let (url, count) = bearer_vendor(401).await;
        let cache = TokenCache::default();
        cache.get(|| async { issued("stale") }).await.unwrap();
        let token = || cache.get(|| async { issued("fresh") });
        let build = || t.client().get(&url);
        let reply = cache.fetch(&t, "x", token, build, ok).await.unwrap();
        assert_eq!(&reply.body[..], b"ok");
        assert_eq!(count.load(SeqCst), 2);
        let cached = cache.get(|| async { issued("unused") }).await;
        assert_eq!(cached.unwrap(), "fresh");

        // Refused again after renewal: the second refusal stands (two requests, no loop).
        let (url, count) = bearer_vendor(401).await;
        let token = || async { Ok("revoked".to_string()) };
        let build = || t.client().get(&url);
        let e = TokenCache::default().fetch(&t, "x", token, build, ok).await;
        assert_eq!(e.unwrap_err().reason, FailureReason::Auth);
        assert_eq!(count.load(SeqCst), 2);

        // A failed token fetch sends nothing.
        let (url, count) = bearer_vendor(401).await;
        let token = || async { Err(FetchError::new(FailureReason::Timeout, "token timed out")) };
        let build = || t.client().get(&url);
        let e = TokenCache::default().fetch(&t, "x", token, build, ok).await;
        assert_eq!(e.unwrap_err().reason, FailureReason::Timeout);
        assert_eq!(count.load(SeqCst), 0);

        // A 403 is a missing permission, not an expired token: no renewal (Defender's licence
        // or consent, a CyberPilot role).
        let (url, count) = bearer_vendor(403).await;
        let asked = AtomicU32::new(0);
        let token = || async {
            asked.fetch_add(1, SeqCst);
            Ok("stale".to_string())
        };
        let build = || t.client().get(&url);
        let e = TokenCache::default().fetch(&t, "x", token, build, ok).await;
        assert_eq!(e.unwrap_err().reason, FailureReason::Auth);
        assert_eq!((count.load(SeqCst), asked.load(SeqCst)), (1, 1));
    }

    #[test]
    fn refresh_margin_is_bounded() {
        assert_eq!(
            refresh_after(Duration::from_secs(1800)),
            Duration::from_secs(1620)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(5)),
            Duration::from_secs(4)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(36000)),
            Duration::from_secs(35700)
        );
    }

    #[test]
    fn jwt_exp_is_read() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":1100}"#);
        let token = format!("h.{payload}.s");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(jwt_lifetime(&token, now), Some(Duration::from_secs(100)));
        assert_eq!(jwt_lifetime("opaque-token", now), None);
    }

    #[tokio::test]
    async fn the_cached_token_is_zeroized_when_dropped() {
        fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>(_: &T) {}
        let cache = TokenCache::default();
        let fetch = || async {
            Ok(Issued {
                value: "tok".into(),
                lifetime: None,
            })
        };
        assert_eq!(cache.get(fetch).await.unwrap(), "tok");
        let guard = cache.state.lock().await;
        let (cached, _) = guard.as_ref().unwrap().as_ref().unwrap();
        zeroized_on_drop(cached);
        assert_eq!(cached.as_str(), "tok");
    }

    #[tokio::test]
    async fn a_failed_fetch_is_not_repeated_within_a_poll() {
        let cache = TokenCache::default();
        let calls = std::sync::atomic::AtomicU32::new(0);
        let fetch = || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err::<Issued, _>(FetchError::new(FailureReason::Timeout, "token timed out"))
        };
        for _ in 0..6 {
            let e = cache.get(fetch).await.unwrap_err();
            assert_eq!(e.message, "token timed out");
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        cache.begin_poll().await;
        assert!(cache.get(fetch).await.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    fn jwt_with(claims: &str) -> String {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.as_bytes());
        format!("h.{payload}.s")
    }

    /// A vendor's absurd lifetime must neither panic nor pin a token for ever.
    #[test]
    fn absurd_lifetimes_are_clamped_not_panicking() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(
            jwt_lifetime(&jwt_with(r#"{"exp":1e30}"#), now),
            Some(MAX_LIFETIME)
        );
        assert_eq!(
            jwt_lifetime(&jwt_with(r#"{"exp":1.7976931348623157e308}"#), now),
            Some(MAX_LIFETIME)
        );
        assert_eq!(jwt_lifetime(&jwt_with(r#"{"exp":-1e30}"#), now), None);
        assert_eq!(jwt_lifetime(&jwt_with(r#"{"exp":500}"#), now), None);
        for secs in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -5.0,
            0.0,
            -1e300,
        ] {
            assert_eq!(clamp_lifetime(secs), None, "{secs}");
        }
        assert_eq!(clamp_lifetime(1e30), Some(MAX_LIFETIME));
        assert_eq!(clamp_lifetime(1e12), Some(MAX_LIFETIME));
        assert_eq!(clamp_lifetime(3600.0), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn absurd_expires_in_is_clamped() {
        for (body, want) in [
            (
                r#"{"access_token":"t","expires_in":1e30}"#,
                Some(MAX_LIFETIME),
            ),
            (
                r#"{"access_token":"t","expires_in":"1e300"}"#,
                Some(MAX_LIFETIME),
            ),
            (r#"{"access_token":"t","expires_in":-30}"#, None),
            (r#"{"access_token":"t","expires_in":"NaN"}"#, None),
            (r#"{"access_token":"t","expires_in":"-inf"}"#, None),
            (
                r#"{"access_token":"t","expires_in":"3600"}"#,
                Some(Duration::from_secs(3600)),
            ),
            (r#"{"access_token":"t","expires_in":{"s":1}}"#, None),
        ] {
            let issued = parse_token_response(body.as_bytes()).unwrap();
            assert_eq!(issued.lifetime, want, "{body}");
        }
    }
}
