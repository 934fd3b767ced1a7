//! Proof of enforcement: revokes that wait for their receipt (`?wait=` and
//! `?timeout=`), and `GET /v1/revocations/{id}/receipt`.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use veto_core::receipt::ReceiptView;
use veto_core::request::RevokeRequest;
use veto_core::view::RecordView;

use super::{json, Client};
use crate::error::ClientError;

/// A revocation stored with `?wait=`: what the node stored, and which nodes
/// enforced it when the node answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Waited<T> {
    /// What was stored: the record, or a batch's records in request order.
    pub stored: T,
    /// Which nodes enforce it, as the node saw it when it answered.
    pub receipt: ReceiptView,
    /// Whether the wait was met (the node answered 201); `false` when it
    /// answered 202 at the timeout. The revocation is stored either way.
    pub met: bool,
}

#[derive(Deserialize)]
struct BatchAnswer {
    records: Vec<RecordView>,
    #[serde(default)]
    receipt: Option<ReceiptView>,
}

/// 201 means the wait was met and 202 that the timeout came first; nothing
/// else is a wait's answer.
fn met(resp: &Response) -> Result<bool, ClientError> {
    match resp.status() {
        StatusCode::CREATED => Ok(true),
        StatusCode::ACCEPTED => Ok(false),
        other => Err(ClientError::protocol(format!(
            "a revoke with `wait` answered {other}, not 201 or 202"
        ))),
    }
}

fn receipt_of(value: Option<serde_json::Value>) -> Result<ReceiptView, ClientError> {
    match value {
        Some(v) if !v.is_null() => serde_json::from_value(v)
            .map_err(|e| ClientError::protocol(format!("receipt JSON: {e}"))),
        _ => Err(ClientError::protocol("a revoke with `wait` and no receipt")),
    }
}

/// The query of a wait. The node takes fractional seconds; it refuses more
/// than 60, and a `wait` it cannot read, with 400.
fn wait_query(wait: &str, timeout: Duration) -> [(&'static str, String); 2] {
    [
        ("wait", wait.to_owned()),
        ("timeout", timeout.as_secs_f64().to_string()),
    ]
}

impl Client {
    /// `POST /v1/revocations?wait=&timeout=` (admin): stores one revocation
    /// and answers once `wait` is met or `timeout` passes, with the receipt.
    ///
    /// `wait` is `all`, `quorum`, a number of nodes, or comma-separated
    /// regions (see `veto_core::receipt::Wait`); `timeout` is at most 60 s.
    /// The node checks both, and the regions named, before it stores
    /// anything: a bad one is [`ClientError::Api`] with status 400. This
    /// call may take the client's timeout plus `timeout`.
    pub async fn revoke_wait(
        &self,
        req: &RevokeRequest,
        wait: &str,
        timeout: Duration,
    ) -> Result<Waited<RecordView>, ClientError> {
        let builder = self
            .admin(Method::POST, "/v1/revocations")?
            .query(&wait_query(wait, timeout))
            .timeout(self.timeout.saturating_add(timeout))
            .json(req);
        let resp = Client::send(builder).await?;
        let met = met(&resp)?;
        let mut body: serde_json::Map<String, serde_json::Value> = json(resp).await?;
        let receipt = receipt_of(body.remove("receipt"))?;
        let stored = serde_json::from_value(serde_json::Value::Object(body))
            .map_err(|e| ClientError::protocol(format!("record JSON: {e}")))?;
        Ok(Waited {
            stored,
            receipt,
            met,
        })
    }

    /// `POST /v1/revocations/batch?wait=&timeout=` (admin): stores a batch
    /// as one, and answers once `wait` is met for every record of it or
    /// `timeout` passes; as [`Client::revoke_wait`]. An empty batch stores
    /// nothing and has nothing to wait for: its receipt has an empty `id`,
    /// no nodes, and is complete.
    pub async fn revoke_batch_wait(
        &self,
        reqs: &[RevokeRequest],
        wait: &str,
        timeout: Duration,
    ) -> Result<Waited<Vec<RecordView>>, ClientError> {
        let builder = self
            .admin(Method::POST, "/v1/revocations/batch")?
            .query(&wait_query(wait, timeout))
            .timeout(self.timeout.saturating_add(timeout))
            .json(reqs);
        let resp = Client::send(builder).await?;
        let met = met(&resp)?;
        let answer: BatchAnswer = json(resp).await?;
        let receipt = match answer.receipt {
            Some(receipt) => receipt,
            // The node leaves the receipt out only when nothing was stored.
            None if answer.records.is_empty() => ReceiptView {
                id: String::new(),
                complete: true,
                nodes: Vec::new(),
            },
            None => return Err(ClientError::protocol("a revoke with `wait` and no receipt")),
        };
        Ok(Waited {
            stored: answer.records,
            receipt,
            met,
        })
    }

    /// `GET /v1/revocations/{id}/receipt` (roles revoke or audit): which
    /// nodes of the cluster enforce record `id` (`origin-seq`) now. A record
    /// no node is known to hold is [`ClientError::Api`] with status 404.
    pub async fn receipt(&self, id: &str) -> Result<ReceiptView, ClientError> {
        let mut url = reqwest::Url::parse(&format!("{}/v1/revocations", self.base))
            .map_err(|_| ClientError::Url(self.base.clone()))?;
        // As a path segment: an id with a `/` or `?` must not reach another route.
        url.path_segments_mut()
            .map_err(|()| ClientError::Url(self.base.clone()))?
            .push(id)
            .push("receipt");
        let token = self.admin.as_deref().ok_or(ClientError::NoAdminToken)?;
        let req = self.http.get(url).timeout(self.timeout).bearer_auth(token);
        json(Client::send(req).await?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_sent_as_seconds_with_their_fraction() {
        let q = wait_query("eu-west,ap-south", Duration::from_millis(2500));
        assert_eq!(q[0], ("wait", "eu-west,ap-south".to_owned()));
        assert_eq!(q[1], ("timeout", "2.5".to_owned()));
        assert_eq!(wait_query("all", Duration::from_secs(10))[1].1, "10");
    }

    #[test]
    fn a_wait_answer_must_carry_its_receipt() {
        assert!(receipt_of(None).is_err());
        assert!(receipt_of(Some(serde_json::Value::Null)).is_err());
        let receipt = receipt_of(Some(serde_json::json!({
            "id": "00000000000000ab-7",
            "complete": false,
            "nodes": [{"name": "ap", "region": "ap-south", "state": "pending", "last_heard": 1.5}],
        })))
        .unwrap();
        assert!(!receipt.complete);
        assert_eq!(receipt.nodes[0].enforced_at, None);
        assert_eq!(receipt.nodes[0].last_heard, Some(1.5));
    }
}
