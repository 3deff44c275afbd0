//! A finished job against its estimate, and the record of the estimate
//! a job was submitted with (`estimate.json`).

use serde::{Deserialize, Serialize};

use super::{Cost, Estimate, JobShape, PRICES, Usage};
use crate::deployment::Deployment;
use crate::job::{ResultManifest, TileStat};

/// What the client recorded when it submitted the job
/// (`jobs/<job>/estimate.json`): the estimate it showed, and the
/// deployment it priced (none for an embedded job).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Submission {
    pub submitted_ms: u64,
    pub estimate: Estimate,
    pub deployment: Option<Deployment>,
}

impl Submission {
    /// The record of a job submitted now.
    pub fn now(estimate: Estimate, deployment: Option<Deployment>) -> Self {
        Submission {
            submitted_ms: crate::job::unix_ms(),
            estimate,
            deployment,
        }
    }

    /// The finished job against this submission: its wall time is from
    /// submit to the end of the stitch.
    pub fn actual(&self, m: &ResultManifest, stats: &[TileStat]) -> Actual {
        let seconds = m.finished_ms().saturating_sub(self.submitted_ms) as f64 / 1e3;
        match &self.deployment {
            Some(d) => Actual::lambda(m, stats, d, seconds, false),
            None => Actual::embedded(m, seconds),
        }
    }
}

/// A finished job against its estimate: the summary's and the report's
/// `actual`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Actual {
    pub seconds: f64,
    pub iterations: u64,
    pub usage: Option<Usage>,
    pub cost: Option<Cost>,
}

impl Actual {
    /// A job that ran embedded: no AWS usage.
    pub fn embedded(m: &ResultManifest, seconds: f64) -> Actual {
        Actual {
            seconds,
            iterations: m.iterations,
            usage: None,
            cost: None,
        }
    }

    /// A job that ran on `deployment`'s functions, `seconds` from submit to
    /// its result.
    pub fn lambda(
        m: &ResultManifest,
        stats: &[TileStat],
        deployment: &Deployment,
        seconds: f64,
        counts_downloaded: bool,
    ) -> Actual {
        let shape = JobShape::observed(m, stats, seconds, counts_downloaded);
        let usage = Usage::of_job(&shape, deployment);
        Actual {
            seconds,
            iterations: m.iterations,
            cost: Some(usage.cost(&PRICES, &deployment.fleet.architecture)),
            usage: Some(usage),
        }
    }
}
