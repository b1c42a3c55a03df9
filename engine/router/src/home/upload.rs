//! The XEP-0363 upload service (`upload.<domain>`): its service discovery, and slots handed
//! out with rookery-upload on the requester's home shard, against that shard's quota ledger.
//!
//! What it does: [`UploadService`] holds the slot issuer (policy + signer, built once from
//! [`UploadConfig`]) and a [`MemoryLedger`] of the users homed on this shard: what their
//! stored files occupy (seeded at start from the HTTP server's files, `Router::seed_upload_usage`)
//! plus their open slots, kept current by the HTTP side's `UsageEvent`s (`Router::on_usage`).
//! `Router::session_to_upload` answers a bound session's stanzas to the service: disco#info
//! (identity `store`/`file`, the feature, the XEP-0128 form with `max-file-size`), an empty
//! disco#items, ping, and `<request/>` -> `<slot/>` or the XEP's error.
//!
//! What it does not do: any HTTP (rookery-http honours the slots with the same secret), read a
//! clock (now is the router's wall time, `Home::wall_ms`) or the OS random source (tokens come
//! from `Home::random`, keyed from the OS by the server).
//!
//! Invariants: every iq get/set to the service gets exactly one answer; a refused request
//! changes nothing in the ledger; a session's requests are answered on its home shard
//! (sessions are bound there), so one user's ledger lives in one place. The ledger keeps one
//! entry per user who uploaded since start (a few words plus at most
//! `max_open_slots_per_user` reservations), not per file.

use std::fmt;

use rookery_proto::element::Element;
use rookery_proto::{ns, Jid, StanzaKind, StanzaView};
use rookery_upload::{
    MemoryLedger, SignerError, Slot, SlotIssuer, SlotPolicy, SlotRefusal, SlotRequest, SlotSigner,
    SlotToken, UsageEvent, NS_HTTP_UPLOAD, TOKEN_BYTES,
};

use crate::effects::{Effects, StanzaType};
use crate::home::routing::wants_error;
use crate::replies::{self, attr, ReplyTo, StanzaError};
use crate::router::Router;

/// What the router needs to serve uploads; built by the server from its flags and the HTTP
/// server's secret.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadConfig {
    /// The service's domain, `upload.<domain>` by default (validated, lower-cased).
    pub domain: String,
    pub policy: SlotPolicy,
    /// The HTTP server's secret (`rookery_http::load_or_create_secret`).
    pub secret: Vec<u8>,
    /// How clients reach the HTTP server (`--http-public-url`).
    pub public_url: String,
}

impl UploadConfig {
    /// The slot issuer this config describes; the server calls it at start to report a bad
    /// secret or URL before any router is built.
    pub fn issuer(&self) -> Result<SlotIssuer, SignerError> {
        let signer = SlotSigner::new(&self.secret, &self.public_url)?;
        Ok(SlotIssuer::new(self.policy.clone(), signer))
    }
}

impl fmt::Debug for UploadConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret is never printed.
        f.debug_struct("UploadConfig")
            .field("domain", &self.domain)
            .field("policy", &self.policy)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// The upload service as one shard runs it.
pub(crate) struct UploadService {
    pub service: Jid,
    issuer: SlotIssuer,
    ledger: MemoryLedger,
    /// The disco#info payload (constant for the process).
    info: Box<[u8]>,
}

impl fmt::Debug for UploadService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadService")
            .field("service", &self.service)
            .field("ledger", &self.ledger)
            .finish_non_exhaustive()
    }
}

impl UploadService {
    /// # Panics
    /// If the config's domain, secret or URL is invalid (the server checks them at start).
    pub fn new(config: &UploadConfig) -> UploadService {
        let service =
            Jid::new(None, &config.domain, None).expect("UploadConfig::domain is a valid domain");
        let issuer = config
            .issuer()
            .expect("UploadConfig's secret and public URL were checked by the server");
        let info = disco_info(issuer.policy().max_file_bytes).into_boxed_slice();
        UploadService {
            service,
            issuer,
            ledger: MemoryLedger::new(),
            info,
        }
    }
}

