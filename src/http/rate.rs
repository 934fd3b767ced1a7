//! Rate limits: token buckets per bearer token on the writes
//! (`POST /v1/revocations`, `/v1/revocations/batch`, `/oauth2/revoke`) and
//! per client address on the open lookups (`/v1/check`, `/v1/auth`). A
//! request over its bucket is answered 429 `rate_limited` with
//! `Retry-After` (whole seconds).
//!
//! Writes without a bearer token are counted per client address. An IPv6
//! client is counted by its /64, the block one host usually holds. A bucket
//! refills at its rate up to its burst; buckets are kept for at most
//! [`MAX_KEYS`] tokens or addresses per class, dropping those refilled to
//! full when there is no room, and keys beyond that share one bucket, so the
//! memory of the limits stays bounded whatever clients send.
//!
//! The two classes have separate buckets, so a storm of revocations never
//! takes a lookup's place, whichever client sends it.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};

/// Default writes per second per token.
pub(crate) const DEFAULT_WRITE_RATE: u64 = 1_000;
/// Default write burst per token.
pub(crate) const DEFAULT_WRITE_BURST: u64 = 2_000;
/// Default lookups per second per client address.
pub(crate) const DEFAULT_LOOKUP_RATE: u64 = 100_000;
/// Default lookup burst per client address.
pub(crate) const DEFAULT_LOOKUP_BURST: u64 = 100_000;
/// The most tokens or addresses one class keeps a bucket for.
pub(crate) const MAX_KEYS: usize = 65_536;
const SHARDS: usize = 16;
/// How often a full shard may be swept for buckets back at their burst.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// One limit: a steady rate and the burst above it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Rate {
    /// Requests per second.
    pub(crate) per_second: u64,
    /// Requests at once, when the bucket is full.
    pub(crate) burst: u64,
}

/// The rate limits of a node; `None` turns a class off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RateLimits {
    /// Writes per bearer token.
    pub(crate) write: Option<Rate>,
    /// Lookups per client address.
    pub(crate) lookup: Option<Rate>,
}

impl Default for RateLimits {
    fn default() -> RateLimits {
        RateLimits {
            write: Some(Rate {
                per_second: DEFAULT_WRITE_RATE,
                burst: DEFAULT_WRITE_BURST,
            }),
            lookup: Some(Rate {
                per_second: DEFAULT_LOOKUP_RATE,
                burst: DEFAULT_LOOKUP_BURST,
            }),
        }
    }
}

/// Whom a bucket belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// A bearer token, by its keyed hash (the token itself is not kept).
    Token(u64),
    /// A client address (an IPv6 address by its /64).
    Addr(IpAddr),
    /// Every key beyond [`MAX_KEYS`] in its shard.
    Overflow,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

struct Shard {
    buckets: HashMap<Key, Bucket>,
    swept: Option<Instant>,
}

/// The buckets of one class.
struct Buckets {
    class: &'static str,
    rate: f64,
    burst: f64,
    shards: Vec<Mutex<Shard>>,
    limited: metrics::Counter,
}

impl Buckets {
    fn new(class: &'static str, rate: Rate) -> Buckets {
        Buckets {
            class,
            rate: rate.per_second as f64,
            burst: rate.burst.max(1) as f64,
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        buckets: HashMap::new(),
                        swept: None,
                    })
                })
                .collect(),
            limited: metrics::counter!("veto_rate_limited_total", "class" => class),
        }
    }

    /// Takes one request from `key`'s bucket, or answers how long until it
    /// holds one.
    fn take(&self, key: Key, hash: u64, now: Instant) -> Result<(), Duration> {
        let index = usize::try_from(hash % SHARDS as u64).unwrap_or(0);
        let mut shard = self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let per_shard = MAX_KEYS / SHARDS;
        let key = if shard.buckets.len() < per_shard || shard.buckets.contains_key(&key) {
            key
        } else {
            self.sweep(&mut shard, now);
            if shard.buckets.len() < per_shard {
                key
            } else {
                Key::Overflow
            }
        };
        let burst = self.burst;
        let bucket = shard.buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            self.limited.increment(1);
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }

    /// Drops the buckets that have refilled to their burst: a new bucket is
    /// the same. At most once per [`SWEEP_EVERY`] per shard.
    fn sweep(&self, shard: &mut Shard, now: Instant) {
        if shard
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < SWEEP_EVERY)
        {
            return;
        }
        shard.swept = Some(now);
        let (rate, burst) = (self.rate, self.burst);
        shard.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
        });
    }
}

/// A request over its limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limited {
    class: &'static str,
    retry_after: Duration,
}

impl Limited {
    /// Whole seconds the client should wait: at least one.
    pub(crate) fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }

    /// The 429 answer.
    pub(crate) fn response(&self) -> Response<Body> {
        let secs = self.retry_after_secs();
        let what = match self.class {
            "write" => "writes of this token",
            _ => "lookups from this address",
        };
        let body = serde_json::json!({
            "error": "rate_limited",
            "message": format!("too many {what}; retry in {secs} s"),
        });
        let mut response = Response::new(Body::from(body.to_string()));
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        response
    }
}

