//! rookery-upload: sans-IO XEP-0363 (HTTP File Upload) slots, shared by the router, which
//! hands slots out, and the HTTP server (rookery-http), which honours them.
//!
//! What it does:
//! - [`SlotIssuer::issue`]: checks a slot request against the [`SlotPolicy`] (file name,
//!   content type, max file size, open slots, per-user quota through the caller's
//!   [`QuotaLedger`]) and returns a signed [`Slot`] (PUT and GET URLs) or a [`SlotRefusal`]
//!   whose [`StanzaError`] is the XEP's error (`<file-too-large>`, `resource-constraint`,
//!   `not-acceptable`, `bad-request`).
//! - [`SlotSigner::verify_put`]: checks a PUT path's HMAC-SHA256 signature and expiry with
//!   the server secret alone, so the HTTP side needs no state shared with the router; the
//!   grant names the token, owner, exact size and content type. URL format: `signer.rs`.
//! - [`UsageEvent`]s (file stored, file removed) from the HTTP side keep a ledger current;
//!   [`MemoryLedger`] is an in-memory ledger.
//!
//! What it does not do: I/O, clocks or randomness (times and random bytes are inputs, so the
//! router and the simulator stay deterministic), XML parsing of the request, disco replies.
//! Dependencies: RustCrypto `hmac`/`sha2`, `base64`, and `rookery-proto` for `Jid` (which has
//! no dependencies): no tokio, no HTTP stack.
//!
//! How the router uses it:
//! 1. Once: `SlotIssuer::new(policy, SlotSigner::new(&secret, public_url)?)`, the secret
//!    being the HTTP server's (`<data-dir>/upload/secret`).
//! 2. Disco of `upload.<domain>`: identity `store`/`file`, feature [`NS_HTTP_UPLOAD`], form
//!    field `max-file-size` = `policy().max_file_bytes`.
//! 3. Per `<request filename size content-type>`: `issue(&mut ledger, &from, &request, now,
//!    random)` on the requester's home shard; reply `<slot><put url><header/>*</put><get
//!    url/></slot>` (URLs XML-escaped) or `refusal.stanza_error().to_xml()`.
//! 4. Feed the HTTP server's `UsageEvent`s to the ledger on the owner's home shard.

#![forbid(unsafe_code)]

mod claims;
pub mod content_type;
pub mod filename;
mod issue;
pub mod percent;
mod quota;
mod refusal;
mod signer;
mod token;

pub use content_type::{ContentTypes, DEFAULT_CONTENT_TYPE};
pub use filename::{FilenameError, MAX_FILENAME_BYTES};
pub use issue::{SlotIssuer, SlotPolicy, SlotRequest};
pub use quota::{MemoryLedger, QuotaLedger, Reservation, Usage, UsageEvent};
pub use refusal::{Condition, ErrorType, SlotRefusal, StanzaError, NS_HTTP_UPLOAD};
pub use signer::{
    parse_download_path, DownloadPath, PutError, PutGrant, SignerError, Slot, SlotHeader,
    SlotSigner, DOWNLOAD_PATH, MIN_SECRET_BYTES, UPLOAD_PATH,
};
pub use token::{SlotToken, TOKEN_BYTES};
