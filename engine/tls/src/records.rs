//! TLS 1.3 record protection after the handshake, with the traffic keys rustls hands over
//! (its kernel-connection API, made for kTLS), so an idle session keeps raw keys instead of
//! rustls' connection.
//!
//! Why: rustls' unbuffered connection keeps about 3.4 KB per idle session (its inline state,
//! ring's expanded keys, a handshake deframer vector it never shrinks), over the 2 KiB per
//! idle session the TLS budget allows. After the handshake a TLS 1.3 session needs only its
//! two traffic keys and sequence numbers, plus rustls' `KernelConnection` to derive the next
//! keys when the peer asks for a key update (RFC 8446 4.6.3). The AEAD is ring's (the crate
//! rustls' provider uses); what is ours is the record framing of RFC 8446 5.2: the 5-byte
//! header as additional data, the nonce (IV xor sequence number), the inner content type and
//! its zero padding. The key is expanded per call (a few hundred ns), never kept.
//!
//! What it does not do: TLS 1.2 (those sessions keep rustls' record layer), the handshake,
//! 0-RTT, or post-handshake messages other than KeyUpdate (anything else is fatal).
//!
//! Invariants: sequence numbers advance once per record in each direction and a record is
//! never protected twice under one nonce; a record that fails to open ends the session (the
//! caller sends the alert appended and closes); our own key update (past the suite's
//! confidentiality limit) is sent under the old key and everything after it under the new.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{AlertDescription, ConnectionTrafficSecrets, ExtractedSecrets};

/// TLS record header: type, legacy version, length.
const HEADER_LEN: usize = 5;
/// Largest plaintext per record (RFC 8446 5.1).
const MAX_PLAINTEXT: usize = 1 << 14;
/// Largest ciphertext length field (RFC 8446 5.2: 2^14 + 256).
const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;
const TAG_LEN: usize = 16;
const APPLICATION_DATA: u8 = 23;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const KEY_UPDATE: u8 = 24;
/// Records protected under one key before we rekey: under the lowest confidentiality limit
/// of the TLS 1.3 suites (AES-GCM: 2^24.5 records, RFC 8446 5.5).
const REKEY_AFTER_RECORDS: u64 = 1 << 24;

/// Why a record could not be opened or sealed: the alert to send, and what happened.
#[derive(Debug)]
pub(crate) struct RecordError {
    pub alert: AlertDescription,
    pub detail: &'static str,
    /// The peer caused it (bad record, alert, unsupported message) rather than our side.
    pub peer: bool,
}

fn peer_error(alert: AlertDescription, detail: &'static str) -> RecordError {
    RecordError {
        alert,
        detail,
        peer: true,
    }
}

/// One direction's key state.
struct Direction {
    seq: u64,
    secrets: ConnectionTrafficSecrets,
}

impl Direction {
    fn key_and_nonce(&self) -> Result<(LessSafeKey, Nonce), RecordError> {
        let (algorithm, key, iv) = match &self.secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv)
            }
            _ => {
                return Err(local_error(
                    "a TLS 1.3 suite this record layer does not know",
                ))
            }
        };
        let key = UnboundKey::new(algorithm, key.as_ref())
            .map_err(|_| local_error("the AEAD refused the traffic key"))?;
        let mut nonce = [0u8; aead::NONCE_LEN];
        nonce.copy_from_slice(iv.as_ref());
        for (byte, seq) in nonce[aead::NONCE_LEN - 8..]
            .iter_mut()
            .zip(self.seq.to_be_bytes())
        {
            *byte ^= seq;
        }
        Ok((LessSafeKey::new(key), Nonce::assume_unique_for_key(nonce)))
    }
}

fn local_error(detail: &'static str) -> RecordError {
    RecordError {
        alert: AlertDescription::InternalError,
        detail,
        peer: false,
    }
}

/// The record layer of an established TLS 1.3 session.
pub(crate) struct Tls13Records {
    tx: Direction,
    rx: Direction,
    kernel: KernelConnection<ServerConnectionData>,
}

