//! Proofpoint Security Awareness (ZenGuide) Results API.

pub(crate) mod metrics;
pub(crate) mod models;
