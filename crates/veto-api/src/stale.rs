//! The staleness bound (`--max-staleness`, `--stale-policy`): how far behind
//! any origin this node may be before its "not revoked" stops being trusted.
//!
//! A node holds every record an origin made up to that origin's watermark
//! (`/v1/status` `origins`); the staleness of an origin is how long ago that
//! watermark is. A revocation made at an origin after its watermark may not
//! be here yet, so a "not revoked" answered while an origin is staler than the
//! bound may be wrong. What then happens is the policy:
//!
//! - `/v1/auth` (and Envoy's gRPC check, the same decision): under `closed`
//!   (the default), 503 `{"error": "stale", "message", "stale": {"<name>":
//!   secs|null}}`, which nginx and Envoy turn into a refusal; under `open`,
//!   200 with `Veto-Stale: <name>=<seconds>,...`. A revoked token is refused
//!   as always: revoked beats stale.
//! - `/v1/check`: `"stale": {"<name>": secs|null}` beside the answer, under
//!   either policy; `revoked` never changes.
//!
//! `null` (and `unknown` in the header) is an origin of which nothing is
//! known yet, which counts as stale. A request may tighten the bound with
//! `?max_staleness=SECS`, a positive number; with no bound configured that
//! bound holds for the request under `closed`, and a value above the
//! configured bound is ignored for it.
//!
//! With no bound configured and none asked for, nothing here runs: the
//! lookup path does not even read the watermarks. Lookups answered while
//! stale are counted in `veto_stale_decisions_total{policy, endpoint}`.

use std::fmt::Write as _;
use std::time::Duration;

use axum::http::{HeaderValue, Response};
use metrics::Counter;
use serde::ser::{Serialize, SerializeMap, Serializer};
use tower_http::classify::{
    ClassifiedResponse, ClassifyResponse, NeverClassifyEos, ServerErrorsAsFailures,
    ServerErrorsFailureClass,
};
use veto_core::receipt::OriginView;

use crate::backend::Backend;
use crate::error::ApiError;

/// The header of a `/v1/auth` answer given while stale.
pub const STALE_HEADER: &str = "veto-stale";

/// What a lookup answers when an origin is staler than the bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StalePolicy {
    /// Refuse: `/v1/auth` answers 503 `stale` (the default).
    #[default]
    Closed,
    /// Let the request through, saying so in `Veto-Stale`.
    Open,
}

impl StalePolicy {
    /// `closed` or `open`, as the flag and the metric spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            StalePolicy::Closed => "closed",
            StalePolicy::Open => "open",
        }
    }
}

/// A staleness bound and what to do past it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaleBound {
    /// The most an origin may lag before lookups count as stale.
    pub max: Duration,
    /// What a stale lookup answers.
    pub policy: StalePolicy,
}

impl StaleBound {
    /// A bound of `max` with `policy`.
    pub fn new(max: Duration, policy: StalePolicy) -> StaleBound {
        StaleBound { max, policy }
    }

    /// The bound that holds for one request: the configured one, tightened
    /// by what the request asks for (which alone holds under `closed`).
    pub fn effective(
        configured: Option<StaleBound>,
        requested: Option<Duration>,
    ) -> Option<StaleBound> {
        match (configured, requested) {
            (None, None) => None,
            (Some(b), None) => Some(b),
            (None, Some(max)) => Some(StaleBound::new(max, StalePolicy::Closed)),
            (Some(b), Some(max)) => Some(StaleBound::new(b.max.min(max), b.policy)),
        }
    }
}

/// One origin past the bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleOrigin {
    /// The name of the node the origin belongs to.
    pub name: String,
    /// How stale it is; `None` when nothing is known of it yet.
    pub staleness: Option<Duration>,
}

/// The origins past the bound when a lookup was answered, in the node's
/// order. As JSON, `{"<name>": seconds|null}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stale {
    /// Every origin past the bound (never empty).
    pub origins: Vec<StaleOrigin>,
}

/// Seconds rounded to the millisecond, for JSON.
fn json_secs(d: Duration) -> f64 {
    d.as_millis() as f64 / 1000.0
}

impl Stale {
    /// The origins of `origins` staler than `bound` (nothing known counts as
    /// stale), or `None` when there are none. Takes the names out of
    /// `origins` rather than copying them.
    pub fn of(origins: Vec<OriginView>, bound: Duration) -> Option<Stale> {
        let limit = bound.as_secs_f64();
        let stale: Vec<StaleOrigin> = origins
            .into_iter()
            .filter(|o| o.staleness_s.is_none_or(|s| s > limit))
            .map(|o| StaleOrigin {
                name: o.name,
                staleness: o.staleness_s.map(|s| {
                    // A staleness too large for a Duration is as stale as it gets.
                    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
                }),
            })
            .collect();
        (!stale.is_empty()).then_some(Stale { origins: stale })
    }

    /// `Veto-Stale`: `<name>=<seconds, one decimal>,...`, `unknown` for an
    /// origin of which nothing is known. A character of a name that cannot go
    /// in a header, or that would break the list, shows as `_`.
    pub fn header_value(&self) -> HeaderValue {
        let mut text = String::new();
        for (i, o) in self.origins.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.extend(o.name.chars().map(|c| match c {
                ',' | '=' | ';' => '_',
                c if c.is_ascii_graphic() => c,
                _ => '_',
            }));
            match o.staleness {
                Some(d) => {
                    let _ = write!(text, "={:.1}", d.as_secs_f64());
                }
                None => text.push_str("=unknown"),
            }
        }
        // Only visible ASCII is left, which a header value always takes.
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
    }
}

impl Serialize for Stale {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.origins.len()))?;
        for o in &self.origins {
            map.serialize_entry(&o.name, &o.staleness.map(json_secs))?;
        }
        map.end()
    }
}