/// What one `open` call saw besides application data.
#[derive(Default)]
pub(crate) struct Opened {
    pub peer_closed: bool,
    /// Bytes of the input used: whole records (after close_notify: all of it, ignored).
    pub consumed: usize,
}

impl Tls13Records {
    pub fn new(
        secrets: ExtractedSecrets,
        kernel: KernelConnection<ServerConnectionData>,
    ) -> Tls13Records {
        let ExtractedSecrets { tx, rx } = secrets;
        Tls13Records {
            tx: Direction {
                seq: tx.0,
                secrets: tx.1,
            },
            rx: Direction {
                seq: rx.0,
                secrets: rx.1,
            },
            kernel,
        }
    }

    /// Opens every complete record at the front of `incoming`, appending application data
    /// to `plaintext` and anything to send back (a key update answer) to `to_peer`; says how
    /// many bytes it used (a partial record at the end is left for the caller to keep).
    /// Stops at the peer's close_notify.
    pub fn open(
        &mut self,
        incoming: &[u8],
        plaintext: &mut Vec<u8>,
        to_peer: &mut Vec<u8>,
    ) -> Result<Opened, RecordError> {
        let mut opened = Opened::default();
        let mut at = 0;
        while let Some(header) = incoming.get(at..at + HEADER_LEN) {
            let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
            if header[0] != APPLICATION_DATA {
                return Err(peer_error(
                    AlertDescription::UnexpectedMessage,
                    "a record in the clear after the handshake",
                ));
            }
            if !(TAG_LEN + 1..=MAX_CIPHERTEXT).contains(&length) {
                return Err(peer_error(
                    AlertDescription::RecordOverflow,
                    "bad record length",
                ));
            }
            let Some(record) = incoming.get(at..at + HEADER_LEN + length) else {
                break; // the rest arrives later
            };
            let start = plaintext.len();
            plaintext.extend_from_slice(&record[HEADER_LEN..]);
            let mut aad = [0u8; HEADER_LEN];
            aad.copy_from_slice(&record[..HEADER_LEN]);
            at += HEADER_LEN + length;
            let content = match self.open_one(aad, plaintext, start) {
                Ok(content) => content,
                Err(error) => {
                    // No byte of a record that failed reaches the caller.
                    plaintext.truncate(start);
                    return Err(error);
                }
            };
            match content {
                APPLICATION_DATA => {}
                ALERT => {
                    let alert = plaintext.split_off(start);
                    if alert.len() != 2 {
                        return Err(peer_error(AlertDescription::DecodeError, "a bad alert"));
                    }
                    if alert[1] == u8::from(AlertDescription::CloseNotify) {
                        opened.peer_closed = true;
                        opened.consumed = incoming.len();
                        return Ok(opened);
                    }
                    // user_canceled is followed by close_notify; anything else is fatal.
                    if alert[1] != u8::from(AlertDescription::UserCanceled) {
                        return Err(peer_error(
                            AlertDescription::CloseNotify,
                            "the peer sent a fatal alert",
                        ));
                    }
                }
                HANDSHAKE => {
                    let message = plaintext.split_off(start);
                    self.on_handshake(&message, to_peer)?;
                }
                _ => {
                    return Err(peer_error(
                        AlertDescription::UnexpectedMessage,
                        "an unexpected content type",
                    ))
                }
            }
        }
        opened.consumed = at;
        Ok(opened)
    }

    /// Opens the record whose ciphertext is `plaintext[start..]` in place; leaves its content
    /// there and returns its type.
    fn open_one(
        &mut self,
        aad: [u8; HEADER_LEN],
        plaintext: &mut Vec<u8>,
        start: usize,
    ) -> Result<u8, RecordError> {
        let (key, nonce) = self.rx.key_and_nonce()?;
        let opened_len = key
            .open_in_place(nonce, Aad::from(aad), &mut plaintext[start..])
            .map_err(|_| peer_error(AlertDescription::BadRecordMac, "a record failed to open"))?
            .len();
        self.rx.seq += 1;
        if self.rx.seq > REKEY_AFTER_RECORDS * 2 {
            return Err(peer_error(
                AlertDescription::UnexpectedMessage,
                "the peer never updated its key",
            ));
        }
        plaintext.truncate(start + opened_len);
        // RFC 8446 5.4: the content type is the last non-zero byte; zeros after it are padding.
        let Some(last) = plaintext[start..].iter().rposition(|&b| b != 0) else {
            return Err(peer_error(
                AlertDescription::UnexpectedMessage,
                "a record with no content type",
            ));
        };
        let content = plaintext[start + last];
        plaintext.truncate(start + last);
        if last > MAX_PLAINTEXT {
            return Err(peer_error(
                AlertDescription::RecordOverflow,
                "record too long",
            ));
        }
        Ok(content)
    }

