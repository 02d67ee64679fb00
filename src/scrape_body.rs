//! `/metrics` bodies, built once per change and shared by every scrape.
//!
//! A body is health, then data, then the trailer (`# EOF` for OpenMetrics):
//!
//! - **data**: the published sections of every source. They change only when a poll publishes,
//!   a source is added or removed, or a section passes `max_age`. They are merged once per
//!   change: the cache keeps the sections it was built from and rebuilds only when
//!   [`Store::data_sections`] returns a different list (each publish puts a new `Arc` in the
//!   store, so pointer identity is the version).
//! - **health**: `awareness_up`, request counters and the like, which move while a poll runs.
//!   Rendered per scrape, but single-flight: a scrape reuses the health render of another
//!   scrape if that render *started after it arrived* (so no scrape ever sees older health
//!   than at its arrival), and otherwise starts one. N concurrent scrapes cause at most two
//!   renders, not N.
//! - **gzip**: the whole body of a format, compressed once (on the blocking pool, single-flight)
//!   when its data or its health text changed. Health moves only while a poll runs, so between
//!   polls every gzip scrape is one shared buffer. While it moves, a format is compressed at
//!   most once per [`GZIP_EVERY`]; a scrape that would need another compression sooner gets
//!   the plain body (a client that accepts gzip accepts identity too), so no client can make
//!   us compress more often.
//!
//! Every piece is a [`Bytes`]: a scrape's response is a few reference-counted pointers into
//! the shared buffers, never a copy, over HTTP/1.1 and HTTP/2 alike.

use std::collections::BTreeSet;
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

struct Data {
    sections: Vec<Arc<Rendered>>,
    names: BTreeSet<String>,
    text: [Bytes; 2],
}

struct Health {
    /// Value of the arrival clock when this render started.
    started: u64,
    rendered: Rendered,
    text: [Bytes; 2],
}

/// One format's whole body, gzipped at most once.
struct Gzipped {
    data: Arc<Data>,
    health: Bytes,
    started: Instant,
    body: OnceCell<Bytes>,
}

/// What a scrape gets: the body as shared chunks, and whether they are gzip.
pub(crate) struct ScrapeBody {
    pub(crate) chunks: Vec<Bytes>,
    pub(crate) gzip: bool,
}

/// The shared bodies of one store.
pub(crate) struct ScrapeBodies {
    store: Arc<Store>,
    data: Mutex<Option<Arc<Data>>>,
    health: Mutex<Option<Arc<Health>>>,
    gzipped: [Mutex<Option<Arc<Gzipped>>>; 2],
    clock: AtomicU64,
    /// Data merges, health renders, gzip compressions (tests and benches).
    counts: [AtomicU64; 3],
}

