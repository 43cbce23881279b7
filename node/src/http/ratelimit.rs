//! Per-client rate limiting: one token bucket per client address.
//!
//! The API is public on the node's HTTP port, and one client flooding it must
//! not crowd out the others (or the localnet players). Each client gets
//! `burst` tokens refilled at `requests_per_s`; a request costs one token and
//! without one it gets 429 with `retry-after` (whole seconds until a token is
//! back). Health endpoints (`/livez`, `/readyz`) are exempt: an orchestrator
//! probing a busy node must not conclude it is dead.
//!
//! A batch of N transactions (`POST /api/v1/txs`) costs N tokens: one here,
//! before its body is read, like any request, and N - 1 more once the
//! handler knows N ([`ClientBudget::charge`]). Without them the whole batch
//! gets 429 (and has spent its one token, like any request that got as far
//! as its handler). A charge of N passes when the bucket holds
//! `min(N, burst)` tokens and then takes all N, leaving the bucket negative
//! when N is more than it held: a batch larger than the burst is not locked
//! out forever, and the client still pays for every transaction by waiting
//! for the bucket to refill.
//!
//! Memory is bounded: at most `max_clients` buckets are kept, and a new
//! client evicts the least recently seen one (an evicted client that comes
//! back starts with a full bucket; that is the price of the bound).
//!
//! Clients are keyed by IP, IPv6 by its /64 prefix (one host usually owns a
//! whole /64, so keying by full address would let it mint unlimited clients);
//! IPv4-mapped IPv6 addresses count as their IPv4 address. `X-Forwarded-For`
//! is deliberately ignored: the node is not meant to sit behind a proxy, and
//! trusting the header would let any client pick its own key.
//!
//! The limiter is pure apart from the middleware: [`RateLimiter::check`] takes
//! the time as an argument.

use super::error::{codes, HttpError};
use super::{clock, is_health_path};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// What [`RateLimiter::check`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Allow,
    /// Over budget; a token is back in this many whole seconds (at least 1).
    Deny {
        retry_after_s: u64,
    },
}

#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_second: f64,
    capacity: f64,
    max_clients: usize,
    clients: Mutex<Clients>,
}

#[derive(Debug, Default)]
struct Clients {
    buckets: HashMap<IpAddr, Bucket>,
    /// Recency index: last-use sequence number -> client. The first entry is
    /// the least recently seen client, evicted when the map is full.
    by_recency: BTreeMap<u64, IpAddr>,
    next_seq: u64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
    seq: u64,
}

impl RateLimiter {
    /// Zeros are clamped to 1 (the router warns about them): a limit of zero
    /// would lock every client out for good.
    pub(crate) fn new(requests_per_s: u32, burst: u32, max_clients: usize) -> Self {
        RateLimiter {
            per_second: f64::from(requests_per_s.max(1)),
            capacity: f64::from(burst.max(1)),
            max_clients: max_clients.max(1),
            clients: Mutex::new(Clients::default()),
        }
    }

    /// Charges one request from `ip` at `now`.
    pub(crate) fn check(&self, ip: IpAddr, now: Instant) -> Decision {
        self.charge(ip, now, 1)
    }

    /// Charges `cost` tokens from `ip` at `now` (see the module docs: it
    /// passes with `min(cost, burst)` tokens in the bucket). A cost of 0 is
    /// always allowed and changes nothing but the client's recency.
    pub(crate) fn charge(&self, ip: IpAddr, now: Instant, cost: u32) -> Decision {
        let key = client_key(ip);
        // A panic while holding the lock cannot leave the map inconsistent in
        // a way that matters (worst case a bucket is off by one token), so a
        // poisoned lock is used as is rather than taking the API down.
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let seq = clients.next_seq;
        clients.next_seq = seq.wrapping_add(1);

        let Clients {
            buckets,
            by_recency,
            ..
        } = &mut *clients;
        if !buckets.contains_key(&key) {
            while buckets.len() >= self.max_clients {
                match by_recency.pop_first() {
                    Some((_, oldest)) => {
                        buckets.remove(&oldest);
                    }
                    None => break, // unreachable: both maps hold the same clients
                }
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.capacity,
            refilled_at: now,
            seq,
        });
        by_recency.remove(&bucket.seq);
        let elapsed_s = now
            .saturating_duration_since(bucket.refilled_at)
            .as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed_s * self.per_second).min(self.capacity);
        bucket.refilled_at = now;
        bucket.seq = seq;
        by_recency.insert(seq, key);

