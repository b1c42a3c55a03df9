//! TLS 1.2 record protection on lean keys: AES-GCM (RFC 5288, with rustls' nonce
//! construction) and ChaCha20-Poly1305 (RFC 7905), as rustls' ring module.

use ring::aead::{self, Aad, CHACHA20_POLY1305};
use rustls::crypto::cipher::{
    make_tls12_aad, AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, KeyBlockShape,
    MessageDecrypter, MessageEncrypter, OutboundOpaqueMessage, OutboundPlainMessage,
    PrefixedPayload, Tls12AeadAlgorithm, UnsupportedOperationError,
};
use rustls::{ConnectionTrafficSecrets, Error};

use super::{nonce, secrets, LeanKey, GCM_EXPLICIT_NONCE_BYTES, MAX_FRAGMENT_BYTES, TAG_BYTES};

/// TLS 1.2 AES-GCM: a 4-byte salt from the key block and an 8-byte explicit nonce carried in
/// each record; rustls makes the explicit part from the key block xor the sequence number.
pub(super) struct Tls12Gcm(pub(super) &'static aead::Algorithm);

/// rustls' TLS 1.2 GCM nonce base: salt (4) || explicit part of the key block (8).
fn gcm_iv(salt: &[u8], explicit: &[u8]) -> Iv {
    let mut iv = [0u8; 12];
    // Lengths are the key_block_shape below (4 and 8), which rustls follows.
    iv[..4].copy_from_slice(&salt[..4]);
    iv[4..].copy_from_slice(&explicit[..GCM_EXPLICIT_NONCE_BYTES]);
    Iv::new(iv)
}

impl Tls12AeadAlgorithm for Tls12Gcm {
    fn encrypter(&self, key: AeadKey, salt: &[u8], explicit: &[u8]) -> Box<dyn MessageEncrypter> {
        Box::new(Tls12GcmSeal {
            key: LeanKey::new(self.0, &key),
            iv: gcm_iv(salt, explicit),
        })
    }

    fn decrypter(&self, key: AeadKey, salt: &[u8]) -> Box<dyn MessageDecrypter> {
        let mut salt_bytes = [0u8; 4];
        salt_bytes.copy_from_slice(&salt[..4]);
        Box::new(Tls12GcmOpen {
            key: LeanKey::new(self.0, &key),
            salt: salt_bytes,
        })
    }

    fn key_block_shape(&self) -> KeyBlockShape {
        KeyBlockShape {
            enc_key_len: self.0.key_len(),
            fixed_iv_len: 4,
            explicit_nonce_len: GCM_EXPLICIT_NONCE_BYTES,
        }
    }

    fn extract_keys(
        &self,
        key: AeadKey,
        salt: &[u8],
        explicit: &[u8],
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Ok(secrets(self.0, key, gcm_iv(salt, explicit)))
    }
}

struct Tls12GcmSeal {
    key: LeanKey,
    iv: Iv,
}

impl MessageEncrypter for Tls12GcmSeal {
    fn encrypt(
        &mut self,
        msg: OutboundPlainMessage<'_>,
        seq: u64,
    ) -> Result<OutboundOpaqueMessage, Error> {
        let total_len = self.encrypted_payload_len(msg.payload.len());
        let mut payload = PrefixedPayload::with_capacity(total_len);
        let nonce = nonce(&self.iv, seq);
        payload.extend_from_slice(&nonce.as_ref()[4..]);
        payload.extend_from_chunks(&msg.payload);
        let aad = Aad::from(make_tls12_aad(seq, msg.typ, msg.version, msg.payload.len()));
        let tag = self
            .key
            .ring()
            .seal_in_place_separate_tag(
                nonce,
                aad,
                &mut payload.as_mut()[GCM_EXPLICIT_NONCE_BYTES..],
            )
            .map_err(|_| Error::EncryptError)?;
        payload.extend_from_slice(tag.as_ref());
        Ok(OutboundOpaqueMessage::new(msg.typ, msg.version, payload))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + GCM_EXPLICIT_NONCE_BYTES + TAG_BYTES
    }
}

struct Tls12GcmOpen {
    key: LeanKey,
    salt: [u8; 4],
}

impl MessageDecrypter for Tls12GcmOpen {
    fn decrypt<'a>(
        &mut self,
        mut msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, Error> {
        let payload = &mut msg.payload;
        let Some(plain_len) = payload
            .len()
            .checked_sub(GCM_EXPLICIT_NONCE_BYTES + TAG_BYTES)
        else {
            return Err(Error::DecryptError);
        };
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&self.salt);
        nonce[4..].copy_from_slice(&payload[..GCM_EXPLICIT_NONCE_BYTES]);
        let aad = Aad::from(make_tls12_aad(seq, msg.typ, msg.version, plain_len));
        // open_within moves the plaintext to the front, over the explicit nonce.
        let opened = self
            .key
            .ring()
            .open_within(
                aead::Nonce::assume_unique_for_key(nonce),
                aad,
                payload,
                GCM_EXPLICIT_NONCE_BYTES..,
            )
            .map_err(|_| Error::DecryptError)?
            .len();
        if opened > MAX_FRAGMENT_BYTES {
            return Err(Error::PeerSentOversizedRecord);
        }
        payload.truncate(opened);
        Ok(msg.into_plain_message())
    }
}

