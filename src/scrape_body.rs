//! `/metrics` bodies, built once and shared by every scrape.
//!
//! A body has two halves that change at very different rates:
//!
//! - **data**: the published sections of every source. They change only when a poll publishes,
//!   a source is added or removed, or a section passes `max_age`. Merging them and gzipping the
//!   result is the expensive part of a scrape, so it is done once per change: the cache keeps
//!   the sections it was built from and rebuilds only when [`Store::data_sections`] returns a
//!   different list (each publish puts a new `Arc` in the store, so pointer identity is the
//!   version). Each format's gzip form is made lazily, at most once per change
//!   (single-flight: concurrent scrapes wait for the one compression in progress).
//! - **health**: `awareness_up`, request counters and the like, which move during a poll. They
//!   are rendered per scrape, but single-flight too: a scrape reuses the health render of
//!   another scrape if that render *started after it arrived* (so no scrape ever sees older
//!   health than at its arrival), and otherwise starts one. N concurrent scrapes cause at most
//!   two renders, not N. Health is small (a few series per source); its gzip form is made once
//!   per render.
//!
//! The two halves are disjoint sets of families, so a body is simply health, then data, then
//! the trailer (`# EOF` for OpenMetrics). The gzip form is spliced without recompressing the
//! data: a gzip member is a header, raw deflate blocks, then the CRC-32 and length of the whole
//! content. Each half is deflated into blocks that end byte-aligned and non-final (a sync
//! flush) and never refer back across halves, so [header][health][data][final block + CRC +
//! length] is one valid gzip member; the CRC of the whole is combined from the halves' CRCs.
//!
//! Every piece is a [`Bytes`]: a scrape's response is a few reference-counted pointers into
//! the shared buffers, never a copy, over HTTP/1.1 and HTTP/2 alike.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use flate2::write::DeflateEncoder;
use flate2::{Compression, Crc};
use tokio::sync::{Mutex, OnceCell};

use crate::exposition::Format;
use crate::snapshot::{merge_families, Rendered};
use crate::store::Store;

/// gzip member header: deflate, no flags, no mtime, unknown OS (RFC 1952).
const GZIP_HEADER: &[u8] = &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Raw deflate blocks ending byte-aligned and not final, with the CRC of their content:
/// `bytes`, then `then` (the shared text of a small stored block, sent without a copy).
struct Deflated {
    bytes: Bytes,
    then: Bytes,
    crc: Crc,
}

/// Health text up to this size is sent in stored (uncompressed) deflate blocks. Health is
/// rendered for nearly every scrape, and compressing a few kilobytes costs more than sending
/// them: a fresh compressor zeroes ~300 KB of state and the work hops to the blocking pool.
/// With it, a gzip scrape of a small body cost twice a plain one (0.48× the throughput); the
/// data half, built once per publish, is always compressed.
const STORED_HEALTH_MAX: usize = 32 * 1024;

/// How a piece is deflated.
#[derive(Clone, Copy)]
enum Packing {
    /// Always compressed (once per build, so worth it).
    Compressed,
    /// Stored blocks up to [`STORED_HEALTH_MAX`] bytes, compressed above.
    StoredWhenSmall,
}

/// One half of a body in one format: its text and, once asked for, its deflated form.
struct Piece {
    plain: Bytes,
    packing: Packing,
    deflated: OnceCell<Deflated>,
}

impl Piece {
    fn new(text: String, packing: Packing) -> Piece {
        Piece {
            plain: Bytes::from(text),
            packing,
            deflated: OnceCell::new(),
        }
    }

    /// Deflates once, on the blocking pool (it can be megabytes), or stores a small piece on
    /// the spot; concurrent callers wait for the same result.
    async fn deflated(&self) -> &Deflated {
        self.deflated
            .get_or_init(|| {
                let plain = self.plain.clone();
                let small = matches!(self.packing, Packing::StoredWhenSmall)
                    && plain.len() <= STORED_HEALTH_MAX;
                async move {
                    if small {
                        return stored_block(plain);
                    }
                    match tokio::task::spawn_blocking(move || deflate(&plain)).await {
                        Ok(d) => d,
                        // Only a panic inside deflate could get here; fall back to stored blocks.
                        Err(_) => deflate_stored(&self.plain),
                    }
                }
            })
            .await
    }
}

