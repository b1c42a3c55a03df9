//! JIDs (RFC 7622): `[local@]domain[/resource]`, stored once in canonical form.
//!
//! What it does: splits (the resource starts at the first `/`, the local part ends at the first
//! `@` before it), enforces the length limits (each part 1..=1023 bytes of UTF-8, measured after
//! folding), refuses forbidden characters, folds the local part and the domain to lowercase
//! (Unicode `to_lowercase`) and drops one trailing `.` of the domain. The resource is kept as
//! written.
//!
//! What it does not do: this is a *simplified PRECIS*: case folding only, no NFC
//! normalisation, no width mapping, no IDNA (A-label/U-label) conversion of the domain, no
//! bidi rule. Two JIDs that full PRECIS would consider equal can therefore differ here.
//!
//! Invariants: `full` is the canonical form and `parse(full)` gives the same `Jid` back;
//! `full[..domain_end]` is the bare JID and `full[domain_start..domain_end]` the domain, so
//! every accessor is a slice (no allocation). Size: 24 bytes on 64-bit targets.

use std::fmt;
use std::str::FromStr;

/// Longest local part, domain or resource, in bytes (RFC 7622 section 3.1).
pub const MAX_PART_BYTES: usize = 1023;

/// A parsed, canonical JID.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    full: Box<str>,
    /// 0 when there is no local part, else one past the `@`.
    domain_start: u16,
    /// Index of the `/` before the resource, or `full.len()`.
    domain_end: u16,
}

/// Why a string is not a valid JID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JidError {
    Empty,
    LocalTooLong,
    DomainTooLong,
    ResourceTooLong,
    EmptyLocal,
    EmptyDomain,
    EmptyResource,
    ForbiddenChar(char),
}

impl Jid {
    /// Parses and canonicalises a JID.
    pub fn parse(s: &str) -> Result<Jid, JidError> {
        if s.is_empty() {
            return Err(JidError::Empty);
        }
        let (bare, resource) = match s.split_once('/') {
            Some((bare, resource)) => (bare, Some(resource)),
            None => (s, None),
        };
        let (local, domain) = match bare.split_once('@') {
            Some((local, domain)) => (Some(local), domain),
            None => (None, bare),
        };
        Jid::new(local, domain, resource)
    }

    /// Builds a JID from its parts, with the same checks and folding as [`Jid::parse`].
    pub fn new(local: Option<&str>, domain: &str, resource: Option<&str>) -> Result<Jid, JidError> {
        let mut full = String::with_capacity(
            local.map_or(0, |l| l.len() + 1) + domain.len() + resource.map_or(0, |r| r.len() + 1),
        );
        if let Some(local) = local {
            push_local(local, &mut full)?;
            full.push('@');
        }
        let domain_start = full.len();
        push_domain(domain, &mut full)?;
        let domain_end = full.len();
        if let Some(resource) = resource {
            check_resource(resource)?;
            full.push('/');
            full.push_str(resource);
        }
        Ok(Jid {
            full: full.into_boxed_str(),
            // Both offsets are at most 2 * MAX_PART_BYTES + 1, far below u16::MAX.
            domain_start: domain_start as u16,
            domain_end: domain_end as u16,
        })
    }

    /// The local part, if any.
    pub fn local(&self) -> Option<&str> {
        let start = usize::from(self.domain_start);
        (start > 0).then(|| &self.full[..start - 1])
    }

    /// The domain part.
    pub fn domain(&self) -> &str {
        &self.full[usize::from(self.domain_start)..usize::from(self.domain_end)]
    }

    /// The resource part, if any.
    pub fn resource(&self) -> Option<&str> {
        self.full.get(usize::from(self.domain_end) + 1..)
    }

    /// The canonical full form.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// `local@domain` (or `domain`): a prefix of [`Jid::as_str`], no allocation.
    pub fn bare_str(&self) -> &str {
        &self.full[..usize::from(self.domain_end)]
    }

