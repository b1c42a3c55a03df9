//! WebSocket frames (RFC 6455 section 5): an incremental decoder and the frame writers.
//!
//! What it does: [`Decoder::feed`] takes wire bytes in any split and reports, through
//! [`Frames`], the payload of text messages (unmasked, in order, as it arrives: a message is
//! never buffered here), their ends, pings and closes; it answers nothing itself. The writers
//! append one frame to a caller-owned buffer, masked or not.
//!
//! What it does not do: XMPP (see `server`, `client`), UTF-8 validation (the XML parser above
//! refuses bad UTF-8 as `not-well-formed`), extensions (no `permessage-deflate`: RSV bits set
//! are a protocol error), binary messages (refused: RFC 7395 3.2 says text only).
//!
//! Invariants: the peer's frames are masked exactly when it is a client (`Role`); a data
//! message's total payload never exceeds `max_message_bytes` (checked from each frame's
//! declared length, before its payload is read); a control frame is at most 125 bytes and
//! unfragmented; the decoder holds at most 14 header bytes and one control payload (freed
//! after it), so an idle decoder owns no heap.

/// Which side we are: the peer's frames must be masked exactly when we are the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// Close codes (RFC 6455 7.4.1).
pub mod code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
}

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
const MAX_CONTROL_BYTES: usize = 125;
const MAX_HEADER_BYTES: usize = 14;

/// Why the peer's bytes were refused: the close code to send and a short reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameError {
    pub code: u16,
    pub reason: &'static str,
}

impl FrameError {
    const fn new(code: u16, reason: &'static str) -> FrameError {
        FrameError { code, reason }
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebSocket close {}: {}", self.code, self.reason)
    }
}

impl std::error::Error for FrameError {}

/// What a decoded stream of frames says.
pub trait Frames {
    /// More payload of the current text message: `masked` XOR the mask starting at byte
    /// `mask_offset` of the 4-byte key (`None`: not masked). Use [`unmask_into`].
    fn text(&mut self, masked: &[u8], mask: Option<([u8; 4], usize)>);
    /// The current text message is complete.
    fn end_of_message(&mut self);
    fn ping(&mut self, payload: &[u8]);
    /// The peer closed, with its status code if it gave one.
    fn close(&mut self, code: Option<u16>);
}

/// Appends `masked`, unmasked, to `out`.
pub fn unmask_into(out: &mut Vec<u8>, masked: &[u8], mask: Option<([u8; 4], usize)>) {
    let start = out.len();
    out.extend_from_slice(masked);
    if let Some((key, offset)) = mask {
        for (i, byte) in out[start..].iter_mut().enumerate() {
            *byte ^= key[(offset + i) & 3];
        }
    }
}

/// The frame being read.
#[derive(Clone, Copy, Debug, Default)]
struct Current {
    opcode: u8,
    fin: bool,
    mask: Option<[u8; 4]>,
    /// Payload bytes of this frame still to come.
    remaining: u64,
    /// Payload bytes of this frame already passed on (the mask's offset).
    done: u64,
}

/// An incremental frame decoder for one conn.
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    max_message_bytes: usize,
    header: [u8; MAX_HEADER_BYTES],
    header_len: u8,
    /// Some while a frame's payload is being read.
    current: Option<Current>,
    /// A text message is open (its first frame came, its FIN not yet).
    in_message: bool,
    message_bytes: u64,
    /// The payload of a control frame being read (never more than 125 bytes).
    control: Vec<u8>,
    /// A close frame was received: nothing after it is read.
    closed: bool,
}

impl Decoder {
    pub fn new(role: Role, max_message_bytes: usize) -> Decoder {
        Decoder {
            role,
            max_message_bytes,
            header: [0; MAX_HEADER_BYTES],
            header_len: 0,
            current: None,
            in_message: false,
            message_bytes: 0,
            control: Vec::new(),
            closed: false,
        }
    }

    /// Heap bytes held (a control payload being read, else none).
    pub fn heap_bytes(&self) -> usize {
        self.control.capacity()
    }

    /// Whether the peer sent a close frame.
    pub fn peer_closed(&self) -> bool {
        self.closed
    }

