//! The stanzas of the presence and group scenarios, and the JIDs they name.
//!
//! Bodies: a status change carries `<status>rk r=<run> s=<sender> q=<seq> i=<intended ns>
//! a=<actual ns></status>`, a group message `<body>` the same with `s=<group>`: the fields of
//! the chat probe (see `crate::wire`) under the tag `rk`, so one parser reads both and a chat
//! probe is never mistaken for either. Everything written is ASCII from the run's validated
//! config or numbers: nothing needs escaping.
//!
//! JIDs: client `i` is `<prefix><i+1>@<domain>` (bare) with resource `load` when bound; group
//! `g` is the room `g<g>@<muc domain>`, where each client's nickname is its user name.
//!
//! What it does not do: parse stanzas (see `client`), or decide what to send (see `worker`).

use std::io::Write as _;

use crate::wire::Probe;

/// The tag of presence and group bodies.
pub const TAG: &str = "rk";
/// XEP-0045 namespaces.
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
/// The id of the instant-room form of group `g` is this prefix then `g`.
pub const CONFIG_ID_PREFIX: &str = "cfg-";

/// The names a run's stanzas use.
#[derive(Clone, Copy, Debug)]
pub struct Names<'a> {
    pub user_prefix: &'a str,
    pub domain: &'a str,
    /// Empty outside the group scenario.
    pub muc_domain: &'a str,
    /// Roles whose presence a room broadcasts (comma-separated, or "none"), set in the
    /// instant-room form; empty: the server's default.
    pub presence_broadcast: &'a str,
}

impl Names<'_> {
    /// Appends client `index`'s bare JID.
    pub fn write_user(&self, out: &mut Vec<u8>, index: u32) {
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "{}{}@{}",
            self.user_prefix,
            u64::from(index) + 1,
            self.domain
        );
    }

    /// Appends group `group`'s room JID.
    pub fn write_room(&self, out: &mut Vec<u8>, group: u32) {
        let _ = write!(out, "g{group}@{}", self.muc_domain);
    }

    /// Appends the room occupant JID of client `index` in `group`.
    fn write_occupant(&self, out: &mut Vec<u8>, group: u32, index: u32) {
        self.write_room(out, group);
        let _ = write!(out, "/{}{}", self.user_prefix, u64::from(index) + 1);
    }

    /// The client a JID (bare or full) of this run names: `<prefix><n>@<domain>[/...]`.
    /// Servers may fold case (RFC 7622), so the prefix and domain match ignoring ASCII case.
    pub fn user_of(&self, jid: &str) -> Option<u32> {
        let bare = jid.split_once('/').map_or(jid, |(bare, _)| bare);
        let (local, domain) = bare.split_once('@')?;
        if !domain.eq_ignore_ascii_case(self.domain) {
            return None;
        }
        number_after(local, self.user_prefix)
    }

    /// The group and occupant nickname of a room JID `g<g>@<muc domain>[/nick]` (empty
    /// nickname for the bare room).
    pub fn room_of<'j>(&self, jid: &'j str) -> Option<(u32, &'j str)> {
        if self.muc_domain.is_empty() {
            return None;
        }
        let (bare, nick) = jid.split_once('/').unwrap_or((jid, ""));
        let (local, domain) = bare.split_once('@')?;
        if !domain.eq_ignore_ascii_case(self.muc_domain) {
            return None;
        }
        // Rooms are numbered from 0, as written: no offset.
        let group = u32::try_from(digits_after(local, "g")?).ok()?;
        Some((group, nick))
    }

    /// Whether `nick` is client `index`'s nickname.
    pub fn is_nick_of(&self, nick: &str, index: u32) -> bool {
        number_after(nick, self.user_prefix) == Some(index)
    }

    /// `<presence to='CONTACT' type='KIND'/>` (subscribe, subscribed).
    pub fn write_subscription(&self, out: &mut Vec<u8>, contact: u32, kind: &str) {
        out.extend_from_slice(b"<presence to='");
        self.write_user(out, contact);
        let _ = write!(out, "' type='{kind}'/>");
    }

    /// A join of `group` as client `index`, asking for no history (XEP-0045 7.2, 7.2.13).
    pub fn write_join(&self, out: &mut Vec<u8>, group: u32, index: u32) {
        out.extend_from_slice(b"<presence to='");
        self.write_occupant(out, group, index);
        out.extend_from_slice(b"'><x xmlns='");
        out.extend_from_slice(NS_MUC.as_bytes());
        out.extend_from_slice(b"'><history maxstanzas='0'/></x></presence>");
    }

    /// The instant-room form: accept the default configuration (XEP-0045 10.1.2).
    pub fn write_instant_room(&self, out: &mut Vec<u8>, group: u32) {
        let _ = write!(out, "<iq type='set' id='{CONFIG_ID_PREFIX}{group}' to='");
        self.write_room(out, group);
        if self.presence_broadcast.is_empty() {
            out.extend_from_slice(
                b"'><query xmlns='http://jabber.org/protocol/muc#owner'>\
                  <x xmlns='jabber:x:data' type='submit'/></query></iq>",
            );
            return;
        }
        out.extend_from_slice(
            b"'><query xmlns='http://jabber.org/protocol/muc#owner'>\
              <x xmlns='jabber:x:data' type='submit'>\
              <field var='FORM_TYPE' type='hidden'>\
              <value>http://jabber.org/protocol/muc#roomconfig</value></field>\
              <field var='muc#roomconfig_presencebroadcast'>",
        );
        for role in self.presence_broadcast.split(',').filter(|r| *r != "none") {
            let _ = write!(out, "<value>{role}</value>");
        }
        out.extend_from_slice(b"</field></x></query></iq>");
    }

    /// A group message carrying `probe` (its sender is the group).
    pub fn write_groupchat(&self, out: &mut Vec<u8>, group: u32, probe: &Probe) {
        out.extend_from_slice(b"<message to='");
        self.write_room(out, group);
        out.extend_from_slice(b"' type='groupchat'><body>");
        write_body(out, probe);
        out.extend_from_slice(b"</body></message>");
    }

    /// Leaves `group` (XEP-0045 7.14).
    pub fn write_leave(&self, out: &mut Vec<u8>, group: u32, index: u32) {
        out.extend_from_slice(b"<presence type='unavailable' to='");
        self.write_occupant(out, group, index);
        out.extend_from_slice(b"'/>");
    }
}

