//! Admission limits (governor's GCRA, keyed): requests per client address, order writes per
//! user, and one user's attempts on one delivery slot. A limit that trips costs the client a
//! 429 with the time to wait; it changes nothing. Keys idle long enough to be back at full
//! burst are dropped every minute, so memory follows the active clients, not all clients ever.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitSettings;
use crate::domain::{Timestamp, UserId};

/// A limit that tripped: which one, and how long until a retry can pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    pub limit: &'static str,
    pub retry_after: Duration,
}

pub struct Limits {
    address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    writes: Option<DefaultKeyedRateLimiter<UserId>>,
    slots: Option<DefaultKeyedRateLimiter<(UserId, i64)>>,
    /// Analytics beacons this node takes per second (`analytics.beacons_per_second`), always on.
    beacons: DefaultDirectRateLimiter,
    limit_loopback: bool,
    clock: DefaultClock,
}

fn nonzero(n: u32) -> Option<NonZeroU32> {
    NonZeroU32::new(n)
}

fn keyed<K: Hash + Eq + Clone>(enabled: bool, quota: Option<Quota>) -> Option<DefaultKeyedRateLimiter<K>> {
    quota.filter(|_| enabled).map(RateLimiter::keyed)
}

impl Limits {
    pub fn new(s: &LimitSettings, beacons_per_second: u32) -> Self {
        let burst = |rate: u32, burst: u32| nonzero(burst.max(rate));
        Self {
            address: keyed(
                s.enabled,
                nonzero(s.per_address_per_second)
                    .zip(burst(s.per_address_per_second, s.per_address_burst))
                    .map(|(rate, burst)| Quota::per_second(rate).allow_burst(burst)),
            ),
            writes: keyed(
                s.enabled,
                nonzero(s.writes_per_user_per_minute)
                    .zip(nonzero(s.writes_burst.max(1)))
                    .map(|(rate, burst)| Quota::per_minute(rate).allow_burst(burst)),
            ),
            slots: keyed(s.enabled, nonzero(s.slot_attempts_per_user_per_hour).map(Quota::per_hour)),
            beacons: RateLimiter::direct(Quota::per_second(nonzero(beacons_per_second).unwrap_or(NonZeroU32::MIN))),
            limit_loopback: s.limit_loopback,
            clock: DefaultClock::default(),
        }
    }

    /// One request from `ip`.
    pub fn address(&self, ip: IpAddr) -> Result<(), Limited> {
        if ip.is_loopback() && !self.limit_loopback {
            return Ok(());
        }
        self.check(self.address.as_ref(), &ip, "requests per client address")
    }

    /// One order write (create, change, cancel, waitlist join or leave) by `user`.
    pub fn write(&self, user: &UserId) -> Result<(), Limited> {
        self.check(self.writes.as_ref(), user, "order writes per user")
    }

    /// One attempt by `user` on the slot starting at `slot_start` (create, change to it,
    /// waitlist join).
    pub fn slot_attempt(&self, user: &UserId, slot_start: Timestamp) -> Result<(), Limited> {
        self.check(self.slots.as_ref(), &(user.clone(), slot_start.millis()), "attempts per user on one slot")
    }

    /// One analytics beacon.
    pub fn beacon(&self) -> Result<(), Limited> {
        self.beacons.check().map_err(|not_until| {
            metrics::counter!("pizza_orders_rate_limited_total", "limit" => "beacons per node").increment(1);
            Limited { limit: "beacons per node", retry_after: not_until.wait_time_from(self.clock.now()) }
        })
    }

    fn check<K: Hash + Eq + Clone>(
        &self,
        limiter: Option<&DefaultKeyedRateLimiter<K>>,
        key: &K,
        limit: &'static str,
    ) -> Result<(), Limited> {
        let Some(limiter) = limiter else { return Ok(()) };
        limiter.check_key(key).map_err(|not_until| {
            metrics::counter!("pizza_orders_rate_limited_total", "limit" => limit).increment(1);
            Limited { limit, retry_after: not_until.wait_time_from(self.clock.now()) }
        })
    }

    /// Forget keys that are back at full burst (called every minute).
    pub fn forget_idle(&self) {
        if let Some(l) = &self.address {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.writes {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.slots {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LimitSettings {
        LimitSettings {
            enabled: true,
            per_address_per_second: 2,
            per_address_burst: 3,
            limit_loopback: false,
            writes_per_user_per_minute: 2,
            writes_burst: 2,
            slot_attempts_per_user_per_hour: 3,
        }
    }

    #[test]
    fn each_key_has_its_own_budget_and_a_refusal_says_how_long_to_wait() {
        let limits = Limits::new(&settings(), 10);
        let (alice, bob) = (UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap());
        assert!(limits.write(&alice).is_ok() && limits.write(&alice).is_ok());
        let refused = limits.write(&alice).unwrap_err();
        assert_eq!(refused.limit, "order writes per user");
        // 2 per minute: the next one passes in about 30 s.
        assert!(refused.retry_after > Duration::from_secs(25) && refused.retry_after <= Duration::from_secs(30));
        assert!(limits.write(&bob).is_ok(), "another user is not held back");

        let remote: IpAddr = "203.0.113.9".parse().unwrap();
        for _ in 0..3 {
            limits.address(remote).unwrap();
        }
        assert!(limits.address(remote).is_err());
        assert!(limits.address("203.0.113.10".parse().unwrap()).is_ok());
        for _ in 0..10 {
            assert!(limits.address("127.0.0.1".parse().unwrap()).is_ok(), "loopback is not limited by address");
        }

        let slot = Timestamp::from_millis(1_800_000 * 1000);
        let other = Timestamp::from_millis(1_800_000 * 1001);
        for _ in 0..3 {
            limits.slot_attempt(&bob, slot).unwrap();
        }
        assert_eq!(limits.slot_attempt(&bob, slot).unwrap_err().limit, "attempts per user on one slot");
        assert!(limits.slot_attempt(&bob, other).is_ok());
        limits.forget_idle();
    }

    #[test]
    fn disabled_limits_pass_everything() {
        let limits = Limits::new(&LimitSettings { enabled: false, ..settings() }, 10);
        let alice = UserId::parse("alice").unwrap();
        for _ in 0..100 {
            limits.write(&alice).unwrap();
            limits.address("203.0.113.9".parse().unwrap()).unwrap();
        }
    }
}