fn disco_info(max_file_bytes: u64) -> Vec<u8> {
    format!(
        "<query xmlns='{}'><identity category='store' type='file' name='HTTP File Upload'/>\
         <feature var='{}'/><feature var='{NS_HTTP_UPLOAD}'/>\
         <x xmlns='jabber:x:data' type='result'>\
         <field var='FORM_TYPE' type='hidden'><value>{NS_HTTP_UPLOAD}</value></field>\
         <field var='max-file-size'><value>{max_file_bytes}</value></field></x></query>",
        ns::DISCO_INFO,
        ns::DISCO_INFO
    )
    .into_bytes()
}

/// The domain's disco#items payload: the group service, and the upload service if any.
pub(crate) fn domain_items(groups: &Jid, upload: Option<&Jid>) -> Box<[u8]> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"<query xmlns='http://jabber.org/protocol/disco#items'>");
    for service in std::iter::once(groups).chain(upload) {
        out.extend_from_slice(b"<item");
        attr(&mut out, "jid", service.as_str());
        out.extend_from_slice(b"/>");
    }
    out.extend_from_slice(b"</query>");
    out.into_boxed_slice()
}

/// What a stanza to the service asks.
enum Ask<'a> {
    Info,
    Items,
    Pong,
    Slot(Element<'a>),
    Refuse(StanzaError),
    Nothing,
}

/// Decides what a stanza of type `ty` to `to` asks of the service at `service`.
fn classify<'a>(service: &Jid, to: &Jid, view: &StanzaView<'a>, ty: StanzaType) -> Ask<'a> {
    let kind = view.kind();
    if kind != StanzaKind::Iq {
        let refuse = kind == StanzaKind::Message && wants_error(kind, ty);
        return if refuse {
            Ask::Refuse(StanzaError::ServiceUnavailable)
        } else {
            Ask::Nothing
        };
    }
    if ty == StanzaType::Invalid {
        return Ask::Refuse(StanzaError::BadRequest);
    }
    if !ty.is_request() {
        return Ask::Nothing;
    }
    // Only the service's own address exists: no users or resources under it.
    if to != service {
        return Ask::Refuse(StanzaError::ServiceUnavailable);
    }
    let Some(child) = view.children().next() else {
        return Ask::Refuse(StanzaError::BadRequest);
    };
    let Ok(element) = Element::parse(child.bytes) else {
        return Ask::Refuse(StanzaError::BadRequest);
    };
    let get = ty == StanzaType::Get;
    let node = element.attr("node").is_some();
    match child.xmlns {
        Some(ns::DISCO_INFO) if get && !node => Ask::Info,
        Some(ns::DISCO_ITEMS) if get && !node => Ask::Items,
        Some(ns::DISCO_INFO | ns::DISCO_ITEMS) if get => Ask::Refuse(StanzaError::ItemNotFound),
        Some(ns::PING) if get => Ask::Pong,
        Some(NS_HTTP_UPLOAD) if get && child.local_name == "request" => Ask::Slot(element),
        _ => Ask::Refuse(StanzaError::ServiceUnavailable),
    }
}

const EMPTY_ITEMS: &[u8] = b"<query xmlns='http://jabber.org/protocol/disco#items'/>";

/// The attributes of a `<request/>`, or None when `filename` or `size` is missing or `size`
/// is not a number (the router's `bad-request`; everything else is the issuer's to judge).
fn slot_request<'a>(request: &'a Element<'_>) -> Option<SlotRequest<'a>> {
    let filename = request.attr("filename")?;
    let size_bytes = request.attr("size")?.trim().parse().ok()?;
    Some(SlotRequest {
        filename,
        size_bytes,
        content_type: request.attr("content-type"),
    })
}

