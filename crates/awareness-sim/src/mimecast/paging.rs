//! Paging: the request envelope (`meta.pagination.pageSize` / `pageToken`, `data[0]`), opaque
//! page tokens bound to their listing, and the window of rows a page covers.

use axum::body::Bytes;
use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::envelope::{fail, validation, Rejection};
use super::{MimecastSim, DEFAULT_PAGE_SIZE};

/// The parsed request envelope.
pub(super) struct McRequest {
    pub(super) page_size: usize,
    pub(super) page_token: Option<String>,
    pub(super) data0: Map<String, Value>,
}

impl McRequest {
    /// `data[0].id`, when it is a non-empty string.
    pub(super) fn id(&self) -> Option<&str> {
        self.data0
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
}

pub(super) fn parse_request(body: &Bytes, max_page_size: usize) -> Result<McRequest, Rejection> {
    let invalid_json = || -> Rejection {
        fail(
            StatusCode::BAD_REQUEST,
            400,
            "err_validation_invalid_json",
            "The request body is not valid JSON",
            false,
        )
    };
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|_| invalid_json())?
    };
    let Some(obj) = value.as_object() else {
        return Err(invalid_json());
    };
    let pagination = obj.get("meta").and_then(|m| m.get("pagination"));
    let page_size = match pagination.and_then(|p| p.get("pageSize")) {
        None | Some(Value::Null) => DEFAULT_PAGE_SIZE,
        Some(v) => match v.as_u64().filter(|n| *n >= 1) {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => {
                return Err(validation(
                    "err_validation_page_size",
                    "pageSize must be a positive integer",
                ))
            }
        },
    };
    let page_token = pagination
        .and_then(|p| p.get("pageToken"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let data0 = obj
        .get("data")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    Ok(McRequest {
        page_size: page_size.min(max_page_size.max(1)),
        page_token,
        data0,
    })
}

pub(super) fn encode_page_token(tag: &str, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("mcsim|{tag}|{offset}"))
}

pub(super) fn decode_page_token(token: &str, tag: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let rest = text.strip_prefix("mcsim|")?;
    let (t, offset) = rest.rsplit_once('|')?;
    (t == tag).then(|| offset.parse().ok()).flatten()
}

/// One page of a listing: absolute positions (wrapping past the end under EndlessPaging).
pub(super) struct Window {
    pub(super) positions: Vec<usize>,
    pub(super) pagination: Value,
}

impl MimecastSim {
    /// The page a request asks for (its token decoded against `tag`), or the failure it gets.
    pub(super) fn window(
        &self,
        path: &str,
        req: &McRequest,
        tag: &str,
        total: usize,
    ) -> Result<Window, Rejection> {
        let offset = match &req.page_token {
            None => 0,
            Some(t) => decode_page_token(t, tag).ok_or_else(|| {
                validation(
                    "err_validation_invalid_page_token",
                    "The pageToken is invalid or belongs to another request",
                )
            })?,
        };
        let size = req.page_size;
        let page = u32::try_from(offset / size + 1).unwrap_or(u32::MAX);
        if self.control.fails_page(path, page) {
            return Err(fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                500,
                "err_internal",
                "Internal Server Error",
                true,
            ));
        }
        let endless = self.control.endless_paging() && total > 0;
        let end = if endless {
            offset.saturating_add(size)
        } else {
            offset.saturating_add(size).min(total)
        };
        let positions: Vec<usize> = (offset.min(end)..end).collect();
        let mut pagination = Map::new();
        pagination.insert("pageSize".into(), json!(size));
        pagination.insert("totalCount".into(), json!(total));
        if endless || end < total {
            pagination.insert("next".into(), json!(encode_page_token(tag, end)));
        }
        if offset > 0 {
            pagination.insert(
                "previous".into(),
                json!(encode_page_token(tag, offset.saturating_sub(size))),
            );
        }
        Ok(Window {
            positions,
            pagination: Value::Object(pagination),
        })
    }
}