    /// This JID without its resource.
    pub fn to_bare(&self) -> Jid {
        Jid {
            full: self.bare_str().into(),
            ..*self
        }
    }

    /// This JID's bare part with `resource` (checked like a parsed resource).
    pub fn with_resource(&self, resource: &str) -> Result<Jid, JidError> {
        check_resource(resource)?;
        let mut full = String::with_capacity(self.domain_end as usize + 1 + resource.len());
        full.push_str(self.bare_str());
        full.push('/');
        full.push_str(resource);
        Ok(Jid {
            full: full.into_boxed_str(),
            ..*self
        })
    }

    /// Whether there is no resource.
    pub fn is_bare(&self) -> bool {
        usize::from(self.domain_end) == self.full.len()
    }

    /// Heap bytes owned (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.full.len()
    }
}

/// Folding can shrink text at most threefold (e.g. U+212A KELVIN SIGN, 3 bytes, to `k`), so a
/// longer input cannot fit; refusing it early bounds the work on hostile input.
const MAX_RAW_PART_BYTES: usize = 3 * MAX_PART_BYTES;

fn push_local(local: &str, out: &mut String) -> Result<(), JidError> {
    if local.is_empty() {
        return Err(JidError::EmptyLocal);
    }
    if local.len() > MAX_RAW_PART_BYTES {
        return Err(JidError::LocalTooLong);
    }
    let start = out.len();
    for c in local.chars() {
        if c.is_whitespace() || c.is_control() || "\"&'/:<>@".contains(c) {
            return Err(JidError::ForbiddenChar(c));
        }
        out.extend(c.to_lowercase());
    }
    if out.len() - start > MAX_PART_BYTES {
        return Err(JidError::LocalTooLong);
    }
    Ok(())
}

fn push_domain(domain: &str, out: &mut String) -> Result<(), JidError> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() {
        return Err(JidError::EmptyDomain);
    }
    // A second trailing dot would be dropped on re-parse, breaking the round trip; an empty
    // final label is not a valid domain anyway.
    if domain.ends_with('.') {
        return Err(JidError::ForbiddenChar('.'));
    }
    if domain.len() > MAX_RAW_PART_BYTES {
        return Err(JidError::DomainTooLong);
    }
    let start = out.len();
    for c in domain.chars() {
        if c.is_whitespace() || c.is_control() || "\"&'/<>@".contains(c) {
            return Err(JidError::ForbiddenChar(c));
        }
        out.extend(c.to_lowercase());
    }
    if out.len() - start > MAX_PART_BYTES {
        return Err(JidError::DomainTooLong);
    }
    Ok(())
}

fn check_resource(resource: &str) -> Result<(), JidError> {
    if resource.is_empty() {
        return Err(JidError::EmptyResource);
    }
    if resource.len() > MAX_PART_BYTES {
        return Err(JidError::ResourceTooLong);
    }
    match resource.chars().find(|c| c.is_control()) {
        Some(c) => Err(JidError::ForbiddenChar(c)),
        None => Ok(()),
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jid({:?})", &*self.full)
    }
}

impl FromStr for Jid {
    type Err = JidError;

    fn from_str(s: &str) -> Result<Jid, JidError> {
        Jid::parse(s)
    }
}

impl fmt::Display for JidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JidError::Empty => f.write_str("empty JID"),
            JidError::LocalTooLong => f.write_str("local part longer than 1023 bytes"),
            JidError::DomainTooLong => f.write_str("domain longer than 1023 bytes"),
            JidError::ResourceTooLong => f.write_str("resource longer than 1023 bytes"),
            JidError::EmptyLocal => f.write_str("empty local part"),
            JidError::EmptyDomain => f.write_str("empty domain"),
            JidError::EmptyResource => f.write_str("empty resource"),
            JidError::ForbiddenChar(c) => write!(f, "forbidden character {c:?}"),
        }
    }
}