/// TLS 1.2 ChaCha20-Poly1305 (RFC 7905): a 12-byte IV from the key block, no explicit nonce.
pub(super) struct Tls12ChaCha;

impl Tls12AeadAlgorithm for Tls12ChaCha {
    fn encrypter(&self, key: AeadKey, iv: &[u8], _explicit: &[u8]) -> Box<dyn MessageEncrypter> {
        Box::new(Tls12ChaChaSeal {
            key: LeanKey::new(&CHACHA20_POLY1305, &key),
            iv: Iv::copy(iv),
        })
    }

    fn decrypter(&self, key: AeadKey, iv: &[u8]) -> Box<dyn MessageDecrypter> {
        Box::new(Tls12ChaChaOpen {
            key: LeanKey::new(&CHACHA20_POLY1305, &key),
            iv: Iv::copy(iv),
        })
    }

    fn key_block_shape(&self) -> KeyBlockShape {
        KeyBlockShape {
            enc_key_len: CHACHA20_POLY1305.key_len(),
            fixed_iv_len: 12,
            explicit_nonce_len: 0,
        }
    }

    fn extract_keys(
        &self,
        key: AeadKey,
        iv: &[u8],
        _explicit: &[u8],
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Ok(secrets(&CHACHA20_POLY1305, key, Iv::copy(iv)))
    }
}

struct Tls12ChaChaSeal {
    key: LeanKey,
    iv: Iv,
}

impl MessageEncrypter for Tls12ChaChaSeal {
    fn encrypt(
        &mut self,
        msg: OutboundPlainMessage<'_>,
        seq: u64,
    ) -> Result<OutboundOpaqueMessage, Error> {
        let total_len = self.encrypted_payload_len(msg.payload.len());
        let mut payload = PrefixedPayload::with_capacity(total_len);
        payload.extend_from_chunks(&msg.payload);
        let aad = Aad::from(make_tls12_aad(seq, msg.typ, msg.version, msg.payload.len()));
        self.key
            .ring()
            .seal_in_place_append_tag(nonce(&self.iv, seq), aad, &mut payload)
            .map_err(|_| Error::EncryptError)?;
        Ok(OutboundOpaqueMessage::new(msg.typ, msg.version, payload))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + TAG_BYTES
    }
}

struct Tls12ChaChaOpen {
    key: LeanKey,
    iv: Iv,
}

impl MessageDecrypter for Tls12ChaChaOpen {
    fn decrypt<'a>(
        &mut self,
        mut msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, Error> {
        let payload = &mut msg.payload;
        let Some(body_len) = payload.len().checked_sub(TAG_BYTES) else {
            return Err(Error::DecryptError);
        };
        let aad = Aad::from(make_tls12_aad(seq, msg.typ, msg.version, body_len));
        let opened = self
            .key
            .ring()
            .open_in_place(nonce(&self.iv, seq), aad, payload)
            .map_err(|_| Error::DecryptError)?
            .len();
        if opened > MAX_FRAGMENT_BYTES {
            return Err(Error::PeerSentOversizedRecord);
        }
        payload.truncate(opened);
        Ok(msg.into_plain_message())
    }
}
