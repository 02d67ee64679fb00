//! `/metrics` bodies, built once per change and shared by every scrape.
//!
//! A body is health, then data, then the trailer (`# EOF` for OpenMetrics), kept in one cache.
//! Health and data never share a family (health's are the store's, every data family is named
//! for its platform: tests/it/golden.rs), so the two halves are merged each on its own.
//!
//! - **data**: the published sections of every source, merged once per change: when
//!   [`Store::data_sections`] returns another list (each publish puts a new `Arc` in the store,
//!   so pointer identity is the version; expiry and removed sources change the list too).
//! - **health**: `awareness_up`, request counters and the like, which move while a poll runs.
//!   Rendered per scrape, but single-flight: a scrape reuses the render of another scrape if
//!   that render *started after it arrived* (so no scrape ever sees older health than at its
//!   arrival), and otherwise makes one. N concurrent scrapes cause at most two renders, not N.
//! - **gzip**: the whole body of a format, compressed once (on the blocking pool) when its data
//!   or its health text changed, so between polls every gzip scrape is one shared buffer. While
//!   health moves, a format is compressed at most once per [`GZIP_EVERY`]; a scrape that would
//!   need another compression sooner gets the plain body (a client that accepts gzip accepts
//!   identity too), so no client can make us compress more often.
//!
//! Every piece is a [`Bytes`]: a scrape's response is a few reference-counted pointers into
//! the shared buffers, never a copy, over HTTP/1.1 and HTTP/2 alike.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;

use crate::exposition::Format;
use crate::snapshot::{merge_families, Rendered};
use crate::store::Store;

/// The least time between two compressions of one format.
const GZIP_EVERY: Duration = Duration::from_secs(1);

/// The parts of both formats' bodies, and what they were built from.
#[derive(Default)]
struct Cache {
    sections: Vec<Arc<Rendered>>,
    data: [Bytes; 2],
    /// Value of the arrival clock when the health render started.
    started: u64,
    health: [Bytes; 2],
    gzip: [Option<Arc<Gzipped>>; 2],
}

/// One format's whole body, compressed once.
struct Gzipped {
    /// The data it was made of (a buffer is replaced when the data changes, so its address is
    /// its version) and the health.
    data: Bytes,
    health: Bytes,
    at: Instant,
    body: OnceCell<Bytes>,
}

/// The shared bodies of one store.
pub(crate) struct ScrapeBodies {
    store: Arc<Store>,
    cache: Mutex<Cache>,
    clock: AtomicU64,
}

impl ScrapeBodies {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        ScrapeBodies {
            store,
            cache: Mutex::default(),
            clock: AtomicU64::new(0),
        }
    }

    /// The body of one scrape, as shared chunks, and whether they are gzip.
    pub(crate) async fn body(
        &self,
        format: Format,
        gzip: bool,
        now: SystemTime,
    ) -> (Vec<Bytes>, bool) {
        let arrived = self.clock.load(Ordering::SeqCst);
        let i = format as usize;
        let mut c = self.cache.lock().await;
        // Read under the lock so that scrapes never race each other into building an older set.
        let sections = self.store.data_sections(now);
        let changed = !same(&c.sections, &sections);
        if changed {
            let parts = || sections.iter().map(|s| &**s);
            c.data = Format::ALL.map(|f| Bytes::from(merge_families(parts(), f)));
            c.sections = sections;
        }
        if changed || c.started <= arrived {
            c.started = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
            let health = self.store.render_health();
            c.health = Format::ALL.map(|f| Bytes::from(merge_families([&health], f)));
        }
        let trailer = Bytes::from_static(format.trailer().as_bytes());
        let plain = vec![c.health[i].clone(), c.data[i].clone(), trailer];
        let fresh = |z: &Gzipped| z.data.as_ptr() == c.data[i].as_ptr() && z.health == c.health[i];
        let zipped = match &c.gzip[i] {
            _ if !gzip => None,
            Some(z) if fresh(z) => Some(z.clone()),
            Some(z) if z.at.elapsed() < GZIP_EVERY => None,
            _ => {
                let z = Gzipped {
                    data: c.data[i].clone(),
                    health: c.health[i].clone(),
                    at: Instant::now(),
                    body: OnceCell::new(),
                };
                Some(c.gzip[i].insert(Arc::new(z)).clone())
            }
        };
        drop(c);
        match zipped {
            None => (plain, false),
            Some(z) => (
                vec![z.body.get_or_init(|| compress(plain)).await.clone()],
                true,
            ),
        }
    }
}

/// One gzip member of `parts`, made on the blocking pool (it can be megabytes).
async fn compress(parts: Vec<Bytes>) -> Bytes {
    let gzip = move || {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        parts.iter().try_for_each(|p| enc.write_all(p))?;
        enc.finish()
    };
    match tokio::task::spawn_blocking(gzip).await {
        Ok(Ok(bytes)) => Bytes::from(bytes),
        // Writing into a Vec cannot fail and gzip does not panic; an empty member would
        // be an invalid body, so say so loudly.
        _ => {
            tracing::error!("gzip compression failed");
            Bytes::new()
        }
    }
}

