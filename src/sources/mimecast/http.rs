//! Mimecast's HTTP semantics, as hooks the shared transport calls: its quota headers, and its
//! errors as it sends them, whatever the HTTP status:
//! - API 1.0: `{"meta":{"status":N},"fail":[{"errors":[{"code","message","retryable"}]}]}`, often
//!   inside HTTP 200 (`err_developer_key`, recorded with HTTP 200 and `meta.status` 200);
//! - API 2.0: `{"fail":[{"code","message"}]}` with no `errors` wrapper (Azure Sentinel's
//!   connector reads `fail[0].code` of a 401);
//! - HTTP 418: the API 1.0 key binding (access key / secret key) expired;
//! - HTTP 404 and 403 on a data endpoint: not offered to this tenant (see docs/vendors/
//!   mimecast-api.md).

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::models::Fail;
use crate::http::{VendorError, VendorHttp};
use crate::model::{FailureReason, Retry};

/// Mimecast's rules: `X-RateLimit-Remaining` / `X-RateLimit-Reset` (milliseconds until a call
/// is added back), `fail[]` error bodies in both API generations, HTTP 418 as an expired key
/// binding.
#[derive(Debug, Clone, Copy, Default)]
pub struct MimecastHttp;

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl VendorHttp for MimecastHttp {
    fn rate_limit_reset(&self, headers: &HeaderMap) -> Option<Duration> {
        header_u64(headers, "x-ratelimit-reset").map(Duration::from_millis)
    }

    fn quota_exhausted(&self, headers: &HeaderMap) -> bool {
        header_u64(headers, "x-ratelimit-remaining") == Some(0)
    }

    /// Every non-2xx answer but 429.
    fn read_error(&self, status: u16, body: &[u8]) -> Option<VendorError> {
        let fail = serde_json::from_slice::<ErrorBody>(body).map(|b| b.fail);
        let fail = fail.unwrap_or_default().unwrap_or_default();
        let errors = errors_of(&fail);
        let detail = Some(describe(&errors)).filter(|d| !d.is_empty());
        if status == 418 {
            let text = "the API 1.0 key binding expired: create new access and secret keys for \
                        the application in the Mimecast console";
            return Some(VendorError {
                detail: detail.map_or(text.into(), |d| format!("{text} ({d})")),
                reason: Some(FailureReason::Auth),
                retry: Retry::Backoff,
            });
        }
        // Mimecast's response codes: 404 "the request URL does not exist", 403 "access is
        // denied to the requested resource" (valid credentials, not enough permission). Either
        // is an endpoint this tenant or its API application does not offer, unless the codes
        // refuse the credential.
        let refuses_credential = errors.iter().any(|e| is_auth_code(code(e)));
        let retry = match status {
            404 => Retry::NotOffered,
            403 if !refuses_credential => Retry::NotOffered,
            _ => Retry::Backoff,
        };
        if errors.is_empty() && retry == Retry::Backoff {
            return None;
        }
        let expired = errors.iter().any(|e| code(e).contains("binding_expired"));
        Some(VendorError {
            detail: detail
                .unwrap_or_else(|| "not offered to this tenant or API application".into()),
            reason: expired.then_some(FailureReason::Auth),
            retry,
        })
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    fail: Option<Vec<Fail>>,
}

/// `err_developer_key` ("App ID is invalid") is a known intermittent error of API 1.0: the
/// production clients retry it before believing it.
const INTERMITTENT_CODE: &str = "err_developer_key";

/// Every error of a `fail[]` list, in both shapes: an entry's `errors[]`, else the entry
/// itself when it has a code or a message.
pub(crate) fn errors_of(fail: &[Fail]) -> Vec<&Fail> {
    let mut out = Vec::new();
    for f in fail {
        if f.errors.is_empty() {
            out.extend(Some(f).filter(|f| f.code.is_some() || f.message.is_some()));
        } else {
            out.extend(&f.errors);
        }
    }
    out
}

fn code(e: &Fail) -> &str {
    e.code.as_deref().unwrap_or_default()
}

/// Worth another attempt: the vendor says so, or it is the known intermittent error.
pub(crate) fn should_retry(errors: &[&Fail]) -> bool {
    let again = |e: &&Fail| e.retryable == Some(true) || code(e) == INTERMITTENT_CODE;
    !errors.is_empty() && errors.iter().all(again)
}

fn is_auth_code(code: &str) -> bool {
    let code = code.to_ascii_lowercase();
    (code.starts_with("err_xdk_") && !code.contains("rate_limit"))
        || code == INTERMITTENT_CODE
        || ["unauthorized", "authentication", "binding_expired"]
            .iter()
            .any(|c| code.contains(c))
}

/// The failure reason of a set of errors found in a 2xx answer.
pub(crate) fn reason_of(errors: &[&Fail]) -> FailureReason {
    if errors.iter().any(|e| is_auth_code(code(e))) {
        FailureReason::Auth
    } else if errors
        .iter()
        .any(|e| code(e).to_ascii_lowercase().contains("rate_limit"))
    {
        FailureReason::RateLimited
    } else {
        FailureReason::ApiError
    }
}

/// Vendor text is shown on the landing page and in logs: printable characters only, bounded.
fn clean(s: &str, max: usize) -> String {
    let printable = s.chars().map(|c| if c.is_control() { ' ' } else { c });
    printable.take(max).collect::<String>().trim().to_string()
}

/// `code message; code message`, bounded.
pub(crate) fn describe(errors: &[&Fail]) -> String {
    let text = |e: &&Fail| {
        let message = e.message.as_deref().unwrap_or_default();
        format!("{} {}", clean(code(e), 80), clean(message, 200))
    };
    let all: Vec<String> = errors.iter().map(|e| text(e).trim().to_string()).collect();
    clean(&all.join("; "), 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(json: &str) -> Vec<Fail> {
        serde_json::from_str(json).unwrap()
    }

    fn read_error_body(status: u16, body: &[u8]) -> Option<VendorError> {
        MimecastHttp.read_error(status, body)
    }

    #[test]
    fn both_generations_of_error_bodies() {
        let v1 = fail(
            r#"[{"errors":[{"code":"err_developer_key","message":"App ID is invalid: INVALID","retryable":false}]}]"#,
        );
        let v1 = errors_of(&v1);
        assert_eq!(code(v1[0]), "err_developer_key");
        assert!(should_retry(&v1));
        assert_eq!(reason_of(&v1), FailureReason::Auth);
        let v2 = fail(r#"[{"code":"unauthorized","message":"Invalid client credentials"}]"#);
        let v2 = errors_of(&v2);
        assert_eq!(v2[0].message.as_deref(), Some("Invalid client credentials"));
        assert!(!should_retry(&v2));
        let r = read_error_body(
            401,
            br#"{"fail":[{"code":"unauthorized","message":"bad"}]}"#,
        )
        .unwrap();
        assert_eq!(r.detail, "unauthorized bad");
        assert_eq!(r.reason, None);
        let retry =
            fail(r#"[{"errors":[{"code":"err_internal","message":"x","retryable":true}]}]"#);
        let retry = errors_of(&retry);
        assert!(should_retry(&retry));
        assert_eq!(reason_of(&retry), FailureReason::ApiError);
        let rl = fail(r#"[{"errors":[{"code":"err_xdk_rate_limit_exceeded","message":"x"}]}]"#);
        assert_eq!(reason_of(&errors_of(&rl)), FailureReason::RateLimited);
        assert!(errors_of(&fail(r#"[{"key":"x"}]"#)).is_empty());
    }

    #[test]
    fn not_offered_is_a_404_or_a_403_that_refuses_no_credential() {
        let retry = |status, body: &[u8]| read_error_body(status, body).map(|v| v.retry);
        assert_eq!(retry(404, b""), Some(Retry::NotOffered));
        assert_eq!(retry(403, b"<html>"), Some(Retry::NotOffered));
        let xdk = br#"{"fail":[{"errors":[{"code":"err_xdk_invalid_access_key"}]}]}"#;
        assert_eq!(retry(403, xdk), Some(Retry::Backoff));
        assert_eq!(retry(401, b""), None);
    }

    #[test]
    fn http_418_is_an_expired_key_binding() {
        let r = read_error_body(418, b"").unwrap();
        assert_eq!(r.reason, Some(FailureReason::Auth));
        assert!(r.detail.contains("key binding expired"), "{}", r.detail);
        let r = read_error_body(
            418,
            br#"{"meta":{"status":418},"fail":[{"errors":[{"code":"err_xdk_binding_expired","message":"Binding expired"}]}]}"#,
        )
        .unwrap();
        assert!(r.detail.contains("err_xdk_binding_expired"), "{}", r.detail);
    }

    #[test]
    fn vendor_text_is_cleaned_and_bounded() {
        let long = "x".repeat(5000);
        let f = fail(&format!(r#"[{{"code":"c\nd","message":"{long}"}}]"#));
        let d = describe(&errors_of(&f));
        assert!(d.len() <= 300 && !d.contains('\n'), "{d}");
    }
}
