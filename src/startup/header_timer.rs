//! hyper's header-read timer, one per connection, armed once per timeout rather than once per
//! request.
//!
//! hyper starts a new sleep each time it waits for a request's head on a kept-alive connection
//! and drops it when the head is in. With hyper-util's `TokioTimer` each of those sleeps was a
//! tokio timer of its own, put into the runtime's timer wheel under its lock when first polled
//! and taken out again when dropped: ~1.4k of a stale read's ~30k instructions (callgrind),
//! plus the wheel's upkeep when the worker parks.
//!
//! Here a connection keeps one tokio sleep. A wait hyper asks for only moves that sleep
//! *earlier*; one that ends later leaves it as it is, and when it fires before the wait's end
//! it is set again to that end. So on a busy connection the timer wheel is touched about once
//! per timeout instead of once per request, and the only cost a request pays is a small box,
//! a lock nobody else holds and a clock read. A sleep that fires for a wait hyper already
//! dropped wakes the connection's task once for nothing, which hyper tolerates (it polls,
//! finds nothing new, and waits again). The connection's sleep goes with the connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::time::Sleep;

/// Give each connection its own: [`hyper_util::server::conn::auto::Builder`]'s `http1().timer(..)`.
#[derive(Clone, Default)]
pub struct HeaderTimer {
    alarm: Arc<Mutex<Option<Pin<Box<Sleep>>>>>,
}

impl hyper::rt::Timer for HeaderTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Wait { alarm: self.alarm.clone(), until: deadline.into() })
    }

    /// tokio's clock, so a test that pauses time pauses this timer too.
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// One wait hyper asked for: done at `until`.
struct Wait {
    alarm: Arc<Mutex<Option<Pin<Box<Sleep>>>>>,
    until: tokio::time::Instant,
}

impl Future for Wait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let until = self.until;
        if tokio::time::Instant::now() >= until {
            return Poll::Ready(());
        }
        // Only this connection's task polls its waits: the lock is never contended, and a
        // poisoned one holds nothing a panic could have left half-done (a sleep is re-set below).
        let mut alarm = self.alarm.lock().unwrap_or_else(PoisonError::into_inner);
        let sleep = alarm.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
        if sleep.deadline() > until {
            sleep.as_mut().reset(until);
        }
        loop {
            match sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                // Fired for an earlier wait: not this one's end yet.
                Poll::Ready(()) if tokio::time::Instant::now() < until => sleep.as_mut().reset(until),
                Poll::Ready(()) => return Poll::Ready(()),
            }
        }
    }
}

impl hyper::rt::Sleep for Wait {}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Timer;

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_at_its_deadline_and_not_before() {
        let timer = HeaderTimer::default();
        let start = tokio::time::Instant::now();
        timer.sleep(Duration::from_secs(5)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_wait_after_an_earlier_one_was_dropped_still_waits_its_whole_time() {
        let timer = HeaderTimer::default();
        let start = tokio::time::Instant::now();
        // The first wait arms the connection's sleep for t = 5 s and is dropped at t = 1 s
        // (hyper drops it when a request's head is in); the next one must end at t = 6 s.
        let first = timer.sleep(Duration::from_secs(5));
        assert!(tokio::time::timeout(Duration::from_secs(1), first).await.is_err());
        timer.sleep(Duration::from_secs(5)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_wait_moves_the_connections_sleep_forward() {
        let timer = HeaderTimer::default();
        let start = tokio::time::Instant::now();
        let long = timer.sleep(Duration::from_secs(60));
        assert!(tokio::time::timeout(Duration::from_millis(10), long).await.is_err());
        timer.sleep(Duration::from_secs(2)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(2010));
    }

    #[tokio::test(start_paused = true)]
    async fn each_connection_has_its_own_sleep() {
        let (one, two) = (HeaderTimer::default(), HeaderTimer::default());
        let start = tokio::time::Instant::now();
        let long = one.sleep(Duration::from_secs(60));
        let short = two.sleep(Duration::from_secs(1));
        tokio::select! {
            () = long => panic!("the long wait ended first"),
            () = short => assert_eq!(start.elapsed(), Duration::from_secs(1)),
        }
    }
}
