//! The explorer's spending limit on the fleet: tiles the bucket lacks cost
//! Lambda time and requests, so a page left open (or a page that is not
//! ours, were the Host check ever bypassed) must not spend without end.
//!
//! Each one-tile job is priced before it is sent by the cost model
//! ([`Estimate::lambda`], as `--estimate` prices a job) at its worst case
//! ([`Profile::worst_case`]: every pixel at the full budget at the
//! kernel's floor rate), not from a sample, which for one tile would be
//! the tile's whole work done here; the prices of the last hour are kept,
//! and a tile that would take their sum past the limit is refused until
//! enough of them are an hour old. The worst case, and the stitch the
//! model counts for a one-tile job but an explorer tile does not run,
//! keep the real spend below the limit.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use mandel_core::RenderParams;
use tokio::time::Instant;

use crate::deployment::Deployment;
use crate::estimate::{Estimate, Profile};

const HOUR: Duration = Duration::from_secs(3600);

/// At most `per_hour` US dollars of fleet tiles in any hour.
#[derive(Debug)]
pub struct SpendingLimit {
    per_hour: f64,
    deployment: Option<Deployment>,
    /// The tiles charged in the last hour: when, and their price.
    charged: Mutex<VecDeque<(Instant, f64)>>,
}

/// A tile refused by the limit: the limit, and when to ask again.
#[derive(Debug, Clone, PartialEq)]
pub struct OverLimit {
    pub per_hour: f64,
    pub spent: f64,
    pub retry_after: Duration,
}

impl SpendingLimit {
    /// At most `per_hour` dollars an hour on `deployment`'s functions.
    pub fn per_hour(per_hour: f64, deployment: Deployment) -> SpendingLimit {
        SpendingLimit {
            per_hour,
            deployment: Some(deployment),
            charged: Mutex::default(),
        }
    }

    /// No limit (tests, and fleets someone else pays for).
    pub fn unlimited() -> SpendingLimit {
        SpendingLimit {
            per_hour: f64::INFINITY,
            deployment: None,
            charged: Mutex::default(),
        }
    }

    /// What the cost model says a one-tile job of `params` costs.
    pub fn price(&self, params: &RenderParams) -> f64 {
        let Some(deployment) = &self.deployment else {
            return 0.0;
        };
        let estimate = Estimate::lambda(&Profile::worst_case(params), deployment, false);
        estimate.cost.map_or(0.0, |c| c.total)
    }

    /// Charges `price` now, or refuses it if the last hour's charges and
    /// it would pass the limit.
    pub fn charge(&self, price: f64) -> Result<(), OverLimit> {
        let now = Instant::now();
        let mut charged = self.charged.lock().expect("never poisoned");
        while charged
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= HOUR)
        {
            charged.pop_front();
        }
        let spent: f64 = charged.iter().map(|(_, p)| p).sum();
        if spent + price <= self.per_hour {
            charged.push_back((now, price));
            return Ok(());
        }
        // The earliest time enough of the charges are an hour old.
        let mut freed = 0.0;
        let mut retry_after = HOUR;
        for (at, p) in charged.iter() {
            freed += p;
            if spent - freed + price <= self.per_hour {
                retry_after = HOUR.saturating_sub(now.duration_since(*at));
                break;
            }
        }
        Err(OverLimit {
            per_hour: self.per_hour,
            spent,
            retry_after,
        })
    }

    pub fn is_limited(&self) -> bool {
        self.per_hour.is_finite()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn charges_of_the_last_hour_count_and_older_ones_free_their_share() {
        let limit = SpendingLimit {
            per_hour: 1.0,
            deployment: None,
            charged: Mutex::default(),
        };
        limit.charge(0.5).unwrap();
        tokio::time::advance(Duration::from_secs(600)).await;
        limit.charge(0.4).unwrap();
        let over = limit.charge(0.2).unwrap_err();
        assert_eq!(over.per_hour, 1.0);
        assert!((over.spent - 0.9).abs() < 1e-12);
        // The first charge is an hour old 50 minutes from now.
        assert_eq!(over.retry_after, Duration::from_secs(3000));
        tokio::time::advance(over.retry_after).await;
        limit.charge(0.2).unwrap();
        assert!(SpendingLimit::unlimited().charge(1e9).is_ok());
    }
}