/// The client index a user name numbers: `user17` -> 16 (user names count from 1).
fn number_after(text: &str, prefix: &str) -> Option<u32> {
    u32::try_from(digits_after(text, prefix)?.checked_sub(1)?).ok()
}

/// The decimal number right after `prefix` (ASCII case ignored) that ends `text`, written
/// as we write numbers: no sign, no leading zero.
fn digits_after(text: &str, prefix: &str) -> Option<u64> {
    let head = text.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let digits = &text[prefix.len()..];
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !(digits.starts_with('0') && digits.len() > 1);
    canonical.then(|| digits.parse().ok()).flatten()
}

/// A status change: `<presence><status>BODY</status></presence>`.
pub fn write_status(out: &mut Vec<u8>, probe: &Probe) {
    out.extend_from_slice(b"<presence><status>");
    write_body(out, probe);
    out.extend_from_slice(b"</status></presence>");
}

/// The initial presence (also how a client becomes available again after setup).
pub const AVAILABLE: &[u8] = b"<presence/>";
/// How a client leaves the available state after setup.
pub const UNAVAILABLE: &[u8] = b"<presence type='unavailable'/>";

fn write_body(out: &mut Vec<u8>, probe: &Probe) {
    let _ = write!(
        out,
        "{TAG} r={} s={} q={} i={} a={}",
        probe.run, probe.sender, probe.seq, probe.intended_ns, probe.actual_ns
    );
}

