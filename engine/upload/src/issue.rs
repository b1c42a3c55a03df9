//! Issuing a slot: policy checks, the quota, then a signed slot.
//!
//! What it does: [`SlotIssuer::issue`] checks one request against the [`SlotPolicy`] in a
//! fixed order (file name, content-type syntax, size, allowed types, open slots, quota),
//! reserves its size in the caller's [`QuotaLedger`] and returns the signed [`Slot`]; or the
//! [`SlotRefusal`] whose XEP-0363 error the router sends back.
//!
//! What it does not do: parse the `<request/>` element (the router hands over its attribute
//! values; an unparsable `size` is the router's `bad-request`), read a clock, or draw random
//! bytes: `now_unix_s` and `random` are inputs, so the router stays deterministic.
//!
//! Invariants: a refusal changes nothing in the ledger; a slot is issued only after its size
//! was reserved against the owner's bare JID.

use rookery_proto::Jid;

use crate::content_type::{self, ContentTypes, DEFAULT_CONTENT_TYPE};
use crate::filename;
use crate::quota::{QuotaLedger, Reservation};
use crate::refusal::SlotRefusal;
use crate::signer::{PutGrant, Slot, SlotSigner};
use crate::token::{SlotToken, TOKEN_BYTES};

/// The operator's limits on uploads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotPolicy {
    /// Largest file one slot may carry (announced in disco as `max-file-size`).
    pub max_file_bytes: u64,
    /// Stored plus reserved bytes one user may hold.
    pub quota_bytes_per_user: u64,
    /// How long a PUT URL stays valid.
    pub slot_ttl_s: u64,
    /// Which content types may be uploaded.
    pub content_types: ContentTypes,
    /// Slots one user may hold open (minted, not yet uploaded or expired): bounds the ledger's
    /// reservations per user, zero-byte slots included.
    pub max_open_slots_per_user: u32,
}

impl SlotPolicy {
    pub const DEFAULT_MAX_FILE_BYTES: u64 = 100 << 20;
    pub const DEFAULT_QUOTA_BYTES_PER_USER: u64 = 1 << 30;
    /// XEP-0363 section 8 recommends around 300 s.
    pub const DEFAULT_SLOT_TTL_S: u64 = 300;
    pub const DEFAULT_MAX_OPEN_SLOTS_PER_USER: u32 = 32;
}

impl Default for SlotPolicy {
    fn default() -> SlotPolicy {
        SlotPolicy {
            max_file_bytes: SlotPolicy::DEFAULT_MAX_FILE_BYTES,
            quota_bytes_per_user: SlotPolicy::DEFAULT_QUOTA_BYTES_PER_USER,
            slot_ttl_s: SlotPolicy::DEFAULT_SLOT_TTL_S,
            content_types: ContentTypes::Any,
            max_open_slots_per_user: SlotPolicy::DEFAULT_MAX_OPEN_SLOTS_PER_USER,
        }
    }
}

/// The attributes of a `<request xmlns='urn:xmpp:http:upload:0'/>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRequest<'a> {
    pub filename: &'a str,
    pub size_bytes: u64,
    /// Absent or empty means `application/octet-stream` (browsers report `""` for unknown
    /// types).
    pub content_type: Option<&'a str>,
}

/// Policy plus signer: what the upload service needs to answer slot requests.
#[derive(Clone)]
pub struct SlotIssuer {
    policy: SlotPolicy,
    signer: SlotSigner,
}

impl SlotIssuer {
    pub fn new(policy: SlotPolicy, signer: SlotSigner) -> SlotIssuer {
        SlotIssuer { policy, signer }
    }

    pub fn policy(&self) -> &SlotPolicy {
        &self.policy
    }

    pub fn signer(&self) -> &SlotSigner {
        &self.signer
    }

    /// Answers a slot request from `requester` (any JID of theirs; the bare JID owns the file)
    /// at `now_unix_s` (Unix time, seconds), naming the slot with `random` bytes.
    pub fn issue<L: QuotaLedger + ?Sized>(
        &self,
        ledger: &mut L,
        requester: &Jid,
        request: &SlotRequest<'_>,
        now_unix_s: u64,
        random: [u8; TOKEN_BYTES],
    ) -> Result<Slot, SlotRefusal> {
        let owner = requester.to_bare();
        let grant = self.check(&owner, request, now_unix_s, SlotToken::from_random(random))?;
        let usage = ledger.usage(&owner, now_unix_s);
        if usage.open_slots >= self.policy.max_open_slots_per_user {
            return Err(SlotRefusal::TooManyOpenSlots {
                max_open_slots: self.policy.max_open_slots_per_user,
            });
        }
        let used_bytes = usage.total_bytes();
        if used_bytes.saturating_add(request.size_bytes) > self.policy.quota_bytes_per_user {
            return Err(SlotRefusal::QuotaExceeded {
                quota_bytes: self.policy.quota_bytes_per_user,
                used_bytes,
                requested_bytes: request.size_bytes,
            });
        }
        let reservation = Reservation {
            token: grant.token,
            size_bytes: grant.size_bytes,
            expires_unix_s: grant.expires_unix_s,
        };
        ledger.reserve(&owner, reservation, now_unix_s);
        Ok(self.signer.sign(&grant))
    }

    /// The checks that need no ledger, in order; the grant a slot would carry.
    fn check(
        &self,
        owner: &Jid,
        request: &SlotRequest<'_>,
        now_unix_s: u64,
        token: SlotToken,
    ) -> Result<PutGrant, SlotRefusal> {
        let filename = filename::sanitize(request.filename).map_err(SlotRefusal::BadFilename)?;
        let content_type = match request.content_type {
            None | Some("") => DEFAULT_CONTENT_TYPE,
            Some(given) => content_type::check(given).ok_or(SlotRefusal::BadContentType)?,
        };
        if request.size_bytes > self.policy.max_file_bytes {
            return Err(SlotRefusal::FileTooLarge {
                max_file_bytes: self.policy.max_file_bytes,
            });
        }
        if !self.policy.content_types.allows(content_type) {
            return Err(SlotRefusal::ContentTypeNotAllowed {
                essence: content_type::essence(content_type),
            });
        }
        Ok(PutGrant {
            token,
            owner: owner.clone(),
            filename,
            size_bytes: request.size_bytes,
            content_type: content_type.to_owned(),
            expires_unix_s: now_unix_s.saturating_add(self.policy.slot_ttl_s),
        })
    }
}

#[cfg(test)]
mod tests;
