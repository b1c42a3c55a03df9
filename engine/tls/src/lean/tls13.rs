//! TLS 1.3 record protection on lean keys (RFC 8446 section 5.2), as rustls' ring module.

use ring::aead::{self, Aad};
use rustls::crypto::cipher::{
    make_tls13_aad, AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, MessageDecrypter,
    MessageEncrypter, OutboundOpaqueMessage, OutboundPlainMessage, PrefixedPayload,
    Tls13AeadAlgorithm, UnsupportedOperationError,
};
use rustls::{ConnectionTrafficSecrets, ContentType, Error, ProtocolVersion};

use super::{nonce, secrets, LeanKey, TAG_BYTES};

pub(super) struct Tls13Lean(pub(super) &'static aead::Algorithm);

impl Tls13AeadAlgorithm for Tls13Lean {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        Box::new(Tls13Seal {
            key: LeanKey::new(self.0, &key),
            iv,
        })
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(Tls13Open {
            key: LeanKey::new(self.0, &key),
            iv,
        })
    }

    fn key_len(&self) -> usize {
        self.0.key_len()
    }

    fn extract_keys(
        &self,
        key: AeadKey,
        iv: Iv,
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Ok(secrets(self.0, key, iv))
    }
}

struct Tls13Seal {
    key: LeanKey,
    iv: Iv,
}

impl MessageEncrypter for Tls13Seal {
    fn encrypt(
        &mut self,
        msg: OutboundPlainMessage<'_>,
        seq: u64,
    ) -> Result<OutboundOpaqueMessage, Error> {
        let total_len = self.encrypted_payload_len(msg.payload.len());
        let mut payload = PrefixedPayload::with_capacity(total_len);
        payload.extend_from_chunks(&msg.payload);
        payload.extend_from_slice(&msg.typ.to_array());
        let aad = Aad::from(make_tls13_aad(total_len));
        self.key
            .ring()
            .seal_in_place_append_tag(nonce(&self.iv, seq), aad, &mut payload)
            .map_err(|_| Error::EncryptError)?;
        // TLS 1.3 records all carry legacy version 0x0303 (RFC 8446 section 5.1).
        Ok(OutboundOpaqueMessage::new(
            ContentType::ApplicationData,
            ProtocolVersion::TLSv1_2,
            payload,
        ))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + TAG_BYTES
    }
}

struct Tls13Open {
    key: LeanKey,
    iv: Iv,
}

impl MessageDecrypter for Tls13Open {
    fn decrypt<'a>(
        &mut self,
        mut msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, Error> {
        let payload = &mut msg.payload;
        if payload.len() < TAG_BYTES {
            return Err(Error::DecryptError);
        }
        let aad = Aad::from(make_tls13_aad(payload.len()));
        let plain_len = self
            .key
            .ring()
            .open_in_place(nonce(&self.iv, seq), aad, payload)
            .map_err(|_| Error::DecryptError)?
            .len();
        payload.truncate(plain_len);
        // Checks the size and strips the padding and inner content type.
        msg.into_tls13_unpadded_message()
    }
}
