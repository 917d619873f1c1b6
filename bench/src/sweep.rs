//! The sweep: steps of constant offered rate, each after a short unmeasured warm-up, going up
//! until a step misses the latency target or fails requests; then a few bisection steps
//! between the last good and the first bad rate. The knee is the best good step.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::Target;
use crate::engine::{self, EngineOptions, Mix};
use crate::pool::RequestPool;
use crate::probe::ServerProbe;
use crate::record::SegmentRecord;
use crate::schedule::{Schedule, Segment};

/// When a step counts as served.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Criteria {
    /// p99 latency target, ms.
    pub p99_target_ms: f64,
    /// Largest fraction of failed (fault, timeout, error) requests.
    pub max_failure_rate: f64,
    /// Largest fraction of shed (503) requests.
    pub max_shed_rate: f64,
    /// Smallest goodput as a fraction of the offered rate (the server keeps up).
    pub min_goodput_fraction: f64,
}

impl Criteria {
    /// Why a step does not meet the criteria, or `None` when it does.
    pub fn verdict(&self, s: &SegmentRecord) -> Option<String> {
        if s.sent == 0 {
            return Some("no requests".into());
        }
        if s.failure_rate() > self.max_failure_rate {
            return Some(format!(
                "{:.2}% failed ({} fault, {} timeout, {} error)",
                s.failure_rate() * 100.0,
                s.counts.fault,
                s.counts.timeout,
                s.counts.error
            ));
        }
        if s.shed_rate() > self.max_shed_rate {
            return Some(format!("{:.2}% shed", s.shed_rate() * 100.0));
        }
        if s.latency.p99_ms > self.p99_target_ms {
            return Some(format!("p99 {:.1} ms > {:.0} ms", s.latency.p99_ms, self.p99_target_ms));
        }
        if s.goodput < self.min_goodput_fraction * s.offered_rate {
            return Some(format!(
                "goodput {:.0}/s < {:.0}% of offered",
                s.goodput,
                self.min_goodput_fraction * 100.0
            ));
        }
        None
    }
}

/// The rates a sweep tries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPlan {
    /// Rates tried first, ascending.
    pub rates: Vec<f64>,
    /// After the listed rates pass, the rate is multiplied by this until a step fails (≤ 1:
    /// only the listed rates are tried).
    pub growth: f64,
    /// Highest rate tried.
    pub max_rate: f64,
    /// Bisection steps between the last good and the first bad rate.
    pub refine: u32,
    /// Unmeasured warm-up at the start of each step, seconds.
    pub warmup_secs: f64,
    /// Measured length of each step, seconds.
    pub step_secs: f64,
    /// Run a failing step once more before believing it: on a shared machine a neighbour's
    /// burst can fail one step.
    #[serde(default)]
    pub retry_failed: bool,
}

/// One step's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepStep {
    /// Offered rate.
    pub rate: f64,
    /// The measured part.
    pub result: SegmentRecord,
    /// Why it failed the criteria (`None`: it passed).
    pub failed: Option<String>,
    /// Mean busy fraction of each core during the step.
    pub core_busy: Vec<f64>,
    /// Why an earlier try at the same rate failed, when the step was run again.
    #[serde(default)]
    pub first_try: Option<String>,
}

impl SweepStep {
    /// Whether the step met the criteria.
    pub fn passed(&self) -> bool {
        self.failed.is_none()
    }
}

/// What every step sends, how, to whom, and whose CPU it watches.
#[derive(Clone, Copy)]
pub struct StepLoad<'a> {
    /// Where requests go.
    pub target: &'a Target,
    /// Endpoints by weight.
    pub mix: &'a Arc<Mix>,
    /// The pre-signed requests.
    pub pool: &'a Arc<RequestPool>,
    /// Connections, timeouts, TLS.
    pub engine: &'a EngineOptions,
    /// The server's CPU and C_Sign counters.
    pub server: &'a ServerProbe,
}

/// Runs the sweep. `on_step` sees each step as it completes.
pub async fn run(
    plan: &SweepPlan,
    criteria: &Criteria,
    load: StepLoad<'_>,
    on_step: &mut dyn FnMut(&SweepStep),
) -> Vec<SweepStep> {
    let step = |rate: f64| run_step(rate, plan, criteria, load);
    sweep_with(plan, &step, on_step).await
}

