//! The server's keepalive of one WebSocket conn: a ping after a quiet spell, and the end of
//! the conn when nothing comes back.
//!
//! Why: RFC 7395 3.4 forbids the whitespace keepalives of XMPP over TCP, so an idle web
//! client's conn carries nothing, and proxies and NATs on the way drop conns that carry
//! nothing. A WebSocket ping (RFC 6455 5.5.2), answered by the browser itself, keeps them
//! open, and a peer that stopped answering is found out within `idle_ms + timeout_ms`
//! instead of at the router's idle timeout.
//!
//! What it does: the caller reports input ([`Keepalive::heard`]: any bytes, a pong or a
//! stanza alike) and asks, now and then, what is due ([`Keepalive::check`]). Quiet for
//! `idle_ms` since the first check after the last input: a ping is due; quiet for
//! `timeout_ms` more after that ping: the conn timed out.
//!
//! What it does not do: read a clock (the caller passes `now_ms`), write frames
//! (`ServerLayer::keepalive` does), or time anything between checks: its precision is the
//! caller's check interval.
//!
//! Invariants: no heap; at most one ping outstanding; input clears both timers.

/// When to ping and when to give up (`--ws-ping-interval`, `--ws-ping-timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepalivePolicy {
    /// Quiet this long: send a ping.
    pub idle_ms: u64,
    /// Quiet this long after the ping: close the conn.
    pub timeout_ms: u64,
}

/// What a check found due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    Nothing,
    /// Send a ping now.
    Ping,
    /// The ping went unanswered: close the conn.
    TimedOut,
}

/// One conn's keepalive timers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Keepalive {
    /// The first check after the last input (`None`: input since the last check).
    quiet_since_ms: Option<u64>,
    /// When the outstanding ping was sent.
    pinged_at_ms: Option<u64>,
}

impl Keepalive {
    /// The peer sent something: it is alive.
    pub fn heard(&mut self) {
        *self = Keepalive::default();
    }

    /// What is due at `now_ms`; a [`Due::Ping`] is reported once per quiet spell.
    pub fn check(&mut self, now_ms: u64, policy: KeepalivePolicy) -> Due {
        let quiet_since = *self.quiet_since_ms.get_or_insert(now_ms);
        match self.pinged_at_ms {
            Some(pinged) if now_ms.saturating_sub(pinged) >= policy.timeout_ms => Due::TimedOut,
            Some(_) => Due::Nothing,
            None if now_ms.saturating_sub(quiet_since) >= policy.idle_ms => {
                self.pinged_at_ms = Some(now_ms);
                Due::Ping
            }
            None => Due::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: KeepalivePolicy = KeepalivePolicy {
        idle_ms: 1000,
        timeout_ms: 500,
    };

    #[test]
    fn a_quiet_conn_is_pinged_once_then_times_out() {
        let mut k = Keepalive::default();
        assert_eq!(k.check(10_000, POLICY), Due::Nothing, "quiet from here");
        assert_eq!(k.check(10_999, POLICY), Due::Nothing);
        assert_eq!(k.check(11_000, POLICY), Due::Ping);
        assert_eq!(k.check(11_100, POLICY), Due::Nothing, "one ping per spell");
        assert_eq!(k.check(11_499, POLICY), Due::Nothing);
        assert_eq!(k.check(11_500, POLICY), Due::TimedOut);
    }

    #[test]
    fn input_clears_the_timers_even_after_a_ping() {
        let mut k = Keepalive::default();
        k.check(0, POLICY);
        assert_eq!(k.check(1000, POLICY), Due::Ping);
        k.heard(); // the pong
        assert_eq!(k.check(1400, POLICY), Due::Nothing, "quiet again from here");
        assert_eq!(k.check(2000, POLICY), Due::Nothing, "not a timeout");
        assert_eq!(k.check(2400, POLICY), Due::Ping);
        k.heard();
        assert_eq!(k.check(99_000, POLICY), Due::Nothing);
    }

    #[test]
    fn a_clock_going_backwards_is_not_a_timeout() {
        let mut k = Keepalive::default();
        k.check(5000, POLICY);
        assert_eq!(k.check(100, POLICY), Due::Nothing);
    }
}
