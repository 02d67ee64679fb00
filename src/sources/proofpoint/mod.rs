//! Proofpoint Security Awareness (ZenGuide): the Results API's reports, one section each
//! (`GET /api/reporting/v0.3.0/{users,phishing,phishalarm,trainingenrollments,cyberstrength}`),
//! the key in `x-apikey-token`. What the API answers and where each fact comes from:
//! docs/vendors/proofpoint-api.md.

pub(crate) mod config;
pub(crate) mod metrics;
pub(crate) mod models;
pub(crate) mod pager;

use std::marker::PhantomData;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::http::{VendorError, VendorHttp};
use crate::model::{
    FailureReason, FetchError, Platform, PollError, PollOutcome, Retry, SectionOutcome, SourceKey,
};
use crate::snapshot::Rendered;
use crate::sources::paging::Engine;
use crate::sources::registry::Registration;
use crate::sources::{Source, SourceContext};
use config::{ProofpointConfig, Report};
use metrics::{Accumulate, Answers, Enrollments, Phishing, Reports, Scope, Users};
use pager::{first_url, ReportPager};

pub(crate) const PLATFORM: Platform = Platform::new("proofpoint");

pub(crate) static VENDOR: Registration<ProofpointConfig, ProofpointSource> = Registration {
    platform: PLATFORM,
    title: "Proofpoint Security Awareness (ZenGuide Results API)",
    secret_keys: config::SECRET_KEYS,
    read: config::read,
    source: ProofpointSource::new,
};

/// What the Results API's statuses mean: 402 "API Budget Empty" is final until the next
/// interval; 422 ("Invalid Token, Token Decode Error") refuses the key, as 401 and 403 do.
struct ProofpointHttp;

impl VendorHttp for ProofpointHttp {
    fn read_error(&self, status: u16, _body: &[u8]) -> Option<VendorError> {
        // The documented bodies are not valid JSON: the status alone says it.
        match status {
            402 => Some(VendorError {
                detail: "API Budget Empty (HTTP 402): no API requests remaining in budget".into(),
                reason: Some(FailureReason::Quota),
                retry: Retry::NextInterval,
            }),
            422 => Some(VendorError {
                detail: "Invalid Token, Token Decode Error".into(),
                reason: Some(FailureReason::Auth),
                retry: Retry::Backoff,
            }),
            _ => None,
        }
    }
}

pub(crate) struct ProofpointSource {
    config: ProofpointConfig,
    ctx: SourceContext,
    engine: Engine,
}

impl ProofpointSource {
    fn new(config: ProofpointConfig, ctx: SourceContext) -> Self {
        let key = SourceKey::new(PLATFORM, &config.account);
        let listings: Vec<&'static str> = config.reports.iter().map(|r| r.name()).collect();
        let engine = ctx.engine(&config, key, Arc::new(ProofpointHttp), &listings);
        ProofpointSource {
            config,
            ctx,
            engine,
        }
    }

    /// Reads every page of `report` into `acc`, then renders it off the async threads.
    async fn section<A: Accumulate>(&self, report: Report, acc: A) -> Result<Rendered, FetchError> {
        let endpoint = report.name();
        let first = first_url(&self.config, endpoint)?;
        let mut pager = ReportPager::<A::Row> {
            source: self,
            endpoint,
            next: Some(first.clone()),
            first,
            rows: PhantomData,
        };
        let add = |acc: &mut A, rows: Vec<_>| rows.into_iter().for_each(|r| acc.add(r));
        let acc = self.engine.fold(&mut pager, acc, add).await?;
        let scope = Scope {
            key: self.engine.key.clone(),
            metrics: self.ctx.metrics.clone(),
            stats: self.ctx.stats.clone(),
        };
        let render = move || acc.render(&scope);
        self.engine.off_thread(render).await
    }

    async fn poll_report(&self, report: Report) -> Result<Rendered, PollError> {
        let (tag, m) = (self.config.user_tag.as_deref(), &self.ctx.metrics);
        let result = match report {
            Report::Users => self.section(report, Users::new(tag)).await,
            Report::Phishing => self.section(report, Phishing::new(m)).await,
            Report::Phishalarm => self.section(report, Reports::default()).await,
            Report::Trainingenrollments => self.section(report, Enrollments::new(tag, m)).await,
            Report::Cyberstrength => self.section(report, Answers::default()).await,
        };
        result.map_err(PollError::from)
    }
}

impl Source for ProofpointSource {
    fn key(&self) -> &SourceKey {
        &self.engine.key
    }

    fn sections(&self) -> Vec<&'static str> {
        self.config.reports.iter().map(|r| r.name()).collect()
    }

    fn poll_sections(&self, wanted: Vec<&'static str>) -> BoxFuture<'_, PollOutcome> {
        async move {
            self.engine.begin_poll();
            let mut sections: Vec<SectionOutcome> = Vec::new();
            // One report after another: every request spends the account's budget. Once it is
            // empty (402), the other reports wait for the next interval too, unasked.
            for report in self
                .config
                .reports
                .iter()
                .filter(|r| wanted.contains(&r.name()))
            {
                let spent = sections.iter().find_map(|s| match &s.result {
                    Err(e) if e.reason() == Some(FailureReason::Quota) => Some(e.clone()),
                    _ => None,
                });
                let result = match spent {
                    Some(e) => Err(e),
                    None => self.poll_report(*report).await,
                };
                sections.push(SectionOutcome {
                    name: report.name(),
                    result,
                });
            }
            self.ctx.stats.rows_read(self.engine.rows_read());
            PollOutcome { sections }
        }
        .boxed()
    }
}