impl ScrapeBodies {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        ScrapeBodies {
            store,
            data: Mutex::new(None),
            health: Mutex::new(None),
            gzipped: Default::default(),
            clock: AtomicU64::new(0),
            counts: Default::default(),
        }
    }

    /// How many times the data was merged, health rendered, and a body compressed (tests).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn builds(&self) -> (u64, u64, u64) {
        let [d, h, z] = self.counts.each_ref().map(|c| c.load(Ordering::Relaxed));
        (d, h, z)
    }

    /// The body of one scrape.
    pub(crate) async fn body(&self, format: Format, gzip: bool, now: SystemTime) -> ScrapeBody {
        let arrived = self.clock.load(Ordering::SeqCst);
        let data = self.data(now).await;
        let health = self.health(arrived).await;
        let trailer = Bytes::from_static(format.trailer().as_bytes());
        let i = format.index();
        if health
            .rendered
            .families
            .iter()
            .any(|f| data.names.contains(&f.name))
        {
            // A family in both halves would be written twice; merge it all (correct, slower).
            tracing::debug!("health and data share a family; merging the whole body");
            let parts = std::iter::once(&health.rendered).chain(data.sections.iter().map(|s| &**s));
            let text = Bytes::from(merge_families(parts, format));
            return match gzip {
                true => ScrapeBody {
                    chunks: vec![self.compress(vec![text, trailer]).await],
                    gzip: true,
                },
                false => ScrapeBody {
                    chunks: vec![text, trailer],
                    gzip: false,
                },
            };
        }
        let plain = vec![health.text[i].clone(), data.text[i].clone(), trailer];
        if !gzip {
            return ScrapeBody {
                chunks: plain,
                gzip: false,
            };
        }
        let zipped = {
            let mut cached = self.gzipped[i].lock().await;
            match cached.as_ref() {
                Some(z) if Arc::ptr_eq(&z.data, &data) && z.health == health.text[i] => z.clone(),
                Some(z) if z.started.elapsed() < GZIP_EVERY => {
                    return ScrapeBody {
                        chunks: plain,
                        gzip: false,
                    }
                }
                _ => {
                    let z = Arc::new(Gzipped {
                        data: data.clone(),
                        health: health.text[i].clone(),
                        started: Instant::now(),
                        body: OnceCell::new(),
                    });
                    *cached = Some(z.clone());
                    z
                }
            }
        };
        let body = zipped.body.get_or_init(|| self.compress(plain)).await;
        ScrapeBody {
            chunks: vec![body.clone()],
            gzip: true,
        }
    }

    /// One gzip member of `parts`, made on the blocking pool (it can be megabytes).
    async fn compress(&self, parts: Vec<Bytes>) -> Bytes {
        self.counts[2].fetch_add(1, Ordering::Relaxed);
        let gzip = move || {
            let size: usize = parts.iter().map(Bytes::len).sum();
            let mut enc = GzEncoder::new(Vec::with_capacity(size / 8 + 64), Compression::default());
            for p in &parts {
                enc.write_all(p)?;
            }
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

    async fn data(&self, now: SystemTime) -> Arc<Data> {
        let mut cached = self.data.lock().await;
        // Read under the lock so that scrapes never race each other into building an older set.
        let sections = self.store.data_sections(now);
        if let Some(c) = cached.as_ref() {
            let same = c.sections.len() == sections.len()
                && c.sections
                    .iter()
                    .zip(&sections)
                    .all(|(a, b)| Arc::ptr_eq(a, b));
            if same {
                return c.clone();
            }
        }
        self.counts[0].fetch_add(1, Ordering::Relaxed);
        let names = sections
            .iter()
            .flat_map(|s| s.families.iter().map(|f| f.name.clone()))
            .collect();
        let text =
            Format::ALL.map(|f| Bytes::from(merge_families(sections.iter().map(|s| &**s), f)));
        let built = Arc::new(Data {
            sections,
            names,
            text,
        });
        *cached = Some(built.clone());
        built
    }

    async fn health(&self, arrived: u64) -> Arc<Health> {
        let mut cached = self.health.lock().await;
        if let Some(c) = cached.as_ref() {
            if c.started > arrived {
                return c.clone();
            }
        }
        let started = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
        self.counts[1].fetch_add(1, Ordering::Relaxed);
        let rendered = self.store.render_health();
        let text = Format::ALL.map(|f| Bytes::from(merge_families([&rendered], f)));
        let built = Arc::new(Health {
            started,
            rendered,
            text,
        });
        *cached = Some(built.clone());
        built
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Platform, PollOutcome, SectionOutcome, SourceKey};
    use crate::snapshot::MetricsBuilder;
    use std::io::Read;

    fn text(body: &ScrapeBody) -> String {
        let all: Vec<u8> = body.chunks.iter().flat_map(|c| c.iter().copied()).collect();
        if !body.gzip {
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
            assert!(!plain.gzip);
            let zipped = bodies.body(format, true, now).await;
            assert!(zipped.gzip);
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
        let first = bodies.body(Format::OpenMetrics, true, now).await;
        let again = bodies.body(Format::OpenMetrics, true, now).await;
        // The very same buffers: shared, not copied, compressed once.
        assert_eq!(first.chunks[0].as_ptr(), again.chunks[0].as_ptr());
        let plain = bodies.body(Format::OpenMetrics, false, now).await;
        let plain_again = bodies.body(Format::OpenMetrics, false, now).await;
        assert_eq!(plain.chunks[1].as_ptr(), plain_again.chunks[1].as_ptr());
        assert_eq!((bodies.builds().0, bodies.builds().2), (1, 1));

        // Health moves between publishes and every scrape sees the move; a gzip scrape within
        // GZIP_EVERY of the last compression gets it plain, a later one compressed again.
        stats.request("users");
        let moved = "awareness_api_requests_total{platform=\"mimecast\",account=\"m\",endpoint=\"users\"} 1";
        let soon = bodies.body(Format::OpenMetrics, true, now).await;
        assert!(!soon.gzip && text(&soon).contains(moved));
        tokio::time::advance(GZIP_EVERY).await;
        let later = bodies.body(Format::OpenMetrics, true, now).await;
        assert!(later.gzip && text(&later).contains(moved));
        assert_eq!(
            bodies.builds().0,
            1,
            "data not merged again for a health change"
        );
        assert_eq!(bodies.builds().2, 2);

        // Scrapes that arrive while a health render is pending share the next one.
        let (_, renders_before, _) = bodies.builds();
        let held = bodies.health.lock().await;
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let b = bodies.clone();
                tokio::spawn(
                    async move { text(&b.body(Format::OpenMetrics, true, now).await).len() },
                )
            })
            .collect();
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        drop(held);
        for t in tasks {
            assert!(t.await.unwrap() > 0);
        }
        let (data_builds, renders_after, _) = bodies.builds();
        assert_eq!(data_builds, 1);
        assert_eq!(
            renders_after - renders_before,
            1,
            "50 waiting scrapes, one render"
        );

        publish(&store, &key, 3.0, now);
        let _ = bodies.body(Format::OpenMetrics, false, now).await;
        assert_eq!(bodies.builds().0, 2, "a publish merges the data once");
        // Expiry is a change too.
        let late = now + Duration::from_secs(7200);
        let body = text(&bodies.body(Format::OpenMetrics, false, late).await);
        assert!(!body.contains("awareness_x{"), "{body}");
    }
}
