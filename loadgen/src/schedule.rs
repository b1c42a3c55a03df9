//! Open-loop schedules: when each message and each connect is *due*, independent of how
//! fast the server answers (so a slow server cannot slow the load down and hide its own
//! latency: coordinated omission).
//!
//! - [`MessageSchedule`]: message k of a client is due at `t0 + k/rate` (constant), or after
//!   exponential gaps of mean `1/rate` (Poisson arrivals, `--poisson`). Each client starts at
//!   a random phase inside its first period so clients do not fire in lockstep.
//! - [`Ramp`]: connect k of a thread is due at `start + k/rate`.
//! - [`Pacer`]: at most `rate` events per second, for reconnects in a storm (a short burst
//!   allowance so a loop turn that wakes late can catch up, but no unbounded credit).
//! - [`Rng`]: a small seeded generator (SplitMix64), one per worker thread; seeds are recorded
//!   in summary.json so a run's choices can be replayed.
//!
//! What it does not do: read clocks or sleep. All times are CLOCK_MONOTONIC nanoseconds
//! passed in by the caller.

const NS_PER_S: f64 = 1e9;

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, good enough for picking peers and gaps.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: never 0, so `-ln(u)` is finite.
    pub fn unit_open(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (n > 0), by multiply-shift (bias below 2^-32 for n < 2^32).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// How message gaps are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    Constant,
    Poisson,
}

/// One client's message times, for a per-client rate in messages per second.
#[derive(Clone, Copy, Debug)]
pub struct MessageSchedule {
    period_ns: f64,
    pattern: Pattern,
}

impl MessageSchedule {
    /// `rate_per_s` must be positive and finite (checked by the command line).
    pub fn new(rate_per_s: f64, pattern: Pattern) -> MessageSchedule {
        assert!(
            rate_per_s > 0.0 && rate_per_s.is_finite(),
            "message rate must be positive"
        );
        MessageSchedule {
            period_ns: NS_PER_S / rate_per_s,
            pattern,
        }
    }

    /// When message 0 is due: a uniform phase within one period after `t0_ns`.
    pub fn first_due(&self, t0_ns: u64, rng: &mut Rng) -> u64 {
        t0_ns + (rng.unit_open() * self.period_ns) as u64
    }

    /// When the message after the one due at `due_ns` is due.
    pub fn next_due(&self, due_ns: u64, rng: &mut Rng) -> u64 {
        let gap_ns = match self.pattern {
            Pattern::Constant => self.period_ns,
            Pattern::Poisson => -rng.unit_open().ln() * self.period_ns,
        };
        due_ns + gap_ns.round() as u64
    }
}

/// The connect ramp of one worker thread.
#[derive(Clone, Copy, Debug)]
pub struct Ramp {
    start_ns: u64,
    interval_ns: f64,
}

impl Ramp {
    /// `rate_per_s` is this thread's share of `--connect-rate` (positive).
    pub fn new(start_ns: u64, rate_per_s: f64) -> Ramp {
        assert!(
            rate_per_s > 0.0 && rate_per_s.is_finite(),
            "connect rate must be positive"
        );
        Ramp {
            start_ns,
            interval_ns: NS_PER_S / rate_per_s,
        }
    }

    /// When connect number `k` (from 0) of this thread is due.
    pub fn due(&self, k: u64) -> u64 {
        self.start_ns + (k as f64 * self.interval_ns) as u64
    }
}

/// How much unused pacing credit a [`Pacer`] keeps: events that could not happen while the
/// loop was busy may happen at once afterwards, up to this window's worth.
const PACER_BURST_NS: u64 = 10_000_000;

/// Lets through at most `rate` events per second (or all, when unlimited).
#[derive(Clone, Copy, Debug)]
pub struct Pacer {
    /// `None`: unlimited.
    interval_ns: Option<f64>,
    /// When the next event may happen (fractional ns, so rates above 1e9/s stay exact).
    next_ns: f64,
}