/// Parses a status or group body written by this module; `None` for anything else.
pub fn parse_body(text: &str) -> Option<Probe> {
    crate::wire::parse_tagged(text, TAG)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: Names<'static> = Names {
        user_prefix: "user",
        domain: "example.test",
        muc_domain: "groups.example.test",
        presence_broadcast: "",
    };

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    const PROBE: Probe = Probe {
        run: 7,
        sender: 3,
        seq: 2,
        intended_ns: 1_000,
        actual_ns: 1_500,
    };

    #[test]
    fn stanzas_are_written_as_the_protocol_says() {
        assert_eq!(
            text(|o| NAMES.write_subscription(o, 8, "subscribe")),
            "<presence to='user9@example.test' type='subscribe'/>"
        );
        assert_eq!(
            text(|o| NAMES.write_join(o, 3, 16)),
            "<presence to='g3@groups.example.test/user17'><x \
             xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"
        );
        assert_eq!(
            text(|o| NAMES.write_instant_room(o, 3)),
            "<iq type='set' id='cfg-3' to='g3@groups.example.test'><query \
             xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' \
             type='submit'/></query></iq>"
        );
        assert_eq!(
            text(|o| NAMES.write_leave(o, 3, 16)),
            "<presence type='unavailable' to='g3@groups.example.test/user17'/>"
        );
        assert_eq!(
            text(|o| write_status(o, &PROBE)),
            "<presence><status>rk r=7 s=3 q=2 i=1000 a=1500</status></presence>"
        );
        let message = text(|o| NAMES.write_groupchat(o, 3, &PROBE));
        assert_eq!(
            message,
            "<message to='g3@groups.example.test' type='groupchat'><body>rk r=7 s=3 q=2 \
             i=1000 a=1500</body></message>"
        );
    }

    #[test]
    fn bodies_round_trip_and_foreign_ones_are_refused() {
        let body = text(|o| write_body(o, &PROBE));
        assert_eq!(parse_body(&body), Some(PROBE));
        assert_eq!(parse_body(&format!(" {body} ")), Some(PROBE));
        for foreign in [
            "rl r=7 s=3 q=2 i=1000 a=1500",
            "rk r=7 s=3 q=2 i=1000",
            "rk r=7 s=3 q=2 i=1000 a=1500 x",
            "rk 3 2 1000",
            "away",
            "",
        ] {
            assert_eq!(parse_body(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn jids_map_back_to_clients_and_groups() {
        assert_eq!(NAMES.user_of("user17@example.test/load"), Some(16));
        assert_eq!(NAMES.user_of("USER17@Example.Test"), Some(16));
        for foreign in [
            "user0@example.test",
            "user017@example.test",
            "user17@other.test",
            "bob@example.test",
            "user@example.test",
            "user99999999999@example.test",
            "example.test",
        ] {
            assert_eq!(NAMES.user_of(foreign), None, "{foreign}");
        }
        assert_eq!(
            NAMES.room_of("g3@groups.example.test/user17"),
            Some((3, "user17"))
        );
        assert_eq!(NAMES.room_of("g0@groups.example.test"), Some((0, "")));
        assert_eq!(NAMES.room_of("g3@example.test/user17"), None);
        assert_eq!(NAMES.room_of("x3@groups.example.test"), None);
        assert_eq!(NAMES.room_of("g03@groups.example.test"), None);
        assert_eq!(NAMES.room_of("g-3@groups.example.test"), None);
        assert!(NAMES.is_nick_of("user17", 16));
        assert!(!NAMES.is_nick_of("user17", 17));
        let no_muc = Names {
            muc_domain: "",
            presence_broadcast: "",
            ..NAMES
        };
        assert_eq!(no_muc.room_of("g3@groups.example.test"), None);
    }

    #[test]
    fn the_instant_room_form_can_limit_presence_broadcast() {
        let moderated = Names {
            presence_broadcast: "moderator",
            ..NAMES
        };
        let mut out = Vec::new();
        moderated.write_instant_room(&mut out, 2);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "<field var='muc#roomconfig_presencebroadcast'><value>moderator</value></field>"
            ),
            "{text}"
        );
        assert!(text.contains("muc#roomconfig</value>"), "FORM_TYPE: {text}");
        let silent = Names {
            presence_broadcast: "none",
            ..NAMES
        };
        let mut out = Vec::new();
        silent.write_instant_room(&mut out, 2);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("<field var='muc#roomconfig_presencebroadcast'></field>"),
            "{text}"
        );
    }
}