        let cost = f64::from(cost);
        let needed = cost.min(self.capacity);
        if cost == 0.0 || bucket.tokens >= needed {
            bucket.tokens -= cost;
            Decision::Allow
        } else {
            let wait_s = (needed - bucket.tokens) / self.per_second;
            // Whole seconds, rounded up (retry-after has no fractions), so a
            // client that honours it is allowed when it comes back.
            let retry_after_s = (wait_s.ceil() as u64).max(1);
            Decision::Deny { retry_after_s }
        }
    }

    #[cfg(test)]
    fn tracked_clients(&self) -> usize {
        let clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        assert_eq!(clients.buckets.len(), clients.by_recency.len());
        clients.buckets.len()
    }
}

/// The bucket key for an address (see the module docs).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The 429 answer, with `retry-after`.
fn rate_limited(retry_after_s: u64) -> Response {
    let mut response = HttpError::new(
        StatusCode::TOO_MANY_REQUESTS,
        codes::RATE_LIMITED,
        format!("too many requests from this address; retry in {retry_after_s} s"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
    response
}

/// The requesting client's bucket, for a handler that learns what a request
/// costs only from its body. The middleware puts it in the request
/// extensions; extract it like any extractor (it is empty for a router
/// built without the middleware, and for the exempt health paths).
#[derive(Debug, Clone)]
pub(crate) struct ClientBudget(Option<(Arc<RateLimiter>, IpAddr)>);

impl ClientBudget {
    /// Charges `extra` more tokens to the client.
    pub(crate) fn charge(&self, extra: u32) -> Result<(), RateLimited> {
        let Some((limiter, ip)) = &self.0 else {
            return Ok(());
        };
        match limiter.charge(*ip, clock::now(), extra) {
            Decision::Allow => Ok(()),
            Decision::Deny { retry_after_s } => Err(RateLimited { retry_after_s }),
        }
    }
}

/// A refused [`ClientBudget::charge`]: answers 429 like the middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateLimited {
    retry_after_s: u64,
}

impl IntoResponse for RateLimited {
    fn into_response(self) -> Response {
        rate_limited(self.retry_after_s)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientBudget {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientBudget>()
            .cloned()
            .unwrap_or(ClientBudget(None)))
    }
}

/// Middleware: 429 when the client is over budget.
pub(crate) async fn rate_limit(
    State(limiter): State<Arc<RateLimiter>>,
    mut req: Request,
    next: Next,
) -> Response {
    if is_health_path(req.uri().path()) {
        return next.run(req).await;
    }
    // `serve` always provides the peer address. A router mounted without it
    // puts every client in one shared bucket: limited, never unlimited.
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    match limiter.check(ip, clock::now()) {
        Decision::Allow => {
            req.extensions_mut()
                .insert(ClientBudget(Some((limiter, ip))));
            next.run(req).await
        }
        Decision::Deny { retry_after_s } => rate_limited(retry_after_s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let rl = RateLimiter::new(2, 3, 16);
        for _ in 0..3 {
            assert_eq!(rl.check(ip(1), t0), Decision::Allow);
        }
        assert_eq!(rl.check(ip(1), t0), Decision::Deny { retry_after_s: 1 });
        // Another client has its own bucket.
        assert_eq!(rl.check(ip(2), t0), Decision::Allow);
        // 2/s: one token back after 500 ms, not before.
        assert!(matches!(
            rl.check(ip(1), t0 + Duration::from_millis(400)),
            Decision::Deny { .. }
        ));
        assert_eq!(
            rl.check(ip(1), t0 + Duration::from_millis(500)),
            Decision::Allow
        );
        // Refill never exceeds the burst.
        let later = t0 + Duration::from_secs(3_600);
        for _ in 0..3 {
            assert_eq!(rl.check(ip(1), later), Decision::Allow);
        }
        assert!(matches!(rl.check(ip(1), later), Decision::Deny { .. }));
    }

    #[test]
    fn a_charge_of_n_costs_n_tokens() {
        let t0 = Instant::now();
        let rl = RateLimiter::new(10, 20, 16);
        // One request token, then 15 more for a batch of 16: 4 left.
        assert_eq!(rl.check(ip(1), t0), Decision::Allow);
        assert_eq!(rl.charge(ip(1), t0, 15), Decision::Allow);
        // 5 more do not fit (denied, free), 4 do; then the bucket is empty.
        assert_eq!(rl.charge(ip(1), t0, 5), Decision::Deny { retry_after_s: 1 });
        assert_eq!(rl.charge(ip(1), t0, 4), Decision::Allow);
        assert!(matches!(rl.check(ip(1), t0), Decision::Deny { .. }));
        // A charge of 0 is free and always allowed.
        assert_eq!(rl.charge(ip(1), t0, 0), Decision::Allow);
        // 10/s: 1 s refills 10 tokens, not 11.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(rl.charge(ip(1), t1, 10), Decision::Allow);
        assert!(matches!(rl.check(ip(1), t1), Decision::Deny { .. }));
    }

    #[test]
    fn a_charge_above_the_burst_passes_on_a_full_bucket_and_is_paid_by_waiting() {
        let t0 = Instant::now();
        let rl = RateLimiter::new(10, 20, 16);
        // 50 > burst 20: allowed with a full bucket, which goes to -30.
        assert_eq!(rl.charge(ip(1), t0, 50), Decision::Allow);
        // Next token in (1 + 30) / 10 = 3.1 s, rounded up.
        assert_eq!(rl.check(ip(1), t0), Decision::Deny { retry_after_s: 4 });
        assert!(matches!(
            rl.check(ip(1), t0 + Duration::from_millis(3_000)),
            Decision::Deny { .. }
        ));
        assert_eq!(
            rl.check(ip(1), t0 + Duration::from_millis(3_200)),
            Decision::Allow
        );
        // It needs a full bucket again (20 tokens) before the next such charge.
        let later = t0 + Duration::from_millis(3_200);
        assert!(matches!(rl.charge(ip(1), later, 50), Decision::Deny { .. }));
    }

    #[test]
    fn retry_after_is_whole_seconds_and_denials_are_free() {
        let t0 = Instant::now();
        let rl = RateLimiter::new(1, 1, 4);
        assert_eq!(rl.check(ip(1), t0), Decision::Allow);
        // 0.9 s to go rounds up to 1.
        assert_eq!(
            rl.check(ip(1), t0 + Duration::from_millis(100)),
            Decision::Deny { retry_after_s: 1 }
        );
        // Denied requests cost nothing: the token is back on schedule.
        assert_eq!(
            rl.check(ip(1), t0 + Duration::from_secs(1)),
            Decision::Allow
        );
    }

    #[test]
    fn evicts_the_least_recently_seen_client() {
        let t0 = Instant::now();
        let rl = RateLimiter::new(1, 1, 2);
        assert_eq!(rl.check(ip(1), t0), Decision::Allow);
        assert_eq!(rl.check(ip(2), t0), Decision::Allow);
        // Client 1 is seen again (denied), so client 2 is now the oldest.
        assert!(matches!(rl.check(ip(1), t0), Decision::Deny { .. }));
        assert_eq!(rl.check(ip(3), t0), Decision::Allow);
        assert_eq!(rl.tracked_clients(), 2);
        // Client 1 kept its (empty) bucket; client 2 was evicted and is new again.
        assert!(matches!(rl.check(ip(1), t0), Decision::Deny { .. }));
        assert_eq!(rl.check(ip(2), t0), Decision::Allow);
        assert_eq!(rl.tracked_clients(), 2);
    }

    #[test]
    fn many_clients_stay_bounded() {
        let t0 = Instant::now();
        let rl = RateLimiter::new(10, 10, 100);
        for i in 0..10_000u32 {
            let addr = IpAddr::V4(Ipv4Addr::from(i));
            assert_eq!(rl.check(addr, t0), Decision::Allow);
        }
        assert_eq!(rl.tracked_clients(), 100);
    }

    #[test]
    fn ipv6_hosts_share_their_slash_64_and_mapped_v4_is_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), ip(1));
    }

    #[test]
    fn zero_limits_are_clamped_not_lockouts() {
        let t0 = Instant::now();
        let rl = RateLimiter::new(0, 0, 0);
        assert_eq!(rl.check(ip(1), t0), Decision::Allow);
        assert!(matches!(rl.check(ip(1), t0), Decision::Deny { .. }));
        assert_eq!(
            rl.check(ip(1), t0 + Duration::from_secs(1)),
            Decision::Allow
        );
    }
}