fn pieces(render: impl Fn(Format) -> String, packing: Packing) -> [Piece; 2] {
    Format::ALL.map(|f| Piece::new(render(f), packing))
}

struct DataBodies {
    sections: Vec<Arc<Rendered>>,
    names: BTreeSet<String>,
    formats: [Piece; 2],
}

struct HealthBodies {
    /// Value of the arrival clock when this render started.
    started: u64,
    rendered: Rendered,
    formats: [Piece; 2],
}

/// What a scrape gets: the body as shared chunks, and whether they are gzip.
pub struct ScrapeBody {
    pub chunks: Vec<Bytes>,
    pub gzip: bool,
}

impl ScrapeBody {
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The shared bodies of one store.
pub struct ScrapeBodies {
    store: Arc<Store>,
    data: Mutex<Option<Arc<DataBodies>>>,
    health: Mutex<Option<Arc<HealthBodies>>>,
    clock: AtomicU64,
    data_builds: AtomicU64,
    health_renders: AtomicU64,
}

impl ScrapeBodies {
    pub fn new(store: Arc<Store>) -> Self {
        ScrapeBodies {
            store,
            data: Mutex::new(None),
            health: Mutex::new(None),
            clock: AtomicU64::new(0),
            data_builds: AtomicU64::new(0),
            health_renders: AtomicU64::new(0),
        }
    }

    /// How many times the data half and the health half were built (for tests and benches).
    pub fn builds(&self) -> (u64, u64) {
        (
            self.data_builds.load(Ordering::Relaxed),
            self.health_renders.load(Ordering::Relaxed),
        )
    }

    /// The body of one scrape.
    pub async fn body(&self, format: Format, gzip: bool, now: SystemTime) -> ScrapeBody {
        let arrived = self.clock.load(Ordering::SeqCst);
        let data = self.data(now).await;
        let health = self.health(arrived).await;
        let trailer = format.trailer().as_bytes();
        if health
            .rendered
            .families
            .iter()
            .any(|f| data.names.contains(&f.name))
        {
            // A family in both halves would be written twice; merge it all (correct, slower).
            tracing::debug!("health and data share a family; merging the whole body");
            let parts = std::iter::once(&health.rendered).chain(data.sections.iter().map(|s| &**s));
            let mut text = merge_families(parts, format);
            text.push_str(format.trailer());
            return whole(Bytes::from(text), gzip);
        }
        let (h, d) = (
            &health.formats[format.index()],
            &data.formats[format.index()],
        );
        if !gzip {
            return ScrapeBody {
                chunks: non_empty([
                    h.plain.clone(),
                    d.plain.clone(),
                    Bytes::from_static(trailer),
                ]),
                gzip: false,
            };
        }
        let (hz, dz) = (h.deflated().await, d.deflated().await);
        let mut crc = Crc::new();
        crc.combine(&hz.crc);
        crc.combine(&dz.crc);
        let tail = gzip_tail(trailer, crc);
        ScrapeBody {
            chunks: non_empty([
                Bytes::from_static(GZIP_HEADER),
                hz.bytes.clone(),
                hz.then.clone(),
                dz.bytes.clone(),
                dz.then.clone(),
                tail,
            ]),
            gzip: true,
        }
    }

    async fn data(&self, now: SystemTime) -> Arc<DataBodies> {
        let mut cached = self.data.lock().await;
        // Read under the lock so that scrapes never race each other into building an older set.
        let sections = self.store.data_sections(now);
        if let Some(c) = cached.as_ref() {
            if same_sections(&c.sections, &sections) {
                return c.clone();
            }
        }
        self.data_builds.fetch_add(1, Ordering::Relaxed);
        let names = sections
            .iter()
            .flat_map(|s| s.families.iter().map(|f| f.name.clone()))
            .collect();
        let formats = pieces(
            |f| merge_families(sections.iter().map(|s| &**s), f),
            Packing::Compressed,
        );
        let built = Arc::new(DataBodies {
            sections,
            names,
            formats,
        });
        *cached = Some(built.clone());
        built
    }