/// `<slot><put url><header/>*</put><get url/></slot>`.
fn slot_xml(slot: &Slot, out: &mut Vec<u8>) {
    out.extend_from_slice(b"<slot xmlns='");
    out.extend_from_slice(NS_HTTP_UPLOAD.as_bytes());
    out.extend_from_slice(b"'><put");
    attr(out, "url", &slot.put_url);
    out.push(b'>');
    for header in &slot.headers {
        out.extend_from_slice(b"<header");
        attr(out, "name", header.name);
        out.push(b'>');
        rookery_proto::writer::escape_text(&header.value, out);
        out.extend_from_slice(b"</header>");
    }
    out.extend_from_slice(b"</put><get");
    attr(out, "url", &slot.get_url);
    out.extend_from_slice(b"/></slot>");
}

/// `<iq type='error'>` carrying an `<error/>` element the issuer rendered.
fn iq_error(out: &mut Vec<u8>, reply: ReplyTo<'_>, error_xml: &str) {
    out.extend_from_slice(b"<iq type='error'");
    for (name, value) in [("id", reply.id), ("from", reply.from), ("to", reply.to)] {
        if let Some(value) = value {
            attr(out, name, value);
        }
    }
    out.push(b'>');
    out.extend_from_slice(error_xml.as_bytes());
    out.extend_from_slice(b"</iq>");
}

impl Router {
    /// A bound session's stanza to the upload service (`to` is at its domain).
    pub(crate) fn session_to_upload(
        &mut self,
        slot: u32,
        to: &Jid,
        view: &StanzaView<'_>,
        ty: StanzaType,
        fx: &mut impl Effects,
    ) {
        let Some(service) = self.home.upload.as_ref() else {
            return;
        };
        let ask = classify(&service.service, to, view, ty);
        let payload = match &ask {
            Ask::Info => service.info.to_vec(),
            Ask::Items => EMPTY_ITEMS.to_vec(),
            _ => Vec::new(),
        };
        let to_text = to.as_str();
        match ask {
            Ask::Nothing => {}
            Ask::Refuse(error) => self.reply_error(slot, view, Some(to_text), error, fx),
            Ask::Info | Ask::Items | Ask::Pong => {
                self.upload_reply(slot, view, to_text, Ok(&payload), fx);
            }
            Ask::Slot(request) => self.issue_slot(slot, to_text, view, &request, fx),
        }
    }

    fn issue_slot(
        &mut self,
        slot: u32,
        to: &str,
        view: &StanzaView<'_>,
        request: &Element<'_>,
        fx: &mut impl Effects,
    ) {
        let Some(request) = slot_request(request) else {
            self.home.stats.upload_refusals += 1;
            return self.reply_error(slot, view, Some(to), StanzaError::BadRequest, fx);
        };
        let Some(requester) = self.conns.get(slot).and_then(|c| c.jid.clone()) else {
            return;
        };
        let mut random = [0u8; TOKEN_BYTES];
        self.home.random.fill(&mut random);
        let now_unix_s = self.home.wall_ms() / 1000;
        let Some(service) = self.home.upload.as_mut() else {
            return;
        };
        let issued = service.issuer.issue(
            &mut service.ledger,
            &requester,
            &request,
            now_unix_s,
            random,
        );
        let mut payload = Vec::new();
        let answer = match &issued {
            Ok(granted) => {
                self.home.stats.upload_slots += 1;
                slot_xml(granted, &mut payload);
                Ok(payload.as_slice())
            }
            Err(refusal) => {
                self.home.stats.upload_refusals += 1;
                Err(refusal)
            }
        };
        self.upload_reply(slot, view, to, answer, fx);
    }