/// The sweep's choice of rates, whatever runs a step: the listed rates, then growth until a
/// step fails, then bisection between the last good and the first bad rate.
async fn sweep_with<F, Fut>(plan: &SweepPlan, step: &F, on_step: &mut dyn FnMut(&SweepStep)) -> Vec<SweepStep>
where
    F: Fn(f64) -> Fut,
    Fut: std::future::Future<Output = Option<SweepStep>>,
{
    let mut steps: Vec<SweepStep> = Vec::new();
    let mut last_good: Option<f64> = None;
    let mut first_bad: Option<f64> = None;
    let mut rate_iter = plan.rates.clone().into_iter();
    let mut next = rate_iter.next();
    while let Some(rate) = next {
        if rate > plan.max_rate {
            break;
        }
        let Some(s) = attempt(step, rate, plan.retry_failed, on_step).await else { break };
        steps.push(s.clone());
        if s.passed() {
            last_good = Some(rate);
            // A growth of 1 or less would repeat (or lower) the rate forever: the list ends it.
            next = rate_iter.next().or((plan.growth > 1.0).then_some(rate * plan.growth));
        } else {
            first_bad = Some(rate);
            break;
        }
    }
    if let (Some(mut good), Some(mut bad)) = (last_good, first_bad) {
        for _ in 0..plan.refine {
            let mid = ((good + bad) / 2.0).round();
            if mid <= good || mid >= bad {
                break;
            }
            let Some(s) = attempt(step, mid, plan.retry_failed, on_step).await else { break };
            steps.push(s.clone());
            if s.passed() {
                good = mid;
            } else {
                bad = mid;
            }
        }
    }
    steps.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    steps
}

/// Runs a step, and a failing one once more when `retry` is set; the last try counts.
async fn attempt<F, Fut>(
    step: &F,
    rate: f64,
    retry: bool,
    on_step: &mut dyn FnMut(&SweepStep),
) -> Option<SweepStep>
where
    F: Fn(f64) -> Fut,
    Fut: std::future::Future<Output = Option<SweepStep>>,
{
    let first = step(rate).await?;
    on_step(&first);
    if first.passed() || !retry {
        return Some(first);
    }
    let mut again = step(rate).await?;
    again.first_try = first.failed;
    on_step(&again);
    Some(again)
}

/// Runs one step: a warm-up at `rate`, then `plan.step_secs` measured.
pub async fn run_step(
    rate: f64,
    plan: &SweepPlan,
    criteria: &Criteria,
    load: StepLoad<'_>,
) -> Option<SweepStep> {
    let schedule = Schedule::new(vec![
        Segment::steady("warm-up", plan.warmup_secs, rate).warmup(),
        Segment::steady(format!("{rate:.0}/s"), plan.step_secs, rate),
    ]);
    let label = format!("step {rate:.0}/s");
    let run =
        engine::run(&schedule, load.target, load.mix, load.pool, load.engine, load.server, &label).await;
    let result = run.segments.into_iter().nth(1)?;
    let measured: Vec<_> =
        run.seconds.iter().skip(plan.warmup_secs.ceil() as usize).take(plan.step_secs as usize).collect();
    let failed = criteria.verdict(&result);
    // Let the server finish what a failed step left queued before the next one.
    tokio::time::sleep(Duration::from_millis(if failed.is_some() { 3000 } else { 500 })).await;
    Some(SweepStep { rate, result, failed, core_busy: mean_core_busy(&measured), first_try: None })
}

/// Mean busy fraction of each core over some seconds.
pub fn mean_core_busy(seconds: &[&crate::record::SecondRecord]) -> Vec<f64> {
    let cores = seconds.iter().map(|s| s.core_busy.len()).max().unwrap_or(0);
    (0..cores)
        .map(|c| seconds.iter().filter_map(|s| s.core_busy.get(c)).sum::<f64>() / seconds.len().max(1) as f64)
        .collect()
}

