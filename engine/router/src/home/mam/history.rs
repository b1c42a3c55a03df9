//! XEP-0045 7.2.15 discussion history: a joiner gets the room's last messages from its
//! archive, each with a XEP-0203 `<delay from=room/>`, before the subject. The join's
//! `<history maxstanzas maxchars seconds since/>` narrows it; without one the last
//! `DEFAULT_STANZAS` are sent.
//!
//! What it does not do: count `maxchars` in characters (it counts the bytes of the stanzas as
//! sent, a bound the XEP's "characters" approximates), or send history when the archive is
//! off.
//!
//! Invariants: at most `MAX_STANZAS` messages, oldest first.

use rookery_proto::element::Element;
use rookery_proto::{StanzaKind, StanzaView};
use rookery_store::archive::Query;

use super::form::datetime_ms;
use crate::effects::StanzaType;
use crate::home::delay::with_delay;
use crate::home::groups::muc::{Ctx, Room};

/// Messages sent to a joiner that asks for no particular history.
pub(crate) const DEFAULT_STANZAS: usize = 20;
/// Most messages sent to a joiner, whatever it asks.
pub(crate) const MAX_STANZAS: usize = 100;

const MUC_NS: &str = "http://jabber.org/protocol/muc";

/// What the joiner asked for.
struct Wanted {
    stanzas: usize,
    chars: Option<usize>,
    since_ms: Option<u64>,
}

fn wanted(view: &StanzaView<'_>, now_ms: u64) -> Wanted {
    let mut wanted = Wanted {
        stanzas: DEFAULT_STANZAS,
        chars: None,
        since_ms: None,
    };
    let x = view
        .children()
        .find(|c| c.local_name == "x" && c.xmlns == Some(MUC_NS));
    let Some(x) = x.and_then(|x| Element::parse(x.bytes).ok()) else {
        return wanted;
    };
    let Some(history) = x.child("history", MUC_NS) else {
        return wanted;
    };
    let number = |name: &str| {
        history
            .attr(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(n) = number("maxstanzas") {
        wanted.stanzas = usize::try_from(n).unwrap_or(MAX_STANZAS).min(MAX_STANZAS);
    }
    wanted.chars = number("maxchars").map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    if let Some(seconds) = number("seconds") {
        wanted.since_ms = Some(now_ms.saturating_sub(seconds.saturating_mul(1000)));
    }
    if let Some(since) = history.attr("since").and_then(datetime_ms) {
        wanted.since_ms = Some(wanted.since_ms.map_or(since, |s| s.max(since)));
    }
    wanted
}

/// Sends the room's recent messages to the session joining (`ctx.from`).
pub(crate) fn send(room: &Room, ctx: &mut Ctx<'_, '_>) {
    let Some(archiver) = ctx.archive.as_deref() else {
        return;
    };
    let wanted = wanted(ctx.view, archiver.wall_ms);
    if wanted.stanzas == 0 || wanted.chars == Some(0) {
        return;
    }
    let query = Query {
        owner: room.jid.bare_str(),
        start_ms: wanted.since_ms,
        from_end: true,
        max: wanted.stanzas,
        ..Query::default()
    };
    // A failed read leaves the joiner without history, not without the room.
    let Ok(page) = archiver.archive.query(&query) else {
        return;
    };
    let mut out = Vec::new();
    for message in &page.messages {
        let Ok(view) = StanzaView::parse(&message.stanza) else {
            continue;
        };
        let mut addressed = Vec::with_capacity(message.stanza.len() + 64);
        view.stamp(&message.with, Some(ctx.from.as_str()), &mut addressed);
        let mut stanza = Vec::with_capacity(addressed.len() + 96);
        with_delay(
            &addressed,
            room.jid.bare_str(),
            message.stamp_ms,
            &mut stanza,
        );
        out.push(stanza);
    }
    if let Some(budget) = wanted.chars {
        // Keep the newest that fit.
        let mut used = 0;
        let keep = out
            .iter()
            .rev()
            .take_while(|s| {
                used += s.len();
                used <= budget
            })
            .count();
        out.drain(..out.len() - keep);
    }
    let joiner = ctx.from.clone();
    for stanza in out {
        ctx.send(&joiner, StanzaKind::Message, StanzaType::Groupchat, stanza);
    }
}
