//! What tests, benches and examples use of the crate's insides, re-exported at their own
//! paths (`testing::http::Transport` is `crate::http::Transport`). The library's surface is
//! app, config, demo, hardening, model and the binary's few re-exports at the root; every other
//! module is crate-private, so the compiler finds dead code. Each line here is a test reaching
//! inside: one that could be a unit test beside the code should move there and leave this list.

pub mod http {
    pub use crate::http::{client, PlainHttp, Reply, Scrub, Transport, VendorError, VendorHttp};
}
pub mod landing {
    pub use crate::landing::render;
}
pub mod server {
    pub use crate::server::MAX_CONCURRENT_STREAMS;
}
pub mod snapshot {
    pub use crate::snapshot::{merge, MetricsBuilder, Rendered};
}
pub use crate::sources::testing as sources;
pub mod stats {
    pub use crate::stats::ApiStats;
}
pub mod store {
    pub use crate::store::Store;
}
