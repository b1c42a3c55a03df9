//! Measured heap of rustls' per-connection state, used by `TlsSession::heap_bytes`.
//!
//! What it does: names the numbers `examples/idle_memory.rs` measured (counting allocator,
//! 2,000 sessions, rustls 0.23.48 on its ring provider with ring's own record layer, SNI of
//! 17 bytes) so metrics can estimate TLS memory without an allocator hook. Re-measure and
//! update them when rustls or the config changes; `tests/heap.rs` fails when an estimate
//! drifts by more than a quarter.
//!
//! What it does not do: count anything of ours (the session counts its own buffers exactly).
//!
//! Where an idle TLS 1.3 session's rustls heap goes (measured, bytes): record keys 560 + 560
//! (ring's `LessSafeKey` is an enum sized for the expanded AES-GCM key, whatever the suite),
//! handshake deframer span vector 640 (allocated with capacity 16 when the connection is made,
//! never shrunk), state machine with key schedule 224 (TLS 1.2: 120), two `VecDeque`s of
//! rustls' chunk queues 96 + 96 (capacity kept after use), SNI copy 17, ALPN 11.

/// A session that has not processed a ClientHello yet.
pub(crate) const FRESH_HEAP_BYTES: usize = 792;

/// After the ClientHello, waiting for the client's second flight (key exchange state,
/// transcript; TLS 1.3 also its handshake keys, 2 x 560).
pub(crate) const TLS13_HANDSHAKING_HEAP_BYTES: usize = 2_684;
pub(crate) const TLS12_HANDSHAKING_HEAP_BYTES: usize = 1_420;

/// An established, idle session.
pub(crate) const TLS13_ESTABLISHED_HEAP_BYTES: usize = 2_204;
pub(crate) const TLS12_ESTABLISHED_HEAP_BYTES: usize = 2_100;

/// An established TLS 1.3 session after the hand-over to our record layer: rustls'
/// `KernelConnection` state (its key schedule, to derive the keys of a key update: 224 B),
/// heap only; the record layer's box is counted by size (`Tls13Records`, 688 B with the
/// kernel connection inline). An idle TLS 1.3 session measured 940 B of heap + 120 B inline
/// = 1,060 B (was 3,389 B with rustls' connection kept).
pub(crate) const TLS13_RECORDS_HEAP_BYTES: usize = 224;
