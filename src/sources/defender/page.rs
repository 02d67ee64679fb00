//! Graph collections as the paging engine reads them: `{"value": [...], "@odata.nextLink"}`,
//! each next link followed exactly as given, but only on the configured Graph host (the
//! bearer token goes with it); and Graph's error envelope read for the transport.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::Deserialize;

use super::models::GraphRow;
use crate::http::{VendorError, VendorHttp};
use crate::model::{FailureReason, Retry};
use crate::sources::lenient;
use crate::sources::paging::Format;

/// What a Graph page says besides its rows: the link to the next one.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NextLink {
    #[serde(
        default,
        rename = "@odata.nextLink",
        deserialize_with = "lenient::link"
    )]
    pub(crate) next: Option<String>,
}

/// The rows of a Graph collection; a row counts once by its key.
pub(crate) struct Collection<T>(PhantomData<T>);

impl<T: GraphRow> Format for Collection<T> {
    type Envelope = NextLink;
    type Row = T;
    const ROWS: &'static str = "value";

    fn key(row: &T) -> Option<Cow<'_, str>> {
        row.key().map(Cow::Borrowed)
    }
}

/// The scheme, host and port of `url`: a next link must keep the configured Graph origin.
pub(crate) fn origin(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(u.origin().ascii_serialization()).filter(|o| o != "null")
}

/// Graph's semantics: the `{"error": {"code", "message"}}` envelope, and 403 meaning the tenant
/// lacks the licence or the app the `AttackSimulation.Read.All` permission (reason `auth`,
/// asked again at the next interval, not on the fast retry schedule).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GraphHttp;

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    code: Option<String>,
    message: Option<String>,
}

impl VendorHttp for GraphHttp {
    fn read_error(&self, status: u16, body: &[u8]) -> Option<VendorError> {
        // The identity platform's token errors carry `error` as a string: not read here.
        let e = serde_json::from_slice::<ErrorBody>(body).ok()?.error;
        let mut detail = [e.code, e.message]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ");
        if let Some((cut, _)) = detail.char_indices().nth(200) {
            detail.truncate(cut);
        }
        let forbidden = status == 403;
        if forbidden {
            detail.push_str(
                " (the tenant needs Defender for Office 365 Plan 2 or E5, the app the \
                 AttackSimulation.Read.All application permission with admin consent)",
            );
        }
        Some(VendorError {
            detail,
            reason: forbidden.then_some(FailureReason::Auth),
            retry: if forbidden {
                Retry::NextInterval
            } else {
                Retry::Backoff
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::models::{RepeatOffender, Simulation, SimulationCoverage, TrainingCoverage};
    use super::*;
    use crate::sources::decode::RowBudget;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/defender/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(path).unwrap()
    }

    /// A page through the engine's reading: its next link, its rows, how many were skipped.
    pub(crate) fn decode<T: GraphRow>(body: &[u8]) -> (Option<String>, Vec<T>, u64) {
        let budget = RowBudget::new(1_000);
        let (mut rows, mut skipped) = (Vec::new(), 0);
        let page = Collection::<T>::read(body, &budget, &mut |raw| {
            let (n, bad) = Collection::<T>::rows(raw, &mut rows);
            skipped += bad;
            n
        })
        .unwrap();
        assert!(Collection::<T>::refusal(&page).is_none());
        (page.envelope.next, rows, skipped)
    }

    #[test]
    fn the_documented_pages_read_with_their_links() {
        let (next, sims, skipped) = decode::<Simulation>(&fixture("doc_list_simulations.json"));
        assert_eq!((next, sims.len(), skipped), (None, 1, 0));
        let (next, rows, skipped) = decode::<RepeatOffender>(&fixture("doc_repeat_offenders.json"));
        assert_eq!(
            next.as_deref(),
            Some("https://graph.microsoft.com/v1.0/reports/security/getAttackSimulationRepeatOffenders?$skiptoken=+RID%3")
        );
        assert_eq!((rows.len(), skipped), (2, 0));
        let (_, rows, skipped) =
            decode::<SimulationCoverage>(&fixture("doc_simulation_user_coverage.json"));
        assert_eq!((rows.len(), skipped), (2, 0));
        let (_, rows, skipped) =
            decode::<TrainingCoverage>(&fixture("doc_training_user_coverage.json"));
        assert_eq!((rows.len(), skipped), (1, 0));
    }

    #[test]
    fn rows_without_identity_or_with_wrong_types_are_skipped_and_counted() {
        let (_, rows, skipped) = decode::<SimulationCoverage>(
            br#"{"value":[{"simulationCount":{"x":1},"attackSimulationUser":{"userId":"a"}},
                {"attackSimulationUser":["not","an","object"]},
                {"simulationCount":1,"attackSimulationUser":{"userId":"b"}}]}"#,
        );
        assert_eq!((rows.len(), skipped), (1, 2));
        let page =
            Collection::<Simulation>::read(br#"{"value":null}"#, &RowBudget::new(9), &mut |_| 0)
                .unwrap();
        assert!(
            !page.has_rows,
            "no value array: the engine refuses the page"
        );
    }

    #[test]
    fn next_links_keep_the_origin_and_errors_read_the_envelope() {
        assert_eq!(
            origin("https://graph.microsoft.com/v1.0/x?$skiptoken=+RID%3").as_deref(),
            Some("https://graph.microsoft.com")
        );
        assert_ne!(
            origin("https://graph.microsoft.com.evil/x"),
            origin("https://graph.microsoft.com/")
        );
        assert_eq!(origin("not a url"), None);

        let throttled = GraphHttp
            .read_error(429, &fixture("doc_error_throttled.json"))
            .unwrap();
        assert_eq!(
            throttled.detail,
            "TooManyRequests: Please retry again later."
        );
        let denied = GraphHttp
            .read_error(403, br#"{"error":{"code":"accessDenied","message":"no"}}"#)
            .unwrap();
        assert_eq!(
            (denied.reason, denied.retry),
            (Some(FailureReason::Auth), Retry::NextInterval)
        );
        assert!(denied
            .detail
            .starts_with("accessDenied: no (the tenant needs"));
        let other = GraphHttp
            .read_error(400, &fixture("doc_error_envelope.json"))
            .unwrap();
        assert_eq!((other.reason, other.retry), (None, Retry::Backoff));
        assert!(GraphHttp
            .read_error(400, &fixture("doc_token_error.json"))
            .is_none());
        assert!(GraphHttp
            .read_error(502, b"<html>bad gateway</html>")
            .is_none());
    }
}