impl Pacer {
    /// `rate_per_s`: `None` for unlimited, else positive.
    pub fn new(rate_per_s: Option<f64>) -> Pacer {
        if let Some(rate) = rate_per_s {
            assert!(
                rate > 0.0 && rate.is_finite(),
                "pacer rate must be positive"
            );
        }
        Pacer {
            interval_ns: rate_per_s.map(|r| NS_PER_S / r),
            next_ns: 0.0,
        }
    }

    /// Takes one event's slot at `now_ns` if one is free.
    pub fn try_take(&mut self, now_ns: u64) -> bool {
        let Some(interval) = self.interval_ns else {
            return true;
        };
        let now = now_ns as f64;
        let earliest = now - PACER_BURST_NS as f64;
        if self.next_ns < earliest {
            self.next_ns = earliest;
        }
        if self.next_ns > now {
            return false;
        }
        self.next_ns += interval;
        true
    }

    /// When the next slot frees up (now or earlier means: free already).
    pub fn next_free_ns(&self) -> u64 {
        match self.interval_ns {
            Some(_) => self.next_ns.max(0.0) as u64,
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_limits_rate_with_a_small_burst() {
        let mut unlimited = Pacer::new(None);
        assert!((0..1000).all(|_| unlimited.try_take(5)));

        // 1000/s: one per ms. Starting late, at most the burst window's worth at once.
        let mut p = Pacer::new(Some(1000.0));
        let t0 = 1_000_000_000;
        let burst = (0..100).take_while(|_| p.try_take(t0)).count();
        assert_eq!(burst, 11, "10 ms of credit plus the current slot");
        assert!(!p.try_take(t0));
        assert!(p.next_free_ns() > t0);
        // Over one more second, exactly 1000 more.
        let taken = (0..1_000_000u64)
            .filter(|us| p.try_take(t0 + us * 1000 + 1000))
            .count();
        assert!((999..=1001).contains(&taken), "{taken}");
    }

    #[test]
    fn constant_schedule_is_exact() {
        let s = MessageSchedule::new(4.0, Pattern::Constant);
        let mut rng = Rng::new(1);
        let first = s.first_due(1_000, &mut rng);
        assert!((1_000..1_000 + 250_000_000).contains(&first));
        let mut due = first;
        for _ in 0..400 {
            due = s.next_due(due, &mut rng);
        }
        assert_eq!(
            due - first,
            100_000_000_000,
            "400 messages at 4/s span exactly 100 s"
        );
    }

    #[test]
    fn poisson_gaps_have_the_requested_mean_and_spread() {
        let s = MessageSchedule::new(10.0, Pattern::Poisson);
        let mut rng = Rng::new(42);
        let n = 200_000u64;
        let (mut due, mut sum_sq) = (0u64, 0f64);
        for _ in 0..n {
            let next = s.next_due(due, &mut rng);
            let gap = (next - due) as f64;
            sum_sq += gap * gap;
            due = next;
        }
        let mean = due as f64 / n as f64;
        assert!(
            (mean - 1e8).abs() < 1e8 * 0.01,
            "mean gap {mean} ns, want 1e8"
        );
        // Exponential: standard deviation equals the mean (E[x^2] = 2 mean^2).
        let sd = (sum_sq / n as f64 - mean * mean).sqrt();
        assert!((sd - mean).abs() < mean * 0.03, "sd {sd} vs mean {mean}");
    }

    #[test]
    fn ramp_spaces_connects_evenly() {
        let ramp = Ramp::new(5, 1000.0);
        assert_eq!(ramp.due(0), 5);
        assert_eq!(ramp.due(1000), 5 + 1_000_000_000);
    }

    #[test]
    fn rng_is_seeded_and_bounded() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert_eq!(a.next_u64(), b.next_u64());
        let mut seen = [false; 10];
        for _ in 0..1000 {
            seen[a.below(10) as usize] = true;
            let u = a.unit_open();
            assert!(u > 0.0 && u <= 1.0);
        }
        assert!(seen.iter().all(|&s| s));
    }
}
