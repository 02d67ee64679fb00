//! The vendors' part of [`crate::testing`] (only src/sources names a vendor).

pub use crate::sources::{build, Source, SourceContext};
pub mod aggregate {
    pub use crate::sources::aggregate::SeenKeys;
}
pub mod cyberpilot {
    pub use crate::sources::cyberpilot::{CyberPilotAuth, CyberPilotConfig};
    pub mod metrics {
        pub use crate::sources::cyberpilot::metrics::Report;
    }
    pub mod models {
        pub use crate::sources::cyberpilot::models::UserSummary;
    }
    pub mod page {
        pub use crate::sources::cyberpilot::page::UsersFormat;
    }
}
pub mod decode {
    pub use crate::sources::decode::RowBudget;
}
pub mod knowbe4 {
    pub use crate::sources::knowbe4::PLATFORM;
    pub mod config {
        pub use crate::sources::knowbe4::config::{Endpoint, KnowBe4Config};
    }
    pub mod http {
        pub use crate::sources::knowbe4::http::KnowBe4Http;
    }
}
pub mod mimecast {
    pub use crate::sources::mimecast::{MimecastAuth, MimecastConfig, MimecastEndpoint};
    pub mod http {
        pub use crate::sources::mimecast::http::MimecastHttp;
    }
    pub mod models {
        pub use crate::sources::mimecast::models::{
            parse_timestamp, Campaign, CampaignUserRow, Items, PhishingCampaign, TrainingRow,
            UserRow,
        };
    }
}
pub mod paging {
    pub use crate::sources::paging::Format;
}