    /// Decodes `input`, reporting to `frames`. After an error nothing more may be fed.
    pub fn feed(&mut self, mut input: &[u8], frames: &mut impl Frames) -> Result<(), FrameError> {
        while !input.is_empty() && !self.closed {
            match self.current {
                None => input = self.read_header(input)?,
                Some(current) => input = self.read_payload(current, input, frames),
            }
            if let Some(current) = self.current {
                if current.remaining == 0 {
                    self.finish_frame(current, frames)?;
                }
            }
        }
        Ok(())
    }

    /// Takes header bytes from `input`; starts the frame once the header is whole.
    fn read_header<'a>(&mut self, input: &'a [u8]) -> Result<&'a [u8], FrameError> {
        let have = usize::from(self.header_len);
        let take = (MAX_HEADER_BYTES - have).min(input.len());
        self.header[have..have + take].copy_from_slice(&input[..take]);
        let buffered = have + take;
        let Some((current, header_bytes)) = parse_header(&self.header[..buffered])? else {
            self.header_len = buffered as u8;
            return Ok(&input[take..]);
        };
        self.header_len = 0;
        self.start_frame(current)?;
        // Bytes of `input` past the header belong to the payload.
        Ok(&input[header_bytes - have..])
    }

    fn start_frame(&mut self, current: Current) -> Result<(), FrameError> {
        match (self.role, current.mask.is_some()) {
            (Role::Server, false) => {
                return Err(FrameError::new(
                    code::PROTOCOL_ERROR,
                    "client frame not masked",
                ))
            }
            (Role::Client, true) => {
                return Err(FrameError::new(code::PROTOCOL_ERROR, "server frame masked"))
            }
            _ => {}
        }
        match current.opcode {
            OP_TEXT | OP_CONTINUATION => self.start_data(current)?,
            OP_BINARY => {
                return Err(FrameError::new(
                    code::UNSUPPORTED_DATA,
                    "binary message: XMPP over WebSocket is text only (RFC 7395)",
                ))
            }
            OP_CLOSE | OP_PING | OP_PONG => {
                if !current.fin || current.remaining > MAX_CONTROL_BYTES as u64 {
                    return Err(FrameError::new(
                        code::PROTOCOL_ERROR,
                        "control frame fragmented or over 125 bytes",
                    ));
                }
            }
            _ => return Err(FrameError::new(code::PROTOCOL_ERROR, "unknown opcode")),
        }
        self.current = Some(current);
        Ok(())
    }

    fn start_data(&mut self, current: Current) -> Result<(), FrameError> {
        let continuation = current.opcode == OP_CONTINUATION;
        if continuation != self.in_message {
            let reason = if continuation {
                "continuation frame without a message"
            } else {
                "new message before the last one ended"
            };
            return Err(FrameError::new(code::PROTOCOL_ERROR, reason));
        }
        self.in_message = true;
        self.message_bytes = self.message_bytes.saturating_add(current.remaining);
        if self.message_bytes > self.max_message_bytes as u64 {
            return Err(FrameError::new(
                code::MESSAGE_TOO_BIG,
                "message over the server's maximum stanza size",
            ));
        }
        Ok(())
    }

    fn read_payload<'a>(
        &mut self,
        mut current: Current,
        input: &'a [u8],
        frames: &mut impl Frames,
    ) -> &'a [u8] {
        let take = usize::try_from(current.remaining)
            .unwrap_or(usize::MAX)
            .min(input.len());
        let (chunk, rest) = input.split_at(take);
        let mask = current.mask.map(|key| (key, (current.done & 3) as usize));
        if current.opcode == OP_TEXT || current.opcode == OP_CONTINUATION {
            frames.text(chunk, mask);
        } else {
            unmask_into(&mut self.control, chunk, mask);
        }
        current.remaining -= take as u64;
        current.done += take as u64;
        self.current = Some(current);
        rest
    }

    fn finish_frame(
        &mut self,
        current: Current,
        frames: &mut impl Frames,
    ) -> Result<(), FrameError> {
        self.current = None;
        match current.opcode {
            OP_TEXT | OP_CONTINUATION if current.fin => {
                self.in_message = false;
                self.message_bytes = 0;
                frames.end_of_message();
            }
            OP_TEXT | OP_CONTINUATION => {}
            OP_PING => frames.ping(&self.control),
            OP_CLOSE => {
                let code = match self.control.as_slice() {
                    [] => None,
                    [hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
                    [_] => {
                        return Err(FrameError::new(
                            code::PROTOCOL_ERROR,
                            "one-byte close payload",
                        ))
                    }
                };
                self.closed = true;
                frames.close(code);
            }
            _ => {} // pong: nothing to do
        }
        self.control = Vec::new();
        Ok(())
    }
}