    async fn health(&self, arrived: u64) -> Arc<HealthBodies> {
        let mut cached = self.health.lock().await;
        if let Some(c) = cached.as_ref() {
            if c.started > arrived {
                return c.clone();
            }
        }
        let started = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
        self.health_renders.fetch_add(1, Ordering::Relaxed);
        let rendered = self.store.render_health();
        let formats = pieces(|f| merge_families([&rendered], f), Packing::StoredWhenSmall);
        let built = Arc::new(HealthBodies {
            started,
            rendered,
            formats,
        });
        *cached = Some(built.clone());
        built
    }
}

fn same_sections(a: &[Arc<Rendered>], b: &[Arc<Rendered>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
}

fn non_empty<const N: usize>(chunks: [Bytes; N]) -> Vec<Bytes> {
    chunks.into_iter().filter(|c| !c.is_empty()).collect()
}

/// A body served as one piece (the rare fallback), gzipped on the spot if asked.
fn whole(text: Bytes, gzip: bool) -> ScrapeBody {
    if !gzip {
        return ScrapeBody {
            chunks: vec![text],
            gzip: false,
        };
    }
    let d = deflate(&text);
    let tail = gzip_tail(&[], d.crc);
    ScrapeBody {
        chunks: non_empty([Bytes::from_static(GZIP_HEADER), d.bytes, d.then, tail]).to_vec(),
        gzip: true,
    }
}

/// Deflates `data` into blocks that end byte-aligned and are not final (a sync flush), so more
/// blocks can follow.
fn deflate(data: &[u8]) -> Deflated {
    let mut crc = Crc::new();
    crc.update(data);
    let mut enc = DeflateEncoder::new(
        Vec::with_capacity(data.len() / 6 + 64),
        Compression::default(),
    );
    let written = enc.write_all(data).and_then(|()| enc.flush());
    if written.is_err() {
        // Writing into a Vec cannot fail; stay correct regardless.
        return deflate_stored(data);
    }
    let bytes = std::mem::take(enc.get_mut());
    Deflated {
        bytes: Bytes::from(bytes),
        then: Bytes::new(),
        crc,
    }
}

/// The 5-byte header of a stored deflate block of `len` bytes (RFC 1951 3.2.4): BFINAL,
/// BTYPE = 00 and byte alignment in the first byte, then LEN and its complement NLEN.
fn stored_header(len: u16, last: bool) -> [u8; 5] {
    let [l0, l1] = len.to_le_bytes();
    let [n0, n1] = (!len).to_le_bytes();
    [u8::from(last), l0, l1, n0, n1]
}

/// `data` as uncompressed, non-final stored blocks (RFC 1951 3.2.4).
fn deflate_stored(data: &[u8]) -> Deflated {
    let mut out = Vec::with_capacity(data.len() + data.len() / 65535 * 5 + 5);
    for block in data.chunks(usize::from(u16::MAX)) {
        out.extend_from_slice(&stored_header(block.len() as u16, false));
        out.extend_from_slice(block);
    }
    let mut crc = Crc::new();
    crc.update(data);
    Deflated {
        bytes: Bytes::from(out),
        then: Bytes::new(),
        crc,
    }
}

/// `text` (at most 65,535 bytes) as one non-final stored block: a 5-byte block header, then the
/// text itself, shared rather than copied.
fn stored_block(text: Bytes) -> Deflated {
    if text.len() > usize::from(u16::MAX) {
        return deflate_stored(&text);
    }
    let header = stored_header(text.len() as u16, false);
    let mut crc = Crc::new();
    crc.update(&text);
    Deflated {
        bytes: Bytes::copy_from_slice(&header),
        then: text,
        crc,
    }
}

/// The final deflate block holding `trailer` (a stored block: the trailer is a few bytes, not
/// worth a compressor per scrape), then the gzip trailer: CRC-32 and length of the whole
/// content (`crc` so far, plus `trailer`).
fn gzip_tail(trailer: &[u8], mut crc: Crc) -> Bytes {
    let trailer = &trailer[..trailer.len().min(usize::from(u16::MAX))];
    let mut out = Vec::with_capacity(trailer.len() + 13);
    out.extend_from_slice(&stored_header(trailer.len() as u16, true));
    out.extend_from_slice(trailer);
    let mut last = Crc::new();
    last.update(trailer);
    crc.combine(&last);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&crc.amount().to_le_bytes());
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Platform, PollOutcome, SectionOutcome, SourceKey};
    use crate::snapshot::MetricsBuilder;
    use std::io::Read;
    use std::time::Duration;

