//! Answers replayed from memory, for benchmarks. A real vendor builds its pages on its own
//! machines; the simulator builds them on the exporter's cores, so a poll benchmark would time
//! the simulator's JSON work as much as the exporter. With the cache on
//! ([`Control::set_answer_cache`]), a 200 answer already given to the same request (method,
//! path, query and body; tokens are not part of the request) is sent again from memory, after
//! the same latency. Off by default: faults, quotas and authentication are bypassed by a hit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::{after_latency, respond, Control};

/// A request body larger than this is not cached (no simulated request comes close).
const MAX_REQUEST_BYTES: usize = 1 << 20;

type Key = (Method, String, Bytes);

#[derive(Clone)]
struct Answer {
    headers: HeaderMap,
    body: Bytes,
}

/// The answers given so far, by request.
#[derive(Default)]
pub(crate) struct AnswerCache {
    answers: Mutex<HashMap<Key, Answer>>,
}

impl AnswerCache {
    fn get(&self, key: &Key) -> Option<Answer> {
        self.lock().get(key).cloned()
    }

    fn put(&self, key: Key, answer: Answer) {
        self.lock().insert(key, answer);
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Answer>> {
        self.answers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The middleware of every simulated server: passes through unless the cache is on.
pub(crate) async fn replay(
    State(control): State<Arc<Control>>,
    req: Request,
    next: Next,
) -> Response {
    // Token endpoints are never replayed: their answers carry expiry times.
    if !control.answer_cache_on() || req.uri().path().ends_with("/token") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_REQUEST_BYTES).await else {
        return respond(StatusCode::PAYLOAD_TOO_LARGE, "", Vec::new());
    };
    let key = (parts.method.clone(), parts.uri.to_string(), body.clone());
    if let Some(hit) = control.answers().get(&key) {
        let _in_flight = control.begin(parts.uri.path(), false);
        return after_latency(&control, true, async move {
            let mut response = Response::new(Body::from(hit.body));
            *response.headers_mut() = hit.headers;
            response
        })
        .await;
    }
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (head, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return respond(StatusCode::INTERNAL_SERVER_ERROR, "", Vec::new());
    };
    control.answers().put(
        key,
        Answer {
            headers: head.headers.clone(),
            body: body.clone(),
        },
    );
    Response::from_parts(head, Body::from(body))
}