/// Parses a frame header from the start of `bytes`: the frame and the header's length, or
/// `None` if more bytes are needed.
fn parse_header(bytes: &[u8]) -> Result<Option<(Current, usize)>, FrameError> {
    let [first, second, ..] = *bytes else {
        return Ok(None);
    };
    if first & 0x70 != 0 {
        return Err(FrameError::new(
            code::PROTOCOL_ERROR,
            "reserved bits set (no extension was negotiated)",
        ));
    }
    let masked = second & 0x80 != 0;
    let (length, mut at) = match second & 0x7F {
        126 => match bytes.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match bytes.get(2..10) {
            Some(b) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(b);
                (u64::from_be_bytes(be), 10)
            }
            None => return Ok(None),
        },
        small => (u64::from(small), 2),
    };
    let mask = if masked {
        let Some(key) = bytes.get(at..at + 4) else {
            return Ok(None);
        };
        at += 4;
        Some([key[0], key[1], key[2], key[3]])
    } else {
        None
    };
    let current = Current {
        opcode: first & 0x0F,
        fin: first & 0x80 != 0,
        mask,
        remaining: length,
        done: 0,
    };
    Ok(Some((current, at)))
}

/// Appends one frame's header: FIN set, `opcode`, `length` payload bytes, masked with `mask`.
fn write_header(out: &mut Vec<u8>, opcode: u8, length: usize, mask: Option<[u8; 4]>) {
    out.push(0x80 | opcode);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match length {
        0..=125 => out.push(mask_bit | length as u8),
        126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(length as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(length as u64).to_be_bytes());
        }
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

/// Appends a frame of `parts` (concatenated) as one payload, masked with `mask` if given.
pub fn write_frame(out: &mut Vec<u8>, opcode: Opcode, parts: &[&[u8]], mask: Option<[u8; 4]>) {
    let length = parts.iter().map(|p| p.len()).sum();
    write_header(out, opcode as u8, length, mask);
    let start = out.len();
    for part in parts {
        out.extend_from_slice(part);
    }
    if let Some(key) = mask {
        for (i, byte) in out[start..].iter_mut().enumerate() {
            *byte ^= key[i & 3];
        }
    }
}

/// Appends a close frame with `code` and `reason` (cut to fit the 125-byte control limit).
pub fn write_close(out: &mut Vec<u8>, code: u16, reason: &str, mask: Option<[u8; 4]>) {
    let reason = &reason.as_bytes()[..reason.len().min(MAX_CONTROL_BYTES - 2)];
    write_frame(out, Opcode::Close, &[&code.to_be_bytes(), reason], mask);
}

/// The opcodes we write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    Text = OP_TEXT,
    Close = OP_CLOSE,
    Ping = OP_PING,
    Pong = OP_PONG,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug, PartialEq)]
    struct Seen {
        text: Vec<u8>,
        messages: Vec<Vec<u8>>,
        pings: Vec<Vec<u8>>,
        close: Option<Option<u16>>,
    }

    impl Frames for Seen {
        fn text(&mut self, masked: &[u8], mask: Option<([u8; 4], usize)>) {
            unmask_into(&mut self.text, masked, mask);
        }
        fn end_of_message(&mut self) {
            self.messages.push(std::mem::take(&mut self.text));
        }
        fn ping(&mut self, payload: &[u8]) {
            self.pings.push(payload.to_vec());
        }
        fn close(&mut self, code: Option<u16>) {
            self.close = Some(code);
        }
    }

    const KEY: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

    fn masked_text(text: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, Opcode::Text, &[text], Some(KEY));
        out
    }

    fn decode(role: Role, wire: &[u8], max: usize) -> (Seen, Result<(), FrameError>) {
        let mut seen = Seen::default();
        let mut decoder = Decoder::new(role, max);
        let result = decoder.feed(wire, &mut seen);
        (seen, result)
    }

    #[test]
    fn masked_messages_decode_in_any_split() {
        let mut wire = masked_text(b"<message/>");
        write_frame(&mut wire, Opcode::Ping, &[b"hi"], Some(KEY));
        let long = vec![b'x'; 70_000];
        wire.extend(masked_text(&long));
        write_close(&mut wire, code::NORMAL, "bye", Some(KEY));
        for split in [1usize, 2, 3, 7, 13, 4096] {
            let mut seen = Seen::default();
            let mut decoder = Decoder::new(Role::Server, 100_000);
            for chunk in wire.chunks(split) {
                decoder.feed(chunk, &mut seen).unwrap();
            }
            assert_eq!(seen.messages, vec![b"<message/>".to_vec(), long.clone()]);
            assert_eq!(seen.pings, vec![b"hi".to_vec()]);
            assert_eq!(seen.close, Some(Some(code::NORMAL)));
            assert_eq!(decoder.heap_bytes(), 0);
        }
    }

    #[test]
    fn fragments_make_one_message_and_controls_may_interleave() {
        let mut wire = Vec::new();
        // Text, not FIN.
        let mut first = Vec::new();
        write_frame(&mut first, Opcode::Text, &[b"<mess"], Some(KEY));
        first[0] &= 0x7F;
        wire.extend(first);
        write_frame(&mut wire, Opcode::Ping, &[b""], Some(KEY));
        // Continuation, FIN.
        let mut last = Vec::new();
        write_frame(&mut last, Opcode::Text, &[b"age/>"], Some(KEY));
        last[0] = 0x80;
        wire.extend(last);
        let (seen, result) = decode(Role::Server, &wire, 100);
        result.unwrap();
        assert_eq!(seen.messages, vec![b"<message/>".to_vec()]);
        assert_eq!(seen.pings.len(), 1);
    }

    #[test]
    fn bad_frames_get_their_close_codes() {
        let mut unmasked = Vec::new();
        write_frame(&mut unmasked, Opcode::Text, &[b"<a/>"], None);
        let (_, result) = decode(Role::Server, &unmasked, 100);
        assert_eq!(result.unwrap_err().code, code::PROTOCOL_ERROR);

        let mut binary = masked_text(b"<a/>");
        binary[0] = 0x82;
        let (_, result) = decode(Role::Server, &binary, 100);
        assert_eq!(result.unwrap_err().code, code::UNSUPPORTED_DATA);

        let big = masked_text(&[b'x'; 101]);
        // Refused from the header alone: no payload byte needed.
        let (seen, result) = decode(Role::Server, &big[..8], 100);
        assert_eq!(result.unwrap_err().code, code::MESSAGE_TOO_BIG);
        assert!(seen.text.is_empty());

        let mut reserved = masked_text(b"<a/>");
        reserved[0] |= 0x40;
        let (_, result) = decode(Role::Server, &reserved, 100);
        assert_eq!(result.unwrap_err().code, code::PROTOCOL_ERROR);

        let mut masked_from_server = masked_text(b"<a/>");
        masked_from_server[0] = 0x81;
        let (_, result) = decode(Role::Client, &masked_from_server, 100);
        assert_eq!(result.unwrap_err().code, code::PROTOCOL_ERROR);

        let mut orphan = masked_text(b"<a/>");
        orphan[0] = 0x80;
        let (_, result) = decode(Role::Server, &orphan, 100);
        assert_eq!(result.unwrap_err().code, code::PROTOCOL_ERROR);
    }

    #[test]
    fn fragments_count_toward_the_message_limit() {
        let mut wire = Vec::new();
        let mut first = Vec::new();
        write_frame(&mut first, Opcode::Text, &[&[b'a'; 60]], Some(KEY));
        first[0] &= 0x7F;
        wire.extend(first);
        let mut last = Vec::new();
        write_frame(&mut last, Opcode::Text, &[&[b'b'; 60]], Some(KEY));
        last[0] = 0x80;
        wire.extend(last);
        let (_, result) = decode(Role::Server, &wire, 100);
        assert_eq!(result.unwrap_err().code, code::MESSAGE_TOO_BIG);
    }

    #[test]
    fn server_frames_are_unmasked_with_the_shortest_length() {
        for (len, header) in [(5usize, 2usize), (126, 4), (70_000, 10)] {
            let mut out = Vec::new();
            write_frame(&mut out, Opcode::Text, &[&vec![b'z'; len]], None);
            assert_eq!(out.len(), header + len);
            assert_eq!(out[0], 0x81);
            assert_eq!(out[1] & 0x80, 0);
            let (seen, result) = decode(Role::Client, &out, 100_000);
            result.unwrap();
            assert_eq!(seen.messages[0].len(), len);
        }
    }
}
