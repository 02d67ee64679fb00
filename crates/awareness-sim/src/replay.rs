//! A server that replays recorded vendor answers: for a request path (and, for endpoints that
//! take one, the `data[0].id` of the request body) it answers with the next recorded body, or
//! repeats the last one. Tests use it to run the real clients against what the vendors really
//! sent (tests/fixtures/*), and record every request body they received.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Request, State};
use axum::http::header::HeaderValue;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use serde_json::Value;

use super::{respond, Control, SimServer};

/// One recorded answer.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Recorded {
    /// A JSON answer with the rate-limit headers Mimecast sends with every answer.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Recorded {
            status,
            body: body.into(),
            headers: vec![
                ("x-ratelimit-limit".into(), "800".into()),
                ("x-ratelimit-remaining".into(), "797".into()),
                ("x-ratelimit-reset".into(), "4419".into()),
            ],
        }
    }
}

type Key = (String, Option<String>);

#[derive(Default)]
pub struct Replay {
    routes: Mutex<HashMap<Key, VecDeque<Recorded>>>,
    requests: Mutex<Vec<(String, Value)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Replay {
    /// Answers for `path` (any request id, unless a route with the request's id exists).
    pub fn route(&self, path: &str, answers: Vec<Recorded>) -> &Self {
        lock(&self.routes).insert((path.to_string(), None), answers.into());
        self
    }

    /// Answers for `path` when the request's `data[0].id` is `id`.
    pub fn route_id(&self, path: &str, id: &str, answers: Vec<Recorded>) -> &Self {
        lock(&self.routes).insert((path.to_string(), Some(id.to_string())), answers.into());
        self
    }

    /// Every request received so far: path and JSON body (`Null` when not JSON).
    pub fn requests(&self) -> Vec<(String, Value)> {
        lock(&self.requests).clone()
    }

    fn next(&self, path: &str, id: Option<String>) -> Option<Recorded> {
        let mut routes = lock(&self.routes);
        let key = (path.to_string(), id);
        let key = if routes.contains_key(&key) {
            key
        } else {
            (path.to_string(), None)
        };
        let queue = routes.get_mut(&key)?;
        if queue.len() > 1 {
            queue.pop_front()
        } else {
            queue.front().cloned()
        }
    }
}

async fn handle(State(replay): State<Arc<Replay>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = value
        .pointer("/data/0/id")
        .and_then(Value::as_str)
        .map(str::to_string);
    lock(&replay.requests).push((path.clone(), value));
    let Some(answer) = replay.next(&path, id) else {
        return respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            b"no recording".to_vec(),
        );
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = respond(status, "application/json", answer.body.into_bytes());
    for (k, v) in &answer.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp
}

/// Starts a replay server on `127.0.0.1:<random port>`.
pub async fn start(replay: Arc<Replay>) -> std::io::Result<SimServer> {
    let router = Router::new().fallback(handle).with_state(replay);
    super::spawn(router, Arc::new(Control::new())).await
}