/// Parses `?max_staleness=`: seconds, a positive finite number.
pub(crate) fn parse_max_staleness(value: &str) -> Result<Duration, ApiError> {
    match value.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 => {
            Ok(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
        }
        _ => Err(ApiError::invalid(format!(
            "`max_staleness` must be a positive number of seconds, not {value:?}"
        ))),
    }
}

/// Sets `slot` from a `max_staleness` query value, refusing a second one.
pub(crate) fn set_max_staleness(slot: &mut Option<Duration>, value: &str) -> Result<(), ApiError> {
    if slot.replace(parse_max_staleness(value)?).is_some() {
        return Err(ApiError::invalid(
            "query parameter `max_staleness` is given twice",
        ));
    }
    Ok(())
}

/// `veto_stale_decisions_total` of one endpoint, registered once.
pub(crate) struct StaleMetrics {
    closed: Counter,
    open: Counter,
}

impl StaleMetrics {
    pub(crate) fn new(endpoint: &'static str) -> StaleMetrics {
        StaleMetrics {
            closed: metrics::counter!("veto_stale_decisions_total", "policy" => "closed", "endpoint" => endpoint),
            open: metrics::counter!("veto_stale_decisions_total", "policy" => "open", "endpoint" => endpoint),
        }
    }

    /// Counts `n` lookups answered while stale under `policy`.
    pub(crate) fn count(&self, policy: StalePolicy, n: u64) {
        match policy {
            StalePolicy::Closed => self.closed.increment(n),
            StalePolicy::Open => self.open.increment(n),
        }
    }
}

/// The stale origins for a lookup under `configured` tightened by
/// `requested`, and the policy in force; `None` when no bound holds (the
/// watermarks are then not read at all) or no origin is past it.
pub(crate) fn judge(
    backend: &dyn Backend,
    configured: Option<StaleBound>,
    requested: Option<Duration>,
) -> Option<(Stale, StalePolicy)> {
    let bound = StaleBound::effective(configured, requested)?;
    Stale::of(backend.origins(), bound.max).map(|stale| (stale, bound.policy))
}

/// Classifies answers for the HTTP trace layer as its default does (a 5xx
/// is a failure, logged as an error), except a stale refusal: that is the
/// policy doing its job, counted in `veto_stale_decisions_total`, and
/// logging it would write an error line per request for as long as a
/// partition lasts. It is told by its `Veto-Stale` header.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TraceClassifier;

impl ClassifyResponse for TraceClassifier {
    type FailureClass = ServerErrorsFailureClass;
    type ClassifyEos = NeverClassifyEos<ServerErrorsFailureClass>;

    fn classify_response<B>(
        self,
        res: &Response<B>,
    ) -> ClassifiedResponse<Self::FailureClass, Self::ClassifyEos> {
        if res.headers().contains_key(STALE_HEADER) {
            return ClassifiedResponse::Ready(Ok(()));
        }
        ServerErrorsAsFailures::new().classify_response(res)
    }

    fn classify_error<E: std::fmt::Display + 'static>(self, error: &E) -> Self::FailureClass {
        ServerErrorsAsFailures::new().classify_error(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(name: &str, staleness_s: Option<f64>) -> OriginView {
        OriginView {
            origin: "0000000000000001".into(),
            name: name.into(),
            region: "r".into(),
            complete_through: staleness_s.map(|s| 1e9 - s),
            last_heard: None,
            staleness_s,
        }
    }

    #[test]
    fn only_origins_past_the_bound_or_unknown_are_stale() {
        let origins = vec![
            origin("us", Some(0.0)),
            origin("eu", Some(4.25)),
            origin("ap", None),
            origin("sa", Some(3.0)),
        ];
        let stale = Stale::of(origins, Duration::from_secs(3)).unwrap();
        let names: Vec<_> = stale.origins.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["eu", "ap"]);
        assert_eq!(stale.header_value(), "eu=4.2,ap=unknown");
        assert_eq!(
            serde_json::to_string(&stale).unwrap(),
            r#"{"eu":4.25,"ap":null}"#
        );
        assert_eq!(
            Stale::of(vec![origin("us", Some(0.5))], Duration::from_secs(3)),
            None
        );
    }

    #[test]
    fn a_name_cannot_break_the_header() {
        let stale = Stale::of(
            vec![origin("a,b=c\nd é", Some(9.0))],
            Duration::from_secs(1),
        );
        assert_eq!(stale.unwrap().header_value(), "a_b_c_d__=9.0");
    }

    #[test]
    fn a_request_only_tightens() {
        let closed = |s| StaleBound::new(Duration::from_secs(s), StalePolicy::Closed);
        let open = StaleBound::new(Duration::from_secs(5), StalePolicy::Open);
        let secs = Duration::from_secs;
        assert_eq!(StaleBound::effective(None, None), None);
        assert_eq!(StaleBound::effective(None, Some(secs(2))), Some(closed(2)));
        assert_eq!(
            StaleBound::effective(Some(open), Some(secs(2))),
            Some(StaleBound::new(secs(2), StalePolicy::Open))
        );
        assert_eq!(
            StaleBound::effective(Some(open), Some(secs(50))),
            Some(open)
        );
    }

    #[test]
    fn max_staleness_is_a_positive_finite_number() {
        assert_eq!(
            parse_max_staleness("2.5").unwrap(),
            Duration::from_millis(2500)
        );
        assert_eq!(parse_max_staleness("1e300").unwrap(), Duration::MAX);
        for bad in ["", "0", "-1", "abc", "inf", "NaN", "1s"] {
            assert!(parse_max_staleness(bad).is_err(), "{bad:?}");
        }
    }
}
