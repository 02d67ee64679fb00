//! Microsoft Defender Attack Simulation Training through Microsoft Graph v1.0: OAuth2 client
//! credentials, `@odata.nextLink` paging followed exactly as given, the Graph error envelope.
//! Sections: `simulations` (the list and each launched simulation's report overview),
//! `simulation-coverage`, `training-coverage` and `repeat-offenders` (the three report
//! functions), each published whole or kept from the last good poll.

pub(crate) mod metrics;
pub(crate) mod models;