    /// A post-handshake message: only KeyUpdate (RFC 8446 4.6.3), whole in one record.
    fn on_handshake(&mut self, message: &[u8], to_peer: &mut Vec<u8>) -> Result<(), RecordError> {
        let [KEY_UPDATE, 0, 0, 1, request] = message else {
            return Err(peer_error(
                AlertDescription::UnexpectedMessage,
                "a post-handshake message other than a whole KeyUpdate",
            ));
        };
        let (seq, secrets) = self
            .kernel
            .update_rx_secret()
            .map_err(|_| local_error("rustls could not derive the next receive key"))?;
        self.rx = Direction { seq, secrets };
        match request {
            0 => Ok(()),
            1 => self.update_tx(to_peer),
            _ => Err(peer_error(
                AlertDescription::IllegalParameter,
                "bad KeyUpdate",
            )),
        }
    }

    /// Sends KeyUpdate(update_not_requested) under the current key, then switches to the next.
    fn update_tx(&mut self, to_peer: &mut Vec<u8>) -> Result<(), RecordError> {
        self.seal_record(&[KEY_UPDATE, 0, 0, 1, 0], HANDSHAKE, to_peer)?;
        let (seq, secrets) = self
            .kernel
            .update_tx_secret()
            .map_err(|_| local_error("rustls could not derive the next send key"))?;
        self.tx = Direction { seq, secrets };
        Ok(())
    }

    /// Protects `plaintext` as application data records appended to `to_peer`.
    pub fn seal(&mut self, plaintext: &[u8], to_peer: &mut Vec<u8>) -> Result<(), RecordError> {
        for chunk in plaintext.chunks(MAX_PLAINTEXT) {
            if self.tx.seq >= REKEY_AFTER_RECORDS {
                self.update_tx(to_peer)?;
            }
            self.seal_record(chunk, APPLICATION_DATA, to_peer)?;
        }
        Ok(())
    }

    /// An alert record (close_notify is a warning, anything else fatal).
    pub fn alert(&mut self, description: AlertDescription, to_peer: &mut Vec<u8>) {
        let level = if description == AlertDescription::CloseNotify {
            1
        } else {
            2
        };
        // Nothing else can be done if this fails: the caller closes the conn either way.
        let _ = self.seal_record(&[level, u8::from(description)], ALERT, to_peer);
    }

    fn seal_record(
        &mut self,
        content: &[u8],
        content_type: u8,
        to_peer: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        let (key, nonce) = self.tx.key_and_nonce()?;
        let length = content.len() + 1 + TAG_LEN;
        let header = [
            APPLICATION_DATA,
            0x03,
            0x03,
            (length >> 8) as u8,
            (length & 0xff) as u8,
        ];
        to_peer.extend_from_slice(&header);
        let start = to_peer.len();
        to_peer.extend_from_slice(content);
        to_peer.push(content_type);
        let tag = key
            .seal_in_place_separate_tag(nonce, Aad::from(header), &mut to_peer[start..])
            .map_err(|_| local_error("the AEAD refused to seal"))?;
        to_peer.extend_from_slice(tag.as_ref());
        self.tx.seq += 1;
        Ok(())
    }
}

impl std::fmt::Debug for Tls13Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls13Records")
            .field("tx_seq", &self.tx.seq)
            .field("rx_seq", &self.rx.seq)
            .finish_non_exhaustive()
    }
}
