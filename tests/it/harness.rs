//! The shared source-polling harness (tests/it/common/harness.rs, also used by the benchmarks)
//! polls every vendor's simulated tenant the same way: whatever the demo starts, one call gives
//! its rendered text.

use crate::common;
use crate::common::harness::Counted as _;

use awareness_sim::demo::{Demo, Size};
use common::{harness, Outcome};

/// The small demo (every platform, a tenth of the people) in paused time: KnowBe4's real pacing
/// (4 requests a second) is kept on tokio's clock, at no cost.
#[tokio::test(start_paused = true)]
async fn every_demo_tenant_polls_through_the_one_harness() {
    let demo = Demo::start_sized(Size::Small).await.unwrap();
    assert!(!demo.tenants().is_empty());
    for tenant in demo.tenants() {
        // Each demo tenant carries the keys its vendor takes (page_size where it has one).
        let polled = harness::poll_tenant(tenant, "", "").await;
        assert!(
            polled.outcome.ok(),
            "{}: {:?}",
            tenant.account,
            polled.outcome.first_error()
        );
        let text = polled.text();
        let prefix = format!("awareness_{}_", tenant.platform);
        assert!(
            text.contains(&prefix),
            "{}: no {prefix} series",
            tenant.account
        );
        assert!(
            text.contains(&format!("account=\"{}\"", tenant.account)),
            "{}",
            tenant.account
        );
        assert!(polled.stats.total_requests() > 0);
    }
}
