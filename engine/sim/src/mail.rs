//! Cross-shard mail in the world: what a shard's real loop flushed (its `SimMailbox` posts
//! it) travels per-(src, dst) lanes (FIFO, a random delay per mail, one event per mail) into
//! the destination's inbox, for every kind of `ShardMail` alike (router mail: `Deliver`,
//! `Committed`, `Fanout`, `Gathered`; and `Adopt`, a handed-off conn), and the mail canaries (`drop-mail`, `reorder-lane`, `drop-fanout-recipient`).
//!
//! What it does not do: interpret mail (the routers do) or judge it (the checkers do).
//!
//! Invariants: a lane delivers in the order mails were pushed (the reorder canary aside);
//! lanes are bounded by `LANE_MAX`; a restart empties them (mail in flight dies with the
//! process).

use std::collections::VecDeque;
use std::sync::Arc;

use rookery::shard::ShardMail;
use rookery_proto::StanzaKind;
use rookery_router::{Fanout, Mail, Recipient, StanzaType};

use crate::ledger::Violation;
use crate::world::{Ev, Step, World, LANE_MAX};
use crate::InjectBug;

impl World {
    pub(crate) fn push_mail(&mut self, src: u16, dst: u16, mail: ShardMail) -> Step {
        self.mix(b"mail");
        let mut mail = match mail {
            ShardMail::Router(mail) => mail,
            other @ (ShardMail::Adopt { .. } | ShardMail::Remote { .. }) => {
                return self.enqueue_mail(src, dst, other)
            }
        };
        let armed = self.quiet && !self.bug_done && self.now_ms < self.chat_until_ms;
        // Only messages a sender waits for: losing a probe answer, a bounce or a room's
        // subject breaks no promise, so those canaries would prove nothing.
        let deliver = matches!(
            mail,
            Mail::Deliver {
                kind: StanzaKind::Message,
                ack: Some(_),
                ..
            }
        );
        match self.cfg.inject {
            // drop-mail: the first Deliver of the quiet period vanishes.
            Some(InjectBug::DropMail) if armed && deliver => {
                self.note(|| format!("drop-mail: {mail:?}"));
                self.bug_done = true;
                return Ok(());
            }
            Some(InjectBug::ReorderLane) if armed && deliver => {
                let Some((hs, hd, held)) = self.held.take() else {
                    self.held = Some((src, dst, ShardMail::Router(mail)));
                    return Ok(());
                };
                if let ShardMail::Router(held_mail) = &held {
                    if (hs, hd) == (src, dst) && same_pair(held_mail, &mail) {
                        self.bug_done = true;
                        self.enqueue_mail(src, dst, ShardMail::Router(mail))?;
                        return self.enqueue_mail(src, dst, held);
                    }
                }
                self.held = Some((hs, hd, held));
            }
            Some(InjectBug::DropFanoutRecipient) if self.fanout_armed() => {
                if let Mail::Fanout(fanout) = &mut mail {
                    self.drop_recipient(fanout);
                }
            }
            _ => {}
        }
        self.enqueue_mail(src, dst, ShardMail::Router(mail))
    }

    /// drop-fanout-recipient fires once, in the quiet period once clients had time to log in
    /// again (so the victim is likely owed the stanza) and while they still send.
    fn fanout_armed(&self) -> bool {
        let settled_ms = self.quiet_from_ms + self.cfg.quiet_ms / 8;
        self.quiet
            && !self.bug_done
            && self.now_ms >= settled_ms
            && self.now_ms < self.chat_until_ms
    }

    /// Removes one recipient of an available presence or a groupchat fan-out (one whose
    /// sender waits for it: a groupchat message from a session without XEP-0198 is owed to
    /// nobody, so losing a copy of it would prove nothing).
    fn drop_recipient(&mut self, fanout: &mut Fanout) {
        let wanted = match fanout.ty {
            StanzaType::Available => true,
            StanzaType::Groupchat => self.sender_waits(fanout),
            _ => false,
        };
        if !wanted || fanout.recipients.is_empty() {
            return;
        }
        // A `Member` right after its own `Session` marks a present member (its devices that did
        // not join get a live copy); dropping that entry loses nothing the sim tracks, so the
        // victim is one of the others.
        let present_marker = |at: usize| match (&fanout.recipients[at], at.checked_sub(1)) {
            (Recipient::Member(member), Some(before)) => matches!(
                &fanout.recipients[before],
                Recipient::Session(session) if session.bare_str() == member.bare_str()
            ),
            _ => false,
        };
        let candidates: Vec<usize> = (0..fanout.recipients.len())
            .filter(|&at| !present_marker(at))
            .collect();
        let Some(&victim) = candidates.get(self.rng.index(candidates.len().max(1))) else {
            return;
        };
        self.note(|| format!("drop-fanout-recipient: {:?}", fanout.recipients[victim]));
        // A dropped occupant session takes its present-member marker along: otherwise that
        // marker (now after no session) would deliver the copy as to an absent member.
        let marker = victim + 1;
        let with_marker = marker < fanout.recipients.len() && present_marker(marker);
        let kept: Vec<Recipient> = fanout
            .recipients
            .iter()
            .enumerate()
            .filter(|&(at, _)| at != victim && !(with_marker && at == marker))
            .map(|(_, r)| r.clone())
            .collect();
        fanout.recipients = Arc::from(kept);
        self.bug_done = true;
    }

    /// Whether the sender of a groupchat fan-out (`room/u<C>`) uses XEP-0198 now.
    fn sender_waits(&self, fanout: &Fanout) -> bool {
        let sender = fanout
            .from
            .resource()
            .and_then(|nick| nick.strip_prefix('u')?.parse::<usize>().ok());
        sender.is_some_and(|c| self.clients.get(c).is_some_and(|c| c.sm))
    }

    fn enqueue_mail(&mut self, src: u16, dst: u16, mail: ShardMail) -> Step {
        let lane = self.lanes.entry((src, dst)).or_default();
        lane.push_back(mail);
        let len = lane.len();
        if len > LANE_MAX {
            let detail = format!("lane {src}->{dst} holds {len} mails (bound {LANE_MAX})");
            return Err(Violation::new("bounded", detail));
        }
        let epoch = self.epoch;
        let delay = self.rng.range(0, 10);
        self.schedule(delay, Ev::Mail { src, dst, epoch });
        Ok(())
    }

    pub(crate) fn deliver_mail(&mut self, src: u16, dst: u16) -> Step {
        let Some(mail) = self
            .lanes
            .get_mut(&(src, dst))
            .and_then(VecDeque::pop_front)
        else {
            return Ok(()); // dropped by the drop-mail bug: its event has nothing to carry
        };
        self.mix(b"mail-in");
        if let ShardMail::Router(mail) = &mail {
            self.note(|| format!("mail {src}->{dst}: {mail:?}"));
        }
        let Some(s) = self.shards.get(usize::from(dst)) else {
            return Ok(());
        };
        s.post.borrow_mut().inbox.push_back((src, mail));
        self.wake_shard_at(dst, self.now_ms);
        Ok(())
    }
}

/// Two Deliver mails from the same sender to the same recipient.
fn same_pair(a: &Mail, b: &Mail) -> bool {
    match (a, b) {
        (Mail::Deliver { to, from, .. }, Mail::Deliver { to: t, from: f, .. }) => {
            to.bare_str() == t.bare_str() && from.bare_str() == f.bare_str()
        }
        _ => false,
    }
}
