//! The Mimecast answer envelope `{"meta","data","fail"}`: successes, failures (`fail[].errors[]`
//! with the HTTP status Mimecast uses for each), and answers assembled from cached row text.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use crate::json_response;

/// `{"meta":{"status":N},"data":[],"fail":[{"errors":[{code,message,retryable}]}]}`
pub fn fail_envelope(status: u16, code: &str, message: &str, retryable: bool) -> Value {
    json!({
        "meta": {"status": status},
        "data": [],
        "fail": [{"errors": [{"code": code, "message": message, "retryable": retryable}]}],
    })
}

pub(super) fn fail<R: From<Response>>(
    http: StatusCode,
    meta_status: u16,
    code: &str,
    message: &str,
    retryable: bool,
) -> R {
    R::from(json_response(
        http,
        &fail_envelope(meta_status, code, message, retryable),
    ))
}

/// An early answer (boxed: a `Response` is large).
pub(super) type Rejection = Box<Response>;

pub(super) fn unauthorized(code: &str, message: &str) -> Rejection {
    fail(StatusCode::UNAUTHORIZED, 401, code, message, false)
}

/// A validation error, delivered the Mimecast way: HTTP 200 with `fail[]`.
pub(super) fn validation(code: &str, message: &str) -> Rejection {
    fail(StatusCode::OK, 400, code, message, false)
}

pub(super) fn ok_envelope(data: Value, pagination: Option<Value>) -> Value {
    let mut meta = Map::new();
    meta.insert("status".into(), json!(200));
    if let Some(p) = pagination {
        meta.insert("pagination".into(), p);
    }
    json!({"meta": Value::Object(meta), "data": data, "fail": []})
}

/// `{"meta":{"status":200,"pagination":...},"data":[<rows>],"fail":[]}` from cached rows;
/// with `nested`, the rows go into `data[0].items`.
pub(super) fn raw_envelope(
    rows: &[String],
    positions: &[usize],
    pagination: &Value,
    nested: bool,
) -> String {
    let total = rows.len().max(1);
    let mut out = String::with_capacity(positions.len() * 200 + 256);
    out.push_str("{\"meta\":{\"status\":200,\"pagination\":");
    out.push_str(&pagination.to_string());
    out.push_str(if nested {
        "},\"data\":[{\"items\":["
    } else {
        "},\"data\":["
    });
    for (i, &p) in positions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let Some(row) = rows.get(p % total) {
            out.push_str(row);
        }
    }
    out.push_str(if nested {
        "]}],\"fail\":[]}"
    } else {
        "],\"fail\":[]}"
    });
    out
}

/// A response body: a JSON value, or JSON text already assembled from cached rows.
pub(super) enum Payload {
    Value(Value),
    Raw(String),
}
