//! Logins on the cluster harness through `rookery-client` (the same client as the load
//! generator's and the simulator's), and the raw login bytes for tests that drive the router
//! by hand (wrong passwords, odd bind requests, resumption), written by the client's `wire`
//! module so the bytes are the client's.
//!
//! What it does not do: TLS. The client takes the strongest mechanism the router offers
//! (PLAIN with the token backend, SCRAM-SHA-256 with the file backend). Failures `panic!`
//! with what the server said (`try_login` returns them instead): this is test code.

use rookery_client::{token_password, wire, Client, Event, Flow, Login, Options};

use crate::cluster::{ClientId, Cluster, TEST_DOMAIN, TEST_SECRET};

/// Where a scripted login stops.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Until {
    /// SASL succeeded and the restarted stream's features are in.
    Authenticated,
    /// A resource is bound.
    Bound,
}

impl Cluster {
    /// Logs `user` in on `shard` with the token backend and binds `resource` (or a generated
    /// one); returns the client and its full JID. Panics if any step fails.
    pub fn login(&mut self, shard: u16, user: &str, resource: Option<&str>) -> (ClientId, String) {
        let client = self.connect(shard);
        let password = token_password(TEST_SECRET, user);
        let jid = self.drive_login(client, (user, &password), resource, Until::Bound);
        (client, jid.unwrap_or_else(|failure| panic!("{failure}")))
    }

    /// Logs `user` in on `shard` with `password` (any backend) and binds a generated
    /// resource: the client and its full JID, or what went wrong and what the server said.
    pub fn try_login(
        &mut self,
        shard: u16,
        user: &str,
        password: &str,
    ) -> Result<(ClientId, String), String> {
        let client = self.connect(shard);
        let jid = self.drive_login(client, (user, password), None, Until::Bound)?;
        Ok((client, jid))
    }

    /// Connects on `shard`, authenticates `user` and restarts the stream, stopping before
    /// resource binding (where a XEP-0198 `<resume/>` may come instead). Output is drained.
    pub fn authenticate(&mut self, shard: u16, user: &str) -> ClientId {
        let client = self.connect(shard);
        let password = token_password(TEST_SECRET, user);
        if let Err(failure) =
            self.drive_login(client, (user, &password), None, Until::Authenticated)
        {
            panic!("{failure}");
        }
        client
    }

    /// Runs `rookery-client` against the cluster until `until`; returns the bound JID (empty
    /// when stopping at authentication), or the failure and what the server said.
    fn drive_login(
        &mut self,
        client: ClientId,
        (user, password): (&str, &str),
        resource: Option<&str>,
        until: Until,
    ) -> Result<String, String> {
        let mut account = Login::new(TEST_DOMAIN, user, password).with_resource(resource);
        let mut xmpp: Client = Client::new(Options::default());
        let mut out = Vec::new();
        xmpp.start(TEST_DOMAIN, &mut out);
        let mut seen = String::new();
        loop {
            if out.is_empty() {
                return Err(format!("login of {user} stalled; server said: {seen}"));
            }
            self.send_bytes(client, &out, b"");
            out.clear();
            let reply = self.take_bytes(client);
            seen.push_str(&String::from_utf8_lossy(&reply));
            let mut done = None;
            let mut failed = None;
            xmpp.feed_until(&reply, &mut account, &mut out, |event, _, _| {
                match event {
                    Event::Authenticated if until == Until::Authenticated => {
                        done = Some(String::new());
                    }
                    Event::Bound { jid } => done = Some(jid.into_owned()),
                    Event::AuthFailed(_)
                    | Event::BindFailed { .. }
                    | Event::StreamError(_)
                    | Event::StreamClosed
                    | Event::ProtocolError { .. } => {
                        failed = Some(format!(
                            "login of {user} failed: {event:?}; server said: {seen}"
                        ));
                    }
                    _ => return Flow::Continue,
                }
                Flow::Stop
            });
            if let Some(failure) = failed {
                return Err(failure);
            }
            let Some(jid) = done else { continue };
            if until == Until::Authenticated {
                // The restarted stream's header is in `out`: send it, read the features.
                self.send_bytes(client, &out, b"");
                let features = self.take_output(client);
                assert!(
                    features.contains("xmpp-bind"),
                    "no bind offered: {features}"
                );
            }
            return Ok(jid);
        }
    }
}

/// The client stream header for `TEST_DOMAIN`.
pub fn client_header() -> String {
    let mut out = Vec::new();
    wire::stream_header(TEST_DOMAIN, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `<auth mechanism='PLAIN'>` with an initial response for `user`/`password` (no SASLprep:
/// tests send what they mean to, odd bytes included).
pub fn plain_auth(user: &str, password: &str) -> String {
    let mut out = Vec::new();
    wire::auth(
        "PLAIN",
        format!("\0{user}\0{password}").as_bytes(),
        &mut out,
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// A bind iq, with or without a resource.
pub fn bind_iq(id: &str, resource: Option<&str>) -> String {
    let mut out = Vec::new();
    wire::bind(id, resource, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The full JID in a bind result, if `text` holds one.
pub fn bound_jid(text: &str) -> Option<String> {
    let start = text.find("<jid>")? + "<jid>".len();
    let end = text[start..].find("</jid>")? + start;
    Some(text[start..end].to_owned())
}