/// The knee: the passing step with the highest goodput.
pub fn knee(steps: &[SweepStep]) -> Option<&SweepStep> {
    steps.iter().filter(|s| s.passed()).max_by(|a, b| a.result.goodput.total_cmp(&b.result.goodput))
}

/// The highest goodput of any step: the saturated issuing rate.
pub fn saturated_goodput(steps: &[SweepStep]) -> f64 {
    steps.iter().map(|s| s.result.goodput).fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn step(rate: f64, p99_ms: f64) -> SweepStep {
        let mut result = crate::report::tests::segment(rate, rate, p99_ms, None);
        result.counts.timeout = 0;
        let criteria = Criteria {
            p99_target_ms: 100.0,
            max_failure_rate: 0.001,
            max_shed_rate: 0.001,
            min_goodput_fraction: 0.98,
        };
        SweepStep { rate, failed: criteria.verdict(&result), result, core_busy: vec![], first_try: None }
    }

    #[test]
    fn a_failing_step_is_tried_again_and_the_second_try_counts() {
        // The first try at 800/s meets a neighbour's burst; the second does not.
        let tries = Cell::new(0);
        let fake = |rate: f64| {
            tries.set(tries.get() + 1);
            let p99 = if tries.get() == 1 { 500.0 } else { 20.0 };
            async move { Some(step(rate, p99)) }
        };
        let mut seen = Vec::new();
        let s = futures_lite::future::block_on(attempt(&fake, 800.0, true, &mut |s| seen.push(s.passed())));
        let s = s.unwrap();
        assert!(s.passed());
        assert_eq!(s.first_try.as_deref(), Some("p99 500.0 ms > 100 ms"));
        assert_eq!(seen, [false, true]);
        // Without retry the first verdict stands.
        tries.set(0);
        let s = futures_lite::future::block_on(attempt(&fake, 800.0, false, &mut |_| {})).unwrap();
        assert!(!s.passed());
        assert_eq!(tries.get(), 1);
    }

    fn plan(rates: &[f64], growth: f64, max_rate: f64) -> SweepPlan {
        SweepPlan {
            rates: rates.to_vec(),
            growth,
            max_rate,
            refine: 2,
            retry_failed: false,
            warmup_secs: 0.0,
            step_secs: 1.0,
        }
    }

    /// The rates a sweep tries against a server whose p99 passes up to `knee` (at most 20 steps:
    /// a runaway sweep ends there instead of hanging the test).
    fn rates_tried(plan: &SweepPlan, knee: f64) -> Vec<f64> {
        let runs = Cell::new(0);
        let fake = |rate: f64| {
            runs.set(runs.get() + 1);
            let more = runs.get() <= 20;
            async move { more.then(|| step(rate, if rate <= knee { 20.0 } else { 500.0 })) }
        };
        let mut tried = Vec::new();
        futures_lite::future::block_on(sweep_with(plan, &fake, &mut |s| tried.push(s.rate)));
        tried
    }

    #[test]
    fn rates_grow_past_the_list_until_a_step_fails_then_bisect() {
        assert_eq!(
            rates_tried(&plan(&[100.0, 200.0], 2.0, 10_000.0), 700.0),
            [100.0, 200.0, 400.0, 800.0, 600.0, 700.0]
        );
        // The ceiling stops growth even while steps pass.
        assert_eq!(rates_tried(&plan(&[100.0], 2.0, 500.0), 10_000.0), [100.0, 200.0, 400.0]);
    }

    #[test]
    fn a_growth_of_one_or_less_tries_only_the_listed_rates() {
        // It used to repeat the last rate forever while the server kept up.
        for growth in [1.0, 0.5] {
            assert_eq!(rates_tried(&plan(&[100.0, 200.0], growth, f64::MAX), 10_000.0), [100.0, 200.0]);
        }
    }

    #[test]
    fn the_knee_is_the_passing_step_with_the_most_goodput() {
        let steps = [step(400.0, 5.0), step(900.0, 90.0), step(800.0, 50.0), step(1000.0, 300.0)];
        assert_eq!(knee(&steps).map(|s| s.rate), Some(900.0));
        assert_eq!(saturated_goodput(&steps), 1000.0);
        assert!(knee(&steps[3..]).is_none());
    }
}
