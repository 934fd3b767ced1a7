//! One round of `veto probe`: a canary revoked at each node in turn, and for
//! each, the time until every other node (and the gateway) refuses it.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use veto_client::{Client, ClientError, Gateway};

use super::canary::Canary;

/// How often a target is asked whether it refuses the canary yet: often
/// enough that the poll adds a few milliseconds at most to a measurement.
const POLL: Duration = Duration::from_millis(5);

/// The label of the gateway target.
pub(crate) const GATEWAY: &str = "gateway";

/// A node as the probe reaches it.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Its name from `GET /v1/status`, or its URL while that is unknown.
    pub(crate) label: String,
    /// Its HTTP API.
    pub(crate) client: Client,
}

/// What one ordered pair showed in a round.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pair {
    /// Where the canary was revoked.
    pub(crate) from: String,
    /// Where its enforcement was awaited.
    pub(crate) to: String,
    /// The time from the revoke's acknowledgement to the first refusal seen,
    /// or why there was none.
    pub(crate) outcome: Result<Duration, String>,
}

/// A failed call, with every cause in the chain ("connection refused" is
/// several sources down in reqwest's errors), leaving out a cause that its
/// error already quotes.
fn describe(err: ClientError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    text
}

/// Revokes a canary at each node in turn and measures every other target.
/// Node by node, so that one canary's traffic never delays another's
/// measurement.
pub(crate) async fn run(nodes: &[Node], gateway: Option<&Gateway>, timeout: Duration) -> Vec<Pair> {
    let mut pairs = Vec::new();
    for (i, from) in nodes.iter().enumerate() {
        let others: Vec<&Node> = nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| n)
            .collect();
        pairs.extend(from_node(from, &others, gateway, timeout).await);
    }
    pairs
}

/// The pairs of one canary revoked at `from`.
async fn from_node(
    from: &Node,
    others: &[&Node],
    gateway: Option<&Gateway>,
    timeout: Duration,
) -> Vec<Pair> {
    let canary = Canary::new(timeout);
    let pair = |to: &str, outcome| Pair {
        from: from.label.clone(),
        to: to.to_owned(),
        outcome,
    };
    // The gateway must let the canary through before it is revoked: a
    // gateway that refuses it anyway (one that checks signatures, or a route
    // that is down) would otherwise look like one that enforces at once.
    let gateway_ready = match gateway {
        Some(gw) => Some(match gw.passes(&canary.jwt).await {
            Ok(true) => Ok(gw.clone()),
            Ok(false) => Err(format!(
                "the gateway refused the canary before it was revoked: \
                 {} must pass its bearer token to veto's /v1/auth",
                gw.url()
            )),
            Err(e) => Err(format!("cannot reach the gateway: {}", describe(e))),
        }),
        None => None,
    };

    if let Err(e) = from.client.revoke(&canary.revocation()).await {
        let why = format!("revoke at {} failed: {}", from.label, describe(e));
        let mut failed: Vec<Pair> = others
            .iter()
            .map(|to| pair(&to.label, Err(why.clone())))
            .collect();
        if gateway.is_some() {
            failed.push(pair(GATEWAY, Err(why)));
        }
        return failed;
    }
    let acked = Instant::now();
    let deadline = acked + timeout;

    let mut waits: Vec<(String, JoinHandle<Result<Duration, String>>)> = Vec::new();
    for to in others {
        let client = to.client.clone();
        let claims = canary.claims();
        let refused = move || {
            let (client, claims) = (client.clone(), claims.clone());
            async move {
                client
                    .check(&claims)
                    .await
                    .map(|hit| hit.is_some())
                    .map_err(describe)
            }
        };
        waits.push((
            to.label.clone(),
            tokio::spawn(until_refused(refused, acked, deadline)),
        ));
    }
    let mut gateway_failure = None;
    match gateway_ready {
        Some(Ok(gw)) => {
            let jwt = canary.jwt.clone();
            let refused = move || {
                let (gw, jwt) = (gw.clone(), jwt.clone());
                async move { gw.passes(&jwt).await.map(|p| !p).map_err(describe) }
            };
            waits.push((
                GATEWAY.to_owned(),
                tokio::spawn(until_refused(refused, acked, deadline)),
            ));
        }
        Some(Err(why)) => gateway_failure = Some(why),
        None => {}
    }

    let mut pairs = Vec::new();
    for (to, wait) in waits {
        let outcome = wait
            .await
            .unwrap_or_else(|e| Err(format!("the measurement task failed: {e}")));
        pairs.push(pair(&to, outcome));
    }
    if let Some(why) = gateway_failure {
        pairs.push(pair(GATEWAY, Err(why)));
    }
    pairs
}

/// Asks `refused` every [`POLL`] until it answers `true` (the time since
/// `acked`) or `deadline` passes (why not, with the last error, if the
/// target's last answer was one).
async fn until_refused<F, Fut>(
    mut refused: F,
    acked: Instant,
    deadline: Instant,
) -> Result<Duration, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, String>>,
{
    let mut last_error: Option<String> = None;
    loop {
        match tokio::time::timeout_at(deadline, refused()).await {
            Ok(Ok(true)) => return Ok(acked.elapsed()),
            // A node that failed once and then answered "not revoked" simply
            // has not enforced yet.
            Ok(Ok(false)) => last_error = None,
            Ok(Err(e)) => last_error = Some(e),
            // The ask cut short by the deadline says less than the error
            // before it, if there was one.
            Err(_) => {
                last_error.get_or_insert_with(|| "no answer before the deadline".to_owned());
            }
        }
        if Instant::now() >= deadline {
            let within = (deadline - acked).as_secs_f64();
            return Err(match last_error {
                Some(e) => format!("not enforced within {within} s; last error: {e}"),
                None => format!("not enforced within {within} s"),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_target_that_refuses_at_the_third_ask_is_measured() {
        let mut asks = 0;
        let acked = Instant::now();
        let measured = until_refused(
            || {
                asks += 1;
                let now = asks >= 3;
                async move { Ok(now) }
            },
            acked,
            acked + Duration::from_secs(5),
        )
        .await;
        assert!(measured.is_ok_and(|d| d >= POLL * 2), "two polls passed");
    }

    #[tokio::test]
    async fn a_target_that_never_refuses_fails_with_its_last_error() {
        let acked = Instant::now();
        let failed = until_refused(
            || async { Err("connection refused".to_owned()) },
            acked,
            acked + Duration::from_millis(50),
        )
        .await;
        let why = failed.expect_err("never refused");
        assert!(why.contains("not enforced within 0.05 s"), "{why}");
        assert!(why.contains("connection refused"), "{why}");
    }
}
