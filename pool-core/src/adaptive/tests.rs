//! The policy alone, on a made-up clock: each judgement is handed its `now`, so these run
//! in microseconds and never depend on the machine's speed.

use std::time::{Duration, Instant};

use super::{AdaptiveSizing, Judged, Policy};

const SEC: Duration = Duration::from_secs(1);

/// A policy (interval 1 s, headroom 1, shrink after 5 s, step 2) and its clock.
struct Run {
    policy: Policy,
    now: Instant,
    waits: u64,
    min: usize,
    max: usize,
}

impl Run {
    fn new(min: usize, max: usize) -> Self {
        let cfg = AdaptiveSizing::default()
            .interval(SEC)
            .headroom(1)
            .shrink_after(5 * SEC)
            .shrink_step(2);
        let now = Instant::now();
        Run {
            policy: Policy::new(cfg, min, now, 0),
            now,
            waits: 0,
            min,
            max,
        }
    }

    /// One interval with the load `load` sampled, `waited` queued acquisitions and
    /// `open` connections open at its end; returns the judgement.
    fn interval(&mut self, load: usize, waited: u64, open: usize) -> Judged {
        self.now += SEC;
        self.policy.sample(load);
        self.waits += waited;
        self.policy
            .judge(self.now, self.waits, open, self.min, self.max)
    }
}

#[test]
fn grows_at_once_when_callers_wait() {
    let mut r = Run::new(2, 50);
    // The sampled load missed the peak (3), but 10 were open while someone queued.
    let j = r.interval(3, 4, 10);
    assert_eq!(j.target, 11, "open when someone waited, plus the headroom");
    assert_eq!(j.close, 0);
}

#[test]
fn grows_when_the_load_reaches_the_target_without_waits() {
    let mut r = Run::new(2, 50);
    assert_eq!(r.interval(2, 0, 3).target, 3);
    assert_eq!(r.interval(7, 0, 8).target, 8);
}

#[test]
fn never_above_max_nor_below_min() {
    let mut r = Run::new(3, 8);
    assert_eq!(r.interval(100, 100, 8).target, 8);
    for _ in 0..30 {
        let j = r.interval(0, 0, 8);
        assert!((3..=8).contains(&j.target), "{j:?}");
    }
    assert_eq!(r.interval(0, 0, 3).target, 3);
}

#[test]
fn shrinks_only_after_shrink_after_and_by_the_step_each_interval() {
    let mut r = Run::new(0, 50);
    assert_eq!(r.interval(20, 1, 20).target, 21);
    // Quiet from the next interval on: the first quiet judgement starts the clock, the
    // target holds for shrink_after (5 s), then falls by 2 per interval.
    let targets: Vec<usize> = (0..16).map(|_| r.interval(0, 0, 21).target).collect();
    assert_eq!(
        targets,
        [21, 21, 21, 21, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1, 1],
        "5 s of holding, then at most shrink_step (2) per interval, down to the headroom"
    );
}

#[test]
fn a_shrink_closes_what_it_takes_off_the_target() {
    let mut r = Run::new(0, 50);
    r.interval(9, 1, 9);
    let closes: Vec<usize> = (0..10).map(|_| r.interval(0, 0, 10).close).collect();
    assert_eq!(closes, [0, 0, 0, 0, 0, 2, 2, 2, 2, 1]);
}

#[test]
fn a_busy_interval_restarts_the_quiet_clock() {
    let mut r = Run::new(0, 50);
    r.interval(9, 1, 9); // target 10
    for _ in 0..4 {
        assert_eq!(r.interval(0, 0, 10).target, 10);
    }
    // The load comes back to the target (9 + headroom = 10): not quiet.
    assert_eq!(r.interval(9, 0, 10).target, 10);
    for _ in 0..5 {
        assert_eq!(r.interval(0, 0, 10).target, 10, "the 5 s count again");
    }
    assert_eq!(r.interval(0, 0, 10).target, 8);
}

#[test]
fn a_steady_load_does_not_flap() {
    // A load moving between 4 and 9, its peak of 9 coming back at least every 4 intervals
    // (shorter than shrink_after): after the first interval the target never moves, for
    // ten minutes of intervals.
    let mut r = Run::new(1, 50);
    let pattern = [4, 9, 6, 5, 8, 7, 9, 4];
    let mut open = 1;
    let mut targets = Vec::new();
    for i in 0..600 {
        let load = pattern[i % pattern.len()];
        let waited = u64::from(load > open);
        open = r.interval(load, waited, open).target;
        targets.push(open);
    }
    assert!(
        targets[1..].iter().all(|t| *t == 10),
        "the target moved under a steady load: {:?}",
        &targets[..40]
    );
}

#[test]
fn the_bounds_given_at_each_judgement_win() {
    // resize() between two judgements: the policy clamps to the new bounds at once.
    let mut r = Run::new(0, 50);
    assert_eq!(r.interval(30, 1, 30).target, 31);
    r.max = 10;
    assert_eq!(r.interval(30, 1, 10).target, 10);
    r.min = 12;
    r.max = 20;
    assert_eq!(r.interval(0, 0, 12).target, 12);
    r.min = 0;
    r.max = 50;
    // Quiet since the judgement before: four more holds (5 s in all), then the step.
    let t: Vec<usize> = (0..7).map(|_| r.interval(0, 0, 12).target).collect();
    assert_eq!(t, [12, 12, 12, 12, 10, 8, 6]);
}

#[test]
fn text_round_trip_and_errors() {
    let a = AdaptiveSizing::default()
        .interval(Duration::from_millis(250))
        .headroom(3)
        .shrink_after(Duration::from_secs(90))
        .shrink_step(4);
    let text = a.to_string();
    assert_eq!(text.parse::<AdaptiveSizing>().unwrap(), a, "{text}");
    assert_eq!(
        "on".parse::<AdaptiveSizing>().unwrap(),
        AdaptiveSizing::default()
    );
    assert_eq!(
        "headroom=2".parse::<AdaptiveSizing>().unwrap(),
        AdaptiveSizing::default().headroom(2)
    );
    for (bad, says) in [
        ("interval", "is not key=value"),
        ("colour=red", "unknown key \"colour\""),
        ("headroom=-1", "headroom: expected a whole number"),
        ("interval=5", "interval:"),
    ] {
        let e = bad.parse::<AdaptiveSizing>().unwrap_err().to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
    assert!(AdaptiveSizing::default().shrink_step(0).problem().is_some());
    assert!(AdaptiveSizing::default()
        .interval(Duration::from_millis(1))
        .problem()
        .is_some());
    assert!(AdaptiveSizing::default().problem().is_none());
}

#[test]
fn the_longest_durations_do_not_overflow() {
    // Instants far in the future saturate (an overflow would panic the housekeeper).
    let cfg = AdaptiveSizing::default()
        .interval(Duration::MAX)
        .shrink_after(Duration::MAX)
        .headroom(usize::MAX)
        .shrink_step(usize::MAX);
    let now = Instant::now();
    let mut p = Policy::new(cfg, 0, now, 0);
    assert!(p.sample_due(now));
    assert!(!p.sample_due(now));
    assert!(!p.judge_due(now));
    p.sample(usize::MAX);
    let j = p.judge(now + SEC, 1, usize::MAX, 0, 8);
    assert_eq!(j.target, 8);
    for i in 2..5 {
        let j = p.judge(now + SEC * i, 1, 0, 0, 8);
        assert!(j.target <= 8);
    }
}
