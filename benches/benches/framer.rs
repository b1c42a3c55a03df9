//! Framer + stanza view throughput on a realistic mix of ~200-byte chat stanzas.
//!
//! The input is one client stream: header, then a mix of chat messages (with receipt requests),
//! receipts, presence and pings, fed in 4 KiB reads as the io_uring provided buffers deliver
//! them (so some stanzas span two reads and take the framer's copy path). Three benches:
//! framing alone, framing + `StanzaView` (the routing fields), and framing + view + `stamp`
//! (the full per-stanza work of the routing path). Throughput is reported in bytes; divide by
//! the mean stanza size printed at start for stanzas/s.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rookery_proto::{Frame, Framer, FramerLimits, StanzaView};

const READ_BYTES: usize = 4096;
const STANZAS: usize = 5000;

fn stream() -> (Vec<u8>, usize) {
    let mut out = b"<?xml version='1.0'?><stream:stream to='example.test' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>".to_vec();
    let header = out.len();
    for i in 0..STANZAS {
        let stanza = match i % 10 {
            0..=5 => format!(
                "<message to='user{}@example.test' type='chat' id='msg-{i:08}'><body>rk1 {} {i} 1234567890123 hello, how are you doing today? are we still on for dinner at eight tonight?</body><request xmlns='urn:xmpp:receipts'/></message>",
                i % 977, i % 131
            ),
            6 | 7 => format!(
                "<message to='user{}@example.test/load' id='rcpt-{i:08}'><received xmlns='urn:xmpp:receipts' id='msg-{:08}'/></message>",
                i % 977, i.saturating_sub(3)
            ),
            8 => format!("<presence><show>away</show><status>in a meeting until {i}</status><priority>5</priority></presence>"),
            _ => format!("<iq type='get' id='ping-{i:08}' to='example.test'><ping xmlns='urn:xmpp:ping'/></iq>"),
        };
        out.extend_from_slice(stanza.as_bytes());
    }
    let mean = (out.len() - header) / STANZAS;
    (out, mean)
}

fn frame_all(input: &[u8], mut on_stanza: impl FnMut(&[u8])) -> usize {
    let mut framer = Framer::new(FramerLimits {
        max_stanza_bytes: 65_536,
    });
    let mut stanzas = 0;
    for read in input.chunks(READ_BYTES) {
        let mut pos = 0;
        loop {
            let mut rest = &read[pos..];
            let before = rest.len();
            let Some(frame) = framer.next_frame(&mut rest).expect("valid stream") else {
                break;
            };
            if let Frame::Stanza(bytes) = frame {
                on_stanza(bytes);
                stanzas += 1;
            }
            pos += before - rest.len();
        }
    }
    stanzas
}

fn benches(c: &mut Criterion) {
    let (input, mean) = stream();
    eprintln!(
        "framer bench: {} stanzas, {} bytes, mean stanza {mean} bytes",
        STANZAS,
        input.len()
    );
    let mut group = c.benchmark_group("framer");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("frame", |b| {
        b.iter(|| {
            frame_all(black_box(&input), |s| {
                black_box(s);
            })
        })
    });
    group.bench_function("frame+view", |b| {
        b.iter(|| {
            frame_all(black_box(&input), |s| {
                let view = StanzaView::parse(s).expect("valid stanza");
                black_box((view.kind(), view.to(), view.id(), view.stanza_type()));
            })
        })
    });
    let mut out = Vec::with_capacity(1024);
    group.bench_function("frame+view+stamp", |b| {
        b.iter(|| {
            frame_all(black_box(&input), |s| {
                let view = StanzaView::parse(s).expect("valid stanza");
                out.clear();
                view.stamp("sender42@example.test/load", None, &mut out);
                black_box(&out);
            })
        })
    });
    group.finish();
}

criterion_group!(framer, benches);
criterion_main!(framer);
