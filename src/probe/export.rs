//! The Prometheus side of `veto probe`: the recorder, the `/metrics`
//! endpoint of `--metrics-listen`, and what each round records.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::http::header;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::round::Pair;

/// Seconds from a canary's acknowledgement at `from` to its refusal at `to`.
const ENFORCE: &str = "veto_probe_enforce_seconds";
/// Pairs not enforced within the timeout, or whose nodes could not be reached.
const FAILURES: &str = "veto_probe_failures_total";
/// Rounds completed: a probe that stopped measuring shows as a flat line.
const ROUNDS: &str = "veto_probe_rounds_total";

/// Histogram buckets, in seconds: from loopback (milliseconds) to a slow
/// cross-region repair by anti-entropy (tens of seconds). A histogram rather
/// than a summary, so that the pairs of several probes can be aggregated.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Installs the recorder and serves `GET /metrics` on `addr`; answers the
/// address bound (a port 0 picks a free one).
pub(crate) async fn serve(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(ENFORCE.to_owned()), BUCKETS)
        .context("cannot set the histogram buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    metrics::describe_histogram!(
        ENFORCE,
        metrics::Unit::Seconds,
        "Seconds from a canary revocation's acknowledgement at `from` until `to` refused the canary."
    );
    metrics::describe_counter!(
        FAILURES,
        "Canary revocations at `from` that `to` did not enforce within the timeout, or that failed on an error talking to a node."
    );
    metrics::describe_counter!(ROUNDS, "Probe rounds completed.");
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr().context("no local address")?;
    let render = handle.clone();
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let text = render.render();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    );
    tokio::spawn(upkeep(handle));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("veto probe: the metrics endpoint stopped: {e}");
        }
    });
    Ok(bound)
}

/// Keeps the recorder's histograms drained between scrapes, as `veto serve`
/// does.
async fn upkeep(handle: PrometheusHandle) {
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    loop {
        ticker.tick().await;
        handle.run_upkeep();
    }
}

/// Records one round. Every pair's failure counter is touched, at zero when
/// it did not fail, so that the series exist before the first failure and
/// `increase()` sees that failure.
pub(crate) fn record(pairs: &[Pair]) {
    for p in pairs {
        let labels = [("from", p.from.clone()), ("to", p.to.clone())];
        let failures = metrics::counter!(FAILURES, &labels);
        match p.outcome {
            Ok(took) => {
                failures.increment(0);
                metrics::histogram!(ENFORCE, &labels).record(took.as_secs_f64());
            }
            Err(_) => failures.increment(1),
        }
    }
    metrics::counter!(ROUNDS).increment(1);
}
