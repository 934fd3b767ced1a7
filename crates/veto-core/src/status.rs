//! What a node reports about itself and its peers (`GET /v1/status`,
//! `GET /v1/peers`), in the JSON shape of the HTTP API. The node builds
//! these, the API serializes them and the client decodes them.
//!
//! Status is `{"node": {"id": "<16 hex>", "name", "region"}, "revocations": N,
//! "digest": "<hex>", "peers": [<peer>...], "clock": {...}, "storage": {...}}`.
//! A peer is `{"name": "eu-west" | null, "listed_as"?: "eu-west", "addr":
//! "10.0.0.2:7401", "state": "connected" | "connecting" | "down" | "refused",
//! "lag": 0, "rtt_ms": 12.5 | null,
//! "last_contact": 1700000000 | null, "cwnd_bytes"?: 14720, "lost_packets"?: 0}`
//! (the last two while connected). `clock` is `{"state":
//! "ok"|"skewed"|"unconfirmed", "offset_ms"?, "peers_measured", "peers_off"}`:
//! while `skewed`, garbage collection and bulk revocations stop. `storage` is
//! `{"writes": "ok"|"halted", "halted_because"?, "missing_records"?}`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::NodeId;

/// Who a node is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Node))]
pub struct NodeInfo {
    /// The node's id in this process lifetime, 16 hex digits: the origin of
    /// the records it makes. A fresh one is drawn at every start, so that a
    /// data directory restored from a backup or cloned can never issue an id
    /// twice.
    #[serde(serialize_with = "id_to_hex", deserialize_with = "id_from_hex")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: NodeId,
    /// The operator-given name.
    pub name: String,
    /// The region it serves.
    pub region: String,
}

fn id_to_hex<S: Serializer>(id: &NodeId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

fn id_from_hex<'de, D: Deserializer<'de>>(d: D) -> Result<NodeId, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// A peer as an operator sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Peer))]
pub struct PeerView {
    /// The peer's name as its certificate proved it in a handshake with this
    /// node; null until one did. Never a name an operator or a peer merely
    /// claimed.
    pub name: Option<String>,
    /// The name this node's operator listed the peer under (`veto peers add
    /// --name`): only a certificate of that name is accepted from its
    /// address, and a node of that name may dial in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_as: Option<String>,
    /// The address it is dialled at.
    pub addr: String,
    /// `connected`, `connecting`, `down`, or `refused` (its certificate was
    /// revoked, its name removed, or it is not the name it was listed under).
    pub state: String,
    /// Records this node holds that the peer is known to lack.
    pub lag: u64,
    /// Smoothed round-trip time in milliseconds, once connected.
    #[serde(default)]
    pub rtt_ms: Option<f64>,
    /// Unix seconds of the last message from the peer.
    #[serde(default)]
    pub last_contact: Option<u64>,
    /// QUIC's congestion window on the current connection, in bytes: what
    /// bounds a backlog's rate over a long path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwnd_bytes: Option<u64>,
    /// UDP packets of the current connection that QUIC declared lost and
    /// sent again: the path's loss, or reordering past QUIC's thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_packets: Option<u64>,
}

/// The node's clock against its peers'.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ClockStatus))]
pub struct ClockView {
    /// `ok` (within the maximum offset of most peers measured), `skewed`
    /// (beyond it: garbage collection and bulk revocations stop), or
    /// `unconfirmed` (too few peers measured to tell).
    pub state: String,
    /// This node's clock minus the median peer's, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_ms: Option<i64>,
    /// Peers whose clocks were measured.
    pub peers_measured: usize,
    /// Of those, how many are beyond the maximum offset.
    pub peers_off: usize,
}

/// The store's health.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(into = "StorageJson", from = "StorageJson")]
pub struct StorageView {
    /// Why writes are halted, or `None` while they are taken.
    pub halted: Option<String>,
    /// Acknowledged records the database lost before this start (found by its
    /// durability marker) that peers have not yet sent back.
    pub missing_records: Option<u64>,
}

/// [`StorageView`] on the wire.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = StorageStatus))]
struct StorageJson {
    /// `ok` or `halted`.
    writes: String,
    /// Why writes are halted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    halted_because: Option<String>,
    /// Acknowledged records lost from the database before this start that
    /// peers have not sent back yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    missing_records: Option<u64>,
}

impl From<StorageView> for StorageJson {
    fn from(v: StorageView) -> StorageJson {
        StorageJson {
            writes: if v.halted.is_some() { "halted" } else { "ok" }.to_owned(),
            halted_because: v.halted,
            missing_records: v.missing_records,
        }
    }
}

impl From<StorageJson> for StorageView {
    fn from(j: StorageJson) -> StorageView {
        let halted = match j.halted_because {
            Some(why) => Some(why),
            None if j.writes == "halted" => Some(String::new()),
            None => None,
        };
        StorageView {
            halted,
            missing_records: j.missing_records,
        }
    }
}

/// What `/v1/status` reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Status))]
pub struct StatusView {
    /// Who this node is.
    pub node: NodeInfo,
    /// Live revocation records.
    pub revocations: u64,
    /// The set digest, as hex: two nodes with the same digest hold the same
    /// live records.
    pub digest: String,
    /// Every peer.
    pub peers: Vec<PeerView>,
    /// Whether this node's clock agrees with its peers'.
    #[serde(default)]
    pub clock: ClockView,
    /// Whether the store takes writes, and what it lost.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = StorageJson))]
    pub storage: StorageView,
    /// Per origin (the current writer of every node known), what this node
    /// holds of it and how fresh that is.
    #[serde(default)]
    pub origins: Vec<crate::receipt::OriginView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_has_the_api_shape_and_decodes_back() {
        let status = StatusView {
            node: NodeInfo {
                id: NodeId::new(0xab),
                name: "a".into(),
                region: "us-east".into(),
            },
            revocations: 3,
            digest: "00ff".into(),
            peers: vec![PeerView {
                name: None,
                listed_as: None,
                addr: "127.0.0.1:7401".into(),
                state: "down".into(),
                lag: 2,
                rtt_ms: None,
                cwnd_bytes: None,
                lost_packets: None,
                last_contact: None,
            }],
            clock: ClockView {
                state: "ok".into(),
                offset_ms: None,
                peers_measured: 1,
                peers_off: 0,
            },
            storage: StorageView {
                halted: Some("disk full".into()),
                missing_records: None,
            },
            origins: vec![crate::receipt::OriginView {
                origin: "00000000000000ab".into(),
                name: "a".into(),
                region: "us-east".into(),
                complete_through: Some(1.5),
                last_heard: Some(1.5),
                staleness_s: Some(0.0),
            }],
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "node": {"id": "00000000000000ab", "name": "a", "region": "us-east"},
                "revocations": 3,
                "digest": "00ff",
                "peers": [{"name": null, "addr": "127.0.0.1:7401", "state": "down",
                           "lag": 2, "rtt_ms": null, "last_contact": null}],
                "clock": {"state": "ok", "peers_measured": 1, "peers_off": 0},
                "storage": {"writes": "halted", "halted_because": "disk full"},
                "origins": [{"origin": "00000000000000ab", "name": "a", "region": "us-east",
                             "complete_through": 1.5, "last_heard": 1.5, "staleness_s": 0.0}],
            })
        );
        let back: StatusView = serde_json::from_value(json).unwrap();
        assert_eq!(back, status);
    }
}
