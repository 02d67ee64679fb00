//! Mimecast's errors as it sends them, whatever the HTTP status:
//! - API 1.0: `{"meta":{"status":N},"fail":[{"errors":[{"code","message","retryable"}]}]}`, often
//!   inside HTTP 200 (`err_developer_key`, recorded with HTTP 200 and `meta.status` 200);
//! - API 2.0: `{"fail":[{"code","message"}]}` with no `errors` wrapper (Azure Sentinel's
//!   connector reads `fail[0].code` of a 401);
//! - HTTP 418: the API 1.0 key binding (access key / secret key) expired;
//! - HTTP 404 and 403 on a data endpoint: not offered to this tenant (see docs/vendors/
//!   mimecast-api.md).

use serde::Deserialize;

use super::models::Fail;
use crate::http::VendorError;
use crate::model::{FailureReason, Retry};

/// One vendor error, from either API generation.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

/// `err_developer_key` ("App ID is invalid") is a known intermittent error of API 1.0: the
/// production clients retry it before believing it.
pub const INTERMITTENT_CODE: &str = "err_developer_key";

/// Every error of a `fail[]` list, in both shapes.
pub fn errors_of(fail: &[Fail]) -> Vec<ApiError> {
    let mut out = Vec::new();
    for f in fail {
        for e in &f.errors {
            out.push(ApiError {
                code: e.code.clone().unwrap_or_default(),
                message: e.message.clone().unwrap_or_default(),
                retryable: e.retryable == Some(true),
            });
        }
        if f.errors.is_empty() && (f.code.is_some() || f.message.is_some()) {
            out.push(ApiError {
                code: f.code.clone().unwrap_or_default(),
                message: f.message.clone().unwrap_or_default(),
                retryable: f.retryable == Some(true),
            });
        }
    }
    out
}

/// Worth another attempt: the vendor says so, or it is the known intermittent error.
pub fn should_retry(errors: &[ApiError]) -> bool {
    !errors.is_empty()
        && errors
            .iter()
            .all(|e| e.retryable || e.code == INTERMITTENT_CODE)
}

fn is_auth_code(code: &str) -> bool {
    let code = code.to_ascii_lowercase();
    (code.starts_with("err_xdk_") && !code.contains("rate_limit"))
        || code == INTERMITTENT_CODE
        || code.contains("unauthorized")
        || code.contains("authentication")
        || code.contains("binding_expired")
}

/// The failure reason of a set of errors found in a 2xx answer.
pub fn reason_of(errors: &[ApiError]) -> FailureReason {
    if errors.iter().any(|e| is_auth_code(&e.code)) {
        FailureReason::Auth
    } else if errors
        .iter()
        .any(|e| e.code.to_ascii_lowercase().contains("rate_limit"))
    {
        FailureReason::RateLimited
    } else {
        FailureReason::ApiError
    }
}

/// Vendor text is shown on the landing page and in logs: printable characters only, bounded.
fn clean(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect::<String>()
        .trim()
        .to_string()
}

/// `code message; code message`, bounded.
pub fn describe(errors: &[ApiError]) -> String {
    let text = errors
        .iter()
        .map(|e| format!("{} {}", clean(&e.code, 80), clean(&e.message, 200)))
        .map(|s| s.trim().to_string())
        .collect::<Vec<_>>()
        .join("; ");
    clean(&text, 300)
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    fail: Option<Vec<Fail>>,
}

/// The transport's reader of Mimecast error answers (every non-2xx but 429).
pub fn read_error_body(status: u16, body: &[u8]) -> Option<VendorError> {
    let errors = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.fail)
        .map(|f| errors_of(&f))
        .unwrap_or_default();
    let detail = describe(&errors);
    if status == 418 {
        let mut text = "the API 1.0 key binding expired: create new access and secret keys for \
                        the application in the Mimecast console"
            .to_string();
        if !detail.is_empty() {
            text.push_str(&format!(" ({detail})"));
        }
        return Some(VendorError {
            detail: text,
            reason: Some(FailureReason::Auth),
            retry: Retry::Backoff,
        });
    }
    // Mimecast's response codes: 404 "the request URL does not exist", 403 "access is denied to
    // the requested resource" (valid credentials, not enough permission). Either is an endpoint
    // this tenant or its API application does not offer, unless the codes refuse the credential.
    let refuses_credential = errors.iter().any(|e| is_auth_code(&e.code));
    let retry = match status {
        404 => Retry::NotOffered,
        403 if !refuses_credential => Retry::NotOffered,
        _ => Retry::Backoff,
    };
    if errors.is_empty() && retry == Retry::Backoff {
        return None;
    }
    let reason = errors
        .iter()
        .any(|e| e.code.contains("binding_expired"))
        .then_some(FailureReason::Auth);
    let detail = Some(detail).filter(|d| !d.is_empty());
    Some(VendorError {
        detail: detail.unwrap_or_else(|| "not offered to this tenant or API application".into()),
        reason,
        retry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(json: &str) -> Vec<Fail> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn both_generations_of_error_bodies() {
        let v1 = errors_of(&fail(
            r#"[{"errors":[{"code":"err_developer_key","message":"App ID is invalid: INVALID","retryable":false}]}]"#,
        ));
        assert_eq!(v1[0].code, "err_developer_key");
        assert!(should_retry(&v1));
        assert_eq!(reason_of(&v1), FailureReason::Auth);
        let v2 = errors_of(&fail(
            r#"[{"code":"unauthorized","message":"Invalid client credentials"}]"#,
        ));
        assert_eq!(v2[0].message, "Invalid client credentials");
        assert!(!should_retry(&v2));
        let r = read_error_body(
            401,
            br#"{"fail":[{"code":"unauthorized","message":"bad"}]}"#,
        )
        .unwrap();
        assert_eq!(r.detail, "unauthorized bad");
        assert_eq!(r.reason, None);
        let retry = errors_of(&fail(
            r#"[{"errors":[{"code":"err_internal","message":"x","retryable":true}]}]"#,
        ));
        assert!(should_retry(&retry));
        assert_eq!(reason_of(&retry), FailureReason::ApiError);
        let rl = errors_of(&fail(
            r#"[{"errors":[{"code":"err_xdk_rate_limit_exceeded","message":"x"}]}]"#,
        ));
        assert_eq!(reason_of(&rl), FailureReason::RateLimited);
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
        let e = errors_of(&fail(&format!(r#"[{{"code":"c\nd","message":"{long}"}}]"#)));
        let d = describe(&e);
        assert!(d.len() <= 300 && !d.contains('\n'), "{d}");
    }
}