impl std::error::Error for JidError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    #[test]
    fn parts_and_folding() {
        let j = jid("Juliet@Example.COM./Balcony Phone");
        assert_eq!(j.as_str(), "juliet@example.com/Balcony Phone");
        assert_eq!(
            (j.local(), j.domain(), j.resource()),
            (Some("juliet"), "example.com", Some("Balcony Phone"))
        );
        assert_eq!(j.bare_str(), "juliet@example.com");
        assert!(!j.is_bare());
        let d = jid("ExAmple.com");
        assert_eq!(
            (d.local(), d.domain(), d.resource()),
            (None, "example.com", None)
        );
        assert!(d.is_bare());
        assert_eq!(jid("ÉLODIE@x").local(), Some("élodie"));
        assert_eq!(jid("a@b/c/d@e").resource(), Some("c/d@e"));
        assert_eq!(jid("x/a@b").domain(), "x");
        assert_eq!(jid("x/a@b").local(), None);
    }

    #[test]
    fn derived_jids() {
        let j = jid("a@b/r");
        assert_eq!(j.to_bare(), jid("a@b"));
        assert_eq!(j.with_resource("s").unwrap(), jid("a@b/s"));
        assert_eq!(jid("b").with_resource("s").unwrap().as_str(), "b/s");
        assert_eq!(j.with_resource(""), Err(JidError::EmptyResource));
        assert_eq!(jid("A@B/R"), jid("a@b/R"));
        assert_ne!(jid("a@b/R"), jid("a@b/r"));
        assert_eq!(Jid::new(Some("A"), "B.", Some("r")).unwrap(), j);
        assert_eq!("a@b/r".parse::<Jid>().unwrap(), j);
        assert_eq!(format!("{j} {j:?}"), "a@b/r Jid(\"a@b/r\")");
        assert_eq!(j.heap_bytes(), 5);
    }

    #[test]
    fn errors() {
        assert_eq!(Jid::parse(""), Err(JidError::Empty));
        assert_eq!(Jid::parse("@b"), Err(JidError::EmptyLocal));
        assert_eq!(Jid::parse("a@"), Err(JidError::EmptyDomain));
        assert_eq!(Jid::parse("a@."), Err(JidError::EmptyDomain));
        assert_eq!(Jid::parse("/r"), Err(JidError::EmptyDomain));
        assert_eq!(Jid::parse("a@b/"), Err(JidError::EmptyResource));
        assert_eq!(Jid::parse("a b@c"), Err(JidError::ForbiddenChar(' ')));
        assert_eq!(Jid::parse("a:b@c"), Err(JidError::ForbiddenChar(':')));
        assert_eq!(Jid::parse("a\"@c"), Err(JidError::ForbiddenChar('"')));
        assert_eq!(Jid::parse("a@b@c"), Err(JidError::ForbiddenChar('@')));
        assert_eq!(Jid::parse("a@b../r"), Err(JidError::ForbiddenChar('.')));
        assert_eq!(
            Jid::parse("a@b/\u{7}"),
            Err(JidError::ForbiddenChar('\u{7}'))
        );
        assert_eq!(Jid::parse("a@b c"), Err(JidError::ForbiddenChar(' ')));
        let long = "x".repeat(1024);
        assert_eq!(
            Jid::parse(&format!("{long}@b")),
            Err(JidError::LocalTooLong)
        );
        assert_eq!(Jid::parse(&long), Err(JidError::DomainTooLong));
        assert_eq!(
            Jid::parse(&format!("a@b/{long}")),
            Err(JidError::ResourceTooLong)
        );
        let max = "x".repeat(1023);
        assert!(Jid::parse(&format!("{max}@{max}/{max}")).is_ok());
        // Folding is measured after lowercasing: 1023 Kelvin signs fold to 1023 bytes.
        assert!(Jid::parse(&format!("{}@b", "\u{212A}".repeat(1023))).is_ok());
        assert!(!JidError::ForbiddenChar('x').to_string().is_empty());
    }

    #[test]
    fn small() {
        assert_eq!(std::mem::size_of::<Jid>(), 24);
    }
}