    /// An iq result with `payload`, or the issuer's error for `refusal`, from the service.
    fn upload_reply(
        &mut self,
        slot: u32,
        view: &StanzaView<'_>,
        from: &str,
        answer: Result<&[u8], &SlotRefusal>,
        fx: &mut impl Effects,
    ) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        let id = view.id();
        let reply = ReplyTo {
            id: id.as_deref(),
            from: Some(from),
            to: conn.jid.as_ref().map(Jid::as_str),
        };
        self.reply.clear();
        match answer {
            Ok(payload) => replies::iq_result(&mut self.reply, reply, payload),
            Err(refusal) => iq_error(&mut self.reply, reply, &refusal.stanza_error().to_xml()),
        }
        self.home.send(slot, &self.reply, fx);
    }

    /// What the HTTP server reported about a file of a user homed on this shard (stored or
    /// removed): the user's quota ledger follows. Ignored when uploads are not configured.
    pub fn on_usage(&mut self, event: &UsageEvent) {
        if let Some(service) = self.home.upload.as_mut() {
            service.ledger.apply(event);
            self.home.stats.upload_usage_events += 1;
        }
    }

    /// At start, before any request: `owner` (a bare JID homed on this shard) holds
    /// `stored_bytes` of uploaded files (the HTTP server's per-owner usage, rebuilt from its
    /// files).
    pub fn seed_upload_usage(&mut self, owner: &Jid, stored_bytes: u64) {
        if let Some(service) = self.home.upload.as_mut() {
            // A token no slot has (all zero): it only adds the bytes.
            service.ledger.apply(&UsageEvent::Stored {
                owner: owner.to_bare(),
                token: SlotToken::from_random([0; TOKEN_BYTES]),
                size_bytes: stored_bytes,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).expect("valid test JID")
    }

    #[test]
    fn disco_info_is_well_formed_and_announces_the_limit() {
        let info = String::from_utf8(disco_info(1234)).unwrap();
        let doc = roxmltree::Document::parse(&info).unwrap();
        let root = doc.root_element();
        let identity = root
            .children()
            .find(|n| n.has_tag_name("identity"))
            .unwrap();
        assert_eq!(
            (identity.attribute("category"), identity.attribute("type")),
            (Some("store"), Some("file"))
        );
        let features: Vec<_> = root
            .children()
            .filter(|n| n.has_tag_name("feature"))
            .filter_map(|n| n.attribute("var"))
            .collect();
        assert_eq!(features, [ns::DISCO_INFO, NS_HTTP_UPLOAD]);
        let size = root
            .descendants()
            .find(|n| n.attribute("var") == Some("max-file-size"))
            .and_then(|f| f.children().find(|n| n.has_tag_name("value")))
            .and_then(|v| v.text());
        assert_eq!(size, Some("1234"));
    }

    #[test]
    fn domain_items_list_the_services() {
        let groups = jid("groups.example.com");
        let upload = jid("upload.example.com");
        let items = domain_items(&groups, Some(&upload));
        let text = std::str::from_utf8(&items).unwrap();
        let doc = roxmltree::Document::parse(text).unwrap();
        let jids: Vec<_> = doc
            .root_element()
            .children()
            .filter_map(|n| n.attribute("jid"))
            .collect();
        assert_eq!(jids, ["groups.example.com", "upload.example.com"]);
        assert_eq!(
            &*domain_items(&groups, None),
            b"<query xmlns='http://jabber.org/protocol/disco#items'><item jid='groups.example.com'/></query>"
        );
    }

    #[test]
    fn requests_need_a_name_and_a_numeric_size() {
        let parse = |xml: &str| {
            let element = Element::parse(xml.as_bytes()).unwrap();
            slot_request(&element).map(|r| (r.filename.to_owned(), r.size_bytes))
        };
        let ns = NS_HTTP_UPLOAD;
        assert_eq!(
            parse(&format!(
                "<request xmlns='{ns}' filename='a b.jpg' size='12'/>"
            )),
            Some(("a b.jpg".into(), 12))
        );
        assert_eq!(parse(&format!("<request xmlns='{ns}' size='12'/>")), None);
        assert_eq!(
            parse(&format!("<request xmlns='{ns}' filename='a' size='-1'/>")),
            None
        );
        assert_eq!(
            parse(&format!("<request xmlns='{ns}' filename='a' size='x'/>")),
            None
        );
    }
}