fn same(a: &[Arc<Rendered>], b: &[Arc<Rendered>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| Arc::ptr_eq(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Platform, PollOutcome, SectionOutcome, SourceKey};
    use crate::snapshot::MetricsBuilder;
    use std::collections::HashSet;
    use std::io::Read;

    type ScrapeBody = (Vec<Bytes>, bool);

    fn text((chunks, gzip): &ScrapeBody) -> String {
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        if !gzip {
            return String::from_utf8(all).unwrap();
        }
        // GzDecoder reads exactly one member and checks its CRC and length.
        let mut d = flate2::read::GzDecoder::new(&all[..]);
        let mut s = String::new();
        d.read_to_string(&mut s).unwrap();
        let mut rest = Vec::new();
        d.into_inner().read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "one gzip member, nothing after it");
        s
    }

    fn publish(store: &Store, key: &SourceKey, v: f64, now: SystemTime) {
        let mut b = MetricsBuilder::new();
        b.gauge("awareness_x", "X", &[("account", &key.account)], v);
        b.counter("awareness_y", "Y", &[("account", &key.account)], v);
        let outcome = PollOutcome {
            sections: vec![SectionOutcome {
                name: "s",
                result: Ok(b.finish()),
            }],
        };
        store.publish(key, outcome, Duration::from_millis(5), now);
    }

    fn sorted_lines(body: &str) -> Vec<String> {
        let mut lines: Vec<String> = body.lines().map(str::to_string).collect();
        lines.sort();
        lines
    }

    #[tokio::test]
    async fn gzip_is_one_valid_member_equal_to_the_plain_body() {
        let store = Arc::new(Store::new(Duration::from_secs(3600)));
        let now = SystemTime::now();
        for account in ["a", "b"] {
            let key = SourceKey::new(Platform::new("cyberpilot"), account);
            store.register(&key);
            publish(&store, &key, 2.0, now);
        }
        let bodies = ScrapeBodies::new(store.clone());
        for format in Format::ALL {
            let plain = bodies.body(format, false, now).await;
            assert!(!plain.1);
            let zipped = bodies.body(format, true, now).await;
            assert!(zipped.1);
            assert_eq!(text(&zipped), text(&plain));
        }
        let om = text(&bodies.body(Format::OpenMetrics, false, now).await);
        assert!(om.ends_with("# EOF\n"));
        // Same lines as the sorted merge the store renders, only in another family order.
        assert_eq!(sorted_lines(&om), sorted_lines(&store.render(now)));
    }

    #[tokio::test(start_paused = true)]
    async fn bodies_are_built_once_per_change_and_health_once_per_burst() {
        let store = Arc::new(Store::new(Duration::from_secs(3600)));
        let key = SourceKey::new(Platform::new("mimecast"), "m");
        let stats = store.register(&key);
        let now = SystemTime::now();
        publish(&store, &key, 1.0, now);
        let bodies = Arc::new(ScrapeBodies::new(store.clone()));
        // A buffer's address: equal addresses of buffers both held are one build, shared.
        let at = |b: &ScrapeBody, i: usize| b.0[i].as_ptr();
        let first = bodies.body(Format::OpenMetrics, true, now).await;
        let again = bodies.body(Format::OpenMetrics, true, now).await;
        // The very same buffers: shared, not copied, compressed once.
        assert_eq!(at(&first, 0), at(&again, 0));
        let plain = bodies.body(Format::OpenMetrics, false, now).await;
        let plain_again = bodies.body(Format::OpenMetrics, false, now).await;
        assert_eq!(at(&plain, 1), at(&plain_again, 1));

        // Health moves between publishes and every scrape sees the move; a gzip scrape within
        // GZIP_EVERY of the last compression gets it plain, a later one compressed again.
        stats.request("users");
        let moved = "awareness_api_requests_total{platform=\"mimecast\",account=\"m\",endpoint=\"users\"} 1";
        let soon = bodies.body(Format::OpenMetrics, true, now).await;
        assert!(!soon.1 && text(&soon).contains(moved));
        assert_eq!(
            at(&soon, 1),
            at(&plain, 1),
            "data not merged again for a health change"
        );
        tokio::time::advance(GZIP_EVERY).await;
        let later = bodies.body(Format::OpenMetrics, true, now).await;
        assert!(later.1 && text(&later).contains(moved));
        assert_ne!(at(&later, 0), at(&first, 0));

        // Scrapes that arrive while a health render is pending share the next one.
        let held = bodies.cache.lock().await;
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let b = bodies.clone();
                tokio::spawn(async move { b.body(Format::OpenMetrics, false, now).await })
            })
            .collect();
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        drop(held);
        let mut waited = Vec::new();
        for t in tasks {
            waited.push(t.await.unwrap());
        }
        assert!(
            waited.iter().all(|b| at(b, 1) == at(&plain, 1)),
            "data merged once"
        );
        assert_ne!(
            at(&waited[0], 0),
            at(&soon, 0),
            "health rendered after they arrived"
        );
        let renders: HashSet<_> = waited.iter().map(|b| at(b, 0)).collect();
        assert_eq!(renders.len(), 1, "50 waiting scrapes, one render");

        publish(&store, &key, 3.0, now);
        let published = bodies.body(Format::OpenMetrics, false, now).await;
        let published_again = bodies.body(Format::OpenMetrics, false, now).await;
        assert_ne!(
            at(&published, 1),
            at(&plain, 1),
            "a publish merges the data"
        );
        assert_eq!(at(&published, 1), at(&published_again, 1), "once");
        // Expiry is a change too.
        let late = now + Duration::from_secs(7200);
        let body = text(&bodies.body(Format::OpenMetrics, false, late).await);
        assert!(!body.contains("awareness_x{"), "{body}");
    }
}
