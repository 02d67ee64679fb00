//! The API's data endpoints: which path is which, and the tag that binds a page token to its
//! listing.

use super::API_PREFIX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    Performance,
    PerformanceSummary,
    Watchlist,
    SafeScore,
    SafeScoreSummary,
    Training,
    Campaigns,
    CampaignUserData,
    Phishing,
    PhishingUserData,
}

impl Endpoint {
    pub(super) fn from_path(path: &str) -> Option<Endpoint> {
        Some(match path.strip_prefix(API_PREFIX)? {
            "company/get-performance-details" => Endpoint::Performance,
            "company/get-performance-summary" => Endpoint::PerformanceSummary,
            "company/get-watchlist-details" => Endpoint::Watchlist,
            "company/get-safe-score-details" => Endpoint::SafeScore,
            "company/get-safe-score-summary" => Endpoint::SafeScoreSummary,
            "user/get-training-details" => Endpoint::Training,
            "campaign/get-campaigns" => Endpoint::Campaigns,
            "campaign/get-user-data" => Endpoint::CampaignUserData,
            "phishing/campaign/get-campaign" => Endpoint::Phishing,
            "phishing/campaign/get-user-data" => Endpoint::PhishingUserData,
            _ => return None,
        })
    }

    /// Listed in the API 2.0 catalogue (developer.services.mimecast.com, December 2025); the
    /// catalogue lists no campaign/ endpoint.
    pub(super) fn in_catalogue(self) -> bool {
        !matches!(self, Endpoint::Campaigns | Endpoint::CampaignUserData)
    }

    pub(super) fn tag(self) -> &'static str {
        match self {
            Endpoint::Performance => "perf",
            Endpoint::PerformanceSummary => "perfsum",
            Endpoint::Watchlist => "watch",
            Endpoint::SafeScore => "safe",
            Endpoint::SafeScoreSummary => "safesum",
            Endpoint::Training => "train",
            Endpoint::Campaigns => "camps",
            Endpoint::CampaignUserData => "cud",
            Endpoint::Phishing => "phish",
            Endpoint::PhishingUserData => "pud",
        }
    }
}