    fn gunzip_strict(chunks: &[Bytes]) -> String {
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
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

    fn families(body: &str) -> Vec<String> {
        let mut lines: Vec<String> = body.lines().map(str::to_string).collect();
        lines.sort();
        lines
    }

    #[tokio::test]
    async fn spliced_gzip_is_one_valid_member_equal_to_the_plain_body() {
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
            let plain: String = plain
                .chunks
                .iter()
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            let zipped = bodies.body(format, true, now).await;
            assert!(zipped.gzip);
            assert_eq!(gunzip_strict(&zipped.chunks), plain);
            // The small health half travels stored (its text as is), the data half compressed.
            // [gzip header, stored block header, health text, data blocks, final block]
            assert!(
                zipped.chunks[2].starts_with(b"# HELP") && zipped.chunks[2].len() > 100,
                "health stored"
            );
            let data = zipped.chunks[3].len();
            assert!(data < plain.len() / 2, "data compressed: {data} bytes");
        }
        let om = bodies.body(Format::OpenMetrics, false, now).await;
        let om: String = om
            .chunks
            .iter()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        assert!(om.ends_with("# EOF\n"));
        // Same lines as the sorted merge the store renders, only in another family order.
        assert_eq!(families(&om), families(&store.render(now)));
    }

    #[tokio::test]
    async fn data_is_built_once_per_publish_and_health_once_per_burst() {
        let store = Arc::new(Store::new(Duration::from_secs(3600)));
        let key = SourceKey::new(Platform::new("mimecast"), "m");
        let stats = store.register(&key);
        let now = SystemTime::now();
        publish(&store, &key, 1.0, now);
        let bodies = Arc::new(ScrapeBodies::new(store.clone()));
        let first = bodies.body(Format::OpenMetrics, true, now).await;
        let again = bodies.body(Format::OpenMetrics, true, now).await;
        // The data chunk is the very same buffer: shared, not copied.
        assert_eq!(first.chunks[3].as_ptr(), again.chunks[3].as_ptr());
        assert_eq!(bodies.builds().0, 1);

        // Health moves between publishes and every scrape sees the move.
        stats.request("users");
        let after = bodies.body(Format::Text004, false, now).await;
        let text: String = after
            .chunks
            .iter()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        assert!(text.contains("awareness_api_requests_total{platform=\"mimecast\",account=\"m\",endpoint=\"users\"} 1"), "{text}");
        assert_eq!(bodies.builds().0, 1, "data not rebuilt for a health change");

        // Scrapes that arrive while a health render is pending share the next one.
        let (_, renders_before) = bodies.builds();
        let held = bodies.health.lock().await;
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let b = bodies.clone();
                tokio::spawn(async move { b.body(Format::OpenMetrics, true, now).await.len() })
            })
            .collect();
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        drop(held);
        for t in tasks {
            assert!(t.await.unwrap() > 0);
        }
        let (data_builds, renders_after) = bodies.builds();
        assert_eq!(data_builds, 1);
        assert_eq!(
            renders_after - renders_before,
            1,
            "50 waiting scrapes, one render"
        );

        publish(&store, &key, 3.0, now);
        let _ = bodies.body(Format::OpenMetrics, false, now).await;
        assert_eq!(bodies.builds().0, 2, "a publish rebuilds the data once");
        // Expiry is a change too.
        let late = now + Duration::from_secs(7200);
        let body = bodies.body(Format::OpenMetrics, false, late).await;
        let text: String = body
            .chunks
            .iter()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        assert!(!text.contains("awareness_x{"), "{text}");
    }

    #[test]
    fn stored_fallback_and_empty_pieces_splice_too() {
        for data in [&b""[..], b"x 1\n", &vec![b'a'; 200_000]] {
            let shared = Bytes::copy_from_slice(data);
            for d in [deflate(data), deflate_stored(data), stored_block(shared)] {
                let mut crc = Crc::new();
                crc.combine(&d.crc);
                let chunks = [
                    Bytes::from_static(GZIP_HEADER),
                    d.bytes,
                    d.then,
                    gzip_tail(b"# EOF\n", crc),
                ];
                let out = gunzip_strict(&chunks);
                assert_eq!(out.len(), data.len() + 6);
            }
        }
    }
}
