//! XEP-0198 stream management, client side: the counters, `<r/>` answered, `<a h/>`
//! checked, `<enabled/>`/`<failed/>`, and resumption (`<resume previd h/>`, `<resumed/>`,
//! `<failed/>` then a fresh bind).
//!
//! Counting: `outbound` counts the stanzas the caller reports sent since `<enable/>` (the
//! server counts from its receipt of `<enable/>`, which precedes them on the wire);
//! `inbound` counts stanzas received since `<enabled/>`; `acked` is the last `h` the server
//! sent. All modulo 2^32 with serial arithmetic (an `h` is "ahead" when `h - acked`, as a
//! signed 32-bit number, is positive).
//!
//! What it does not do: remember or resend stanzas (the caller's, see [`Event::Resumed`]),
//! send `<r/>` on its own (the caller's [`Stream::request_ack`]).

use rookery_proto::StanzaView;

use crate::event::{Event, Flow, Sink};
use crate::stream::{Io, Phase, Stream, SM_OFFERED};
use crate::wire;

/// XEP-0198 counters as the caller sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmStatus {
    /// `<enabled/>` (or `<resumed/>`) arrived; before that only our `<enable/>` went out.
    pub enabled: bool,
    /// The server gave a resumption id (and the stream was not closed cleanly).
    pub resumable: bool,
    /// Stanzas received since `<enabled/>`: the `h` we answer `<r/>` with.
    pub inbound: u32,
    /// Stanzas sent since `<enable/>` (renumbered from `h` after `<resumed h/>`).
    pub outbound: u32,
    /// The last `h` the server acknowledged.
    pub acked: u32,
}

/// One XEP-0198 session.
#[derive(Debug)]
pub(crate) struct Sm<X> {
    pub(crate) enabled: bool,
    pub(crate) inbound: u32,
    pub(crate) outbound: u32,
    pub(crate) acked: u32,
    pub(crate) data: X,
}

impl<X: Default> Sm<X> {
    pub(crate) fn requested() -> Sm<X> {
        Sm {
            enabled: false,
            inbound: 0,
            outbound: 0,
            acked: 0,
            data: X::default(),
        }
    }
}

impl<X> Sm<X> {
    pub(crate) fn status(&self, resumable: bool) -> SmStatus {
        SmStatus {
            enabled: self.enabled,
            resumable,
            inbound: self.inbound,
            outbound: self.outbound,
            acked: self.acked,
        }
    }

    pub(crate) fn received_stanza(&mut self) {
        if self.enabled {
            self.inbound = self.inbound.wrapping_add(1);
        }
    }

    /// Checks an `h` from the server: `Ok(true)` if it advances, `Ok(false)` if stale,
    /// `Err(())` if it counts stanzas never sent.
    fn check_h(&self, h: u32) -> Result<bool, ()> {
        if (self.outbound.wrapping_sub(h) as i32) < 0 {
            return Err(());
        }
        Ok(h.wrapping_sub(self.acked) as i32 > 0)
    }
}

impl<X: Default> Stream<X> {
    pub(crate) fn on_sm_element(
        &mut self,
        view: &StanzaView<'_>,
        out: &mut Vec<u8>,
        sink: &mut impl Sink<X>,
    ) -> Flow {
        let Some(sm) = self.sm_mut() else {
            // Not asked for by us: a server sending these anyway is ignored, not answered.
            return Flow::Continue;
        };
        match view.local_name() {
            "r" => {
                wire::ack(sm.inbound, out);
                Flow::Continue
            }
            "a" => {
                let Some(h) = parse_h(view) else {
                    return self.fail("XEP-0198 <a/> without a numeric h", out, sink);
                };
                self.on_h(h, out, sink)
            }
            "enabled" if !sm.enabled => {
                sm.enabled = true;
                let resumable = view.attr("resume").is_some_and(|r| r == "true" || r == "1");
                let id = view.attr("id").filter(|_| resumable);
                self.set_resume_id(id.map(|id| id.into_owned().into_boxed_str()));
                let resumable = self.resume_id().is_some();
                sink(Event::SmEnabled { resumable }, self, out)
            }
            "failed" if !sm.enabled => {
                self.set_sm(None);
                let condition = first_condition(view);
                sink(Event::SmFailed { condition }, self, out)
            }
            _ => Flow::Continue,
        }
    }

    /// An acknowledgement: reported when it advances, refused when it counts too many.
    fn on_h(&mut self, h: u32, out: &mut Vec<u8>, sink: &mut impl Sink<X>) -> Flow {
        let Some(sm) = self.sm_mut() else {
            return Flow::Continue;
        };
        match sm.check_h(h) {
            Ok(true) => {
                sm.acked = h;
                sink(Event::Acked { h }, self, out)
            }
            Ok(false) => Flow::Continue,
            Err(()) => {
                let sent = sm.outbound;
                wire::handled_count_too_high(h, sent, out);
                self.end(Event::AckTooHigh { h, sent }, out, sink)
            }
        }
    }

    /// After authentication with a session kept from an earlier stream: resume it if the
    /// server still offers XEP-0198, else report it lost and bind afresh.
    pub(crate) fn resume_or_bind(&mut self, io: &mut Io<'_, impl Sink<X>>) -> Flow {
        let offered = self.flags & SM_OFFERED != 0;
        match self.resume_id() {
            Some(previd) if offered => {
                let h = self.sm().map_or(0, |sm| sm.inbound);
                wire::resume(previd, h, io.out);
                self.phase = Phase::AwaitResume;
                Flow::Continue
            }
            _ => {
                self.set_sm(None);
                self.bind(io.account, io.out);
                let condition = "stream management no longer offered";
                (io.sink)(Event::ResumeFailed { condition }, self, io.out)
            }
        }
    }

    pub(crate) fn on_resume_reply(
        &mut self,
        view: &StanzaView<'_>,
        io: &mut Io<'_, impl Sink<X>>,
    ) -> Flow {
        if view.xmlns() != Some(crate::SM_NS) {
            return self.fail("expected <resumed/> or <failed/>", io.out, io.sink);
        }
        match view.local_name() {
            "resumed" => {
                let Some(h) = parse_h(view) else {
                    return self.fail("XEP-0198 <resumed/> without a numeric h", io.out, io.sink);
                };
                let Some(sm) = self.sm_mut() else {
                    return self.fail("resumed without a session", io.out, io.sink);
                };
                if sm.check_h(h).is_err() {
                    let sent = sm.outbound;
                    wire::handled_count_too_high(h, sent, io.out);
                    return self.end(Event::AckTooHigh { h, sent }, io.out, io.sink);
                }
                // XEP-0198 5: what the server did not handle is resent, numbered after `h`.
                sm.acked = h;
                sm.outbound = h;
                self.phase = Phase::Online;
                (io.sink)(Event::Resumed { h }, self, io.out)
            }
            "failed" => {
                self.set_sm(None);
                self.bind(io.account, io.out);
                let condition = first_condition(view);
                (io.sink)(Event::ResumeFailed { condition }, self, io.out)
            }
            _ => self.fail("expected <resumed/> or <failed/>", io.out, io.sink),
        }
    }
}

fn parse_h(view: &StanzaView<'_>) -> Option<u32> {
    view.attr("h")?.trim().parse().ok()
}

/// The first child's name of a `<failed/>` (its stanza error condition), if any.
fn first_condition<'a>(view: &StanzaView<'a>) -> &'a str {
    view.children()
        .next()
        .map_or("undefined-condition", |c| c.local_name)
}