/// The rate limits in force, with their buckets.
pub(crate) struct RateLimiter {
    write: Option<Buckets>,
    lookup: Option<Buckets>,
    hasher: RandomState,
}

impl RateLimiter {
    /// Limiters for these limits; a rate of zero turns its class off.
    pub(crate) fn new(limits: RateLimits) -> RateLimiter {
        let on = |rate: Option<Rate>| rate.filter(|r| r.per_second > 0);
        RateLimiter {
            write: on(limits.write).map(|r| Buckets::new("write", r)),
            lookup: on(limits.lookup).map(|r| Buckets::new("lookup", r)),
            hasher: RandomState::new(),
        }
    }

    /// Counts one request against its bucket, if its endpoint is limited.
    pub(crate) fn check(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        client: IpAddr,
    ) -> Result<(), Limited> {
        let (buckets, key) = match (method, path) {
            (&Method::POST, "/v1/revocations" | "/v1/revocations/batch" | "/oauth2/revoke") => {
                let Some(buckets) = &self.write else {
                    return Ok(());
                };
                let key = match headers.get(header::AUTHORIZATION) {
                    Some(value) => Key::Token(self.hasher.hash_one(value.as_bytes())),
                    None => Key::Addr(client_key(client)),
                };
                (buckets, key)
            }
            (_, "/v1/check" | "/v1/auth" | "/v1/auth/") => match &self.lookup {
                Some(buckets) => (buckets, Key::Addr(client_key(client))),
                None => return Ok(()),
            },
            (_, p) if p.starts_with("/v1/auth/") => match &self.lookup {
                Some(buckets) => (buckets, Key::Addr(client_key(client))),
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
        buckets
            .take(key, self.hasher.hash_one(key), Instant::now())
            .map_err(|retry_after| Limited {
                class: buckets.class,
                retry_after,
            })
    }
}

/// The address a client is counted by: IPv4 as it is (IPv4-mapped IPv6
/// too), IPv6 by its /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(write: Option<Rate>, lookup: Option<Rate>) -> RateLimiter {
        RateLimiter::new(RateLimits { write, lookup })
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_token_over_its_burst_is_limited_while_another_is_not() {
        let l = limiter(
            Some(Rate {
                per_second: 1,
                burst: 3,
            }),
            None,
        );
        let (one, two) = (bearer("one"), bearer("two"));
        for _ in 0..3 {
            l.check(&Method::POST, "/v1/revocations", &one, A).unwrap();
        }
        let limited = l
            .check(&Method::POST, "/v1/revocations/batch", &one, B)
            .unwrap_err();
        assert_eq!(limited.retry_after_secs(), 1);
        let r = limited.response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        l.check(&Method::POST, "/oauth2/revoke", &two, A).unwrap();
        // Reads and lookups are not writes.
        l.check(&Method::GET, "/v1/revocations", &one, A).unwrap();
        l.check(&Method::GET, "/v1/check", &one, A).unwrap();
    }

    #[test]
    fn lookups_are_counted_per_address_and_ipv6_per_64() {
        let l = limiter(
            None,
            Some(Rate {
                per_second: 1,
                burst: 2,
            }),
        );
        let none = HeaderMap::new();
        for path in ["/v1/check", "/v1/auth/anything"] {
            l.check(&Method::GET, path, &none, A).unwrap();
        }
        assert!(l.check(&Method::GET, "/v1/auth", &none, A).is_err());
        l.check(&Method::POST, "/v1/check", &none, B).unwrap();
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        l.check(&Method::GET, "/v1/check", &none, v6a).unwrap();
        l.check(&Method::GET, "/v1/check", &none, v6b).unwrap();
        assert!(l.check(&Method::GET, "/v1/check", &none, v6a).is_err());
        l.check(&Method::GET, "/healthz", &none, A).unwrap();
    }

    #[test]
    fn a_bucket_refills_at_its_rate() {
        let b = Buckets::new(
            "lookup",
            Rate {
                per_second: 10,
                burst: 1,
            },
        );
        let t = Instant::now();
        let key = Key::Addr(A);
        b.take(key, 0, t).unwrap();
        let wait = b.take(key, 0, t).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        b.take(key, 0, t + Duration::from_millis(101)).unwrap();
    }

    #[test]
    fn the_buckets_stay_bounded() {
        let b = Buckets::new(
            "write",
            Rate {
                per_second: 1,
                burst: 1,
            },
        );
        let t = Instant::now();
        for i in 0..(MAX_KEYS as u64 * 2) {
            let _ = b.take(Key::Token(i), i, t);
        }
        let kept: usize = b
            .shards
            .iter()
            .map(|s| s.lock().unwrap().buckets.len())
            .sum();
        assert!(kept <= MAX_KEYS + SHARDS, "{kept}");
    }
}
