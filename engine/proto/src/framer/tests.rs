//! Unit tests for the framer: every frame kind, every error cause, limits and memory.

use super::*;

const HEADER: &str = "<stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";

#[derive(Debug, PartialEq, Eq)]
enum Owned {
    Open(String),
    Stanza(String),
    Close,
}

fn limits(max: usize) -> FramerLimits {
    FramerLimits {
        max_stanza_bytes: max,
    }
}

/// Feeds `chunks` in order, collecting frames until the first error.
fn run(framer: &mut Framer, chunks: &[&[u8]]) -> (Vec<Owned>, Option<FrameError>) {
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
    let mut out = Vec::new();
    for chunk in chunks {
        let fed = crate::fuzzing::each_frame(framer, chunk, |frame| {
            out.push(match frame {
                Frame::StreamOpen(b) => Owned::Open(text(b)),
                Frame::Stanza(b) => Owned::Stanza(text(b)),
                Frame::StreamClose => Owned::Close,
            })
        });
        if let Err(e) = fed {
            return (out, Some(e));
        }
    }
    (out, None)
}

fn one_shot(s: &str) -> (Vec<Owned>, Option<FrameError>) {
    run(&mut Framer::new(limits(1 << 16)), &[s.as_bytes()])
}

fn err_of(body: &str) -> FrameError {
    let (_, err) = one_shot(&format!("{HEADER}{body}"));
    err.unwrap_or_else(|| panic!("no error for {body:?}"))
}

fn stanzas(body: &str) -> Vec<Owned> {
    let (frames, err) = one_shot(&format!("{HEADER}{body}"));
    assert_eq!(err, None, "{body:?}");
    frames.into_iter().skip(1).collect()
}

fn st(s: &str) -> Owned {
    Owned::Stanza(s.to_string())
}

#[test]
fn header_stanzas_and_close() {
    let text = format!(
        "<?xml version='1.0' encoding='UTF-8'?>\n{HEADER} \n<message to='a@b'><body>hi</body>\
         </message>\n\n<presence/></stream:stream>  "
    );
    let (frames, err) = one_shot(&text);
    assert_eq!(err, None);
    assert_eq!(
        frames,
        [
            Owned::Open(HEADER.to_string()),
            st("<message to='a@b'><body>hi</body></message>"),
            st("<presence/>"),
            Owned::Close,
        ]
    );
}

#[test]
fn every_split_point_matches_one_shot() {
    let text = format!(
        "<?xml version='1.0'?>{HEADER}<iq type='get' id='a>/b'><query xmlns='x'><item \
         name=\"&lt;&#x41;&#66;\"/><item>t&amp;t<![CDATA[<not> a ]] tag]]></item></query></iq> \
         <message><body>\u{e9}\u{1F600}</body></message></stream:stream>"
    );
    let whole = one_shot(&text);
    assert_eq!(whole.1, None);
    assert_eq!(whole.0.len(), 4);
    let bytes = text.as_bytes();
    for split in 0..=bytes.len() {
        let mut framer = Framer::new(limits(1 << 16));
        let got = run(&mut framer, &[&bytes[..split], &bytes[split..]]);
        assert_eq!(got, whole, "split at {split}");
    }
    // One byte at a time.
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(run(&mut Framer::new(limits(1 << 16)), &singles), whole);
}

#[test]
fn whitespace_keepalives_and_attribute_values() {
    let got = stanzas(" \r\n\t <a x='>' y=\"/>\" z = 'q\"'/> <b  >x > y</b >");
    assert_eq!(
        got,
        [st("<a x='>' y=\"/>\" z = 'q\"'/>"), st("<b  >x > y</b >")]
    );
}

#[test]
fn cdata_and_nesting() {
    let got = stanzas("<a><b><c><d/><![CDATA[ ]]]<e>]]></c></b><b/></a>");
    assert_eq!(
        got,
        [st("<a><b><c><d/><![CDATA[ ]]]<e>]]></c></b><b/></a>")]
    );
}

#[test]
fn references_accepted() {
    let body = "<a v='&apos;&quot;&#9;'>&lt;&gt;&amp;&#x10FFFF;&#xE000;&#32;</a>";
    assert_eq!(stanzas(body), [st(body)]);
}

#[test]
fn not_well_formed_causes() {
    let cases = [
        ("hello", "text at stream level"),
        ("<a><b></a>", "end tag does not match start tag"),
        ("<ab></a>", "end tag does not match start tag"),
        ("<a></ab>", "end tag does not match start tag"),
        ("<a><b><c></b></c></a>", "end tag does not match start tag"),
        ("<a x='1'y='2'/>", "missing whitespace between attributes"),
        ("<a x=1/>", "unquoted attribute value"),
        ("<a x='<'/>", "'<' in attribute value"),
        ("<a x/>", "malformed attribute"),
        ("<1a/>", "invalid name"),
        ("<a / >", "malformed tag"),
        ("<a></ a>", "malformed end tag"),
        ("<a>\u{1}</a>", "forbidden control character"),
        ("<a x='\u{0}'/>", "forbidden control character"),
        ("<a>&#0;</a>", "invalid character reference"),
        ("<a>&#xD800;</a>", "invalid character reference"),
        ("<a>&#xFFFE;</a>", "invalid character reference"),
        ("<a>&#x;</a>", "invalid character reference"),
        ("<a>&#X41;</a>", "invalid character reference"),
        ("<a>&#12a;</a>", "invalid character reference"),
        ("<a>a & b</a>", "'&' not starting a reference"),
        ("<a>&;</a>", "'&' not starting a reference"),
        ("<a>x]]>y</a>", "']]>' in text"),
        ("<![CDATA[x]]>", "CDATA at stream level"),
        ("<a><!x></a>", "malformed markup declaration"),
        ("<a><![CDAT[x]]></a>", "malformed markup declaration"),
        ("<a>\u{FFFF}</a>", "character not allowed in XML"),
        ("</stream:stream>x", "data after the stream close"),
    ];
    for (body, detail) in cases {
        assert_eq!(err_of(body), FrameError::NotWellFormed(detail), "{body:?}");
    }
    let mut bad_utf8 = HEADER.as_bytes().to_vec();
    bad_utf8.extend_from_slice(b"<a>\xff\xfe</a>");
    let (_, err) = run(&mut Framer::new(limits(1 << 16)), &[&bad_utf8]);
    assert_eq!(err, Some(FrameError::NotWellFormed("invalid UTF-8")));
    assert_eq!(
        one_shot("junk").1,
        Some(FrameError::NotWellFormed("text before the stream header"))
    );
    assert_eq!(
        one_shot("<s/>").1,
        Some(FrameError::NotWellFormed("empty stream element"))
    );
}

#[test]
fn restricted_xml_causes() {
    let rx = FrameError::RestrictedXml;
    assert_eq!(err_of("<!-- hi -->"), rx("comment"));
    assert_eq!(err_of("<a><!-- hi --></a>"), rx("comment"));
    assert_eq!(err_of("<?pi x?>"), rx("processing instruction"));
    assert_eq!(err_of("<a><?pi?></a>"), rx("processing instruction"));
    assert_eq!(
        err_of("<?xml version='1.0'?>"),
        rx("processing instruction")
    );
    assert_eq!(
        err_of("<a><!ENTITY x 'y'></a>"),
        rx("DTD or markup declaration")
    );
    assert_eq!(err_of("<a>&nbsp;</a>"), rx("undeclared entity"));
    assert_eq!(err_of("<a x='&quote;'/>"), rx("undeclared entity"));
    assert_eq!(
        one_shot("<!DOCTYPE x>").1,
        Some(rx("DTD or markup declaration"))
    );
    assert_eq!(
        one_shot("<?xml-stylesheet?><s>").1,
        Some(rx("processing instruction"))
    );
    let twice = format!("<?xml version='1.0'?><?xml version='1.0'?>{HEADER}");
    assert_eq!(one_shot(&twice).1, Some(rx("processing instruction")));
}

#[test]
fn conditions() {
    assert_eq!(
        FrameError::NotWellFormed("x").condition(),
        "not-well-formed"
    );
    assert_eq!(FrameError::RestrictedXml("x").condition(), "restricted-xml");
    assert_eq!(FrameError::TooLarge.condition(), "policy-violation");
    assert_eq!(FrameError::RestrictedXml("comment").detail(), "comment");
    assert!(!FrameError::TooLarge.detail().is_empty());
}

#[test]
fn size_limits() {
    let head = "<s>";
    // Exactly at the limit is accepted, one byte more is not.
    let ok = run(&mut Framer::new(limits(10)), &[b"<s><a>123</a>"]);
    assert_eq!(
        ok,
        (vec![Owned::Open("<s>".into()), st("<a>123</a>")], None)
    );
    let too = run(&mut Framer::new(limits(10)), &[b"<s><a>1234</a>"]);
    assert_eq!(too.1, Some(FrameError::TooLarge));
    // An incomplete stanza is refused as soon as it passes the limit, in any chunking.
    let mut framer = Framer::new(limits(100));
    assert_eq!(run(&mut framer, &[head.as_bytes(), b"<a>"]).1, None);
    for _ in 0..10 {
        let (_, err) = run(&mut framer, &[&[b'x'; 9]]);
        if err.is_some() {
            assert_eq!(err, Some(FrameError::TooLarge));
            return assert!(framer.buffered_bytes() <= 100);
        }
        assert!(framer.buffered_bytes() <= 100);
    }
    assert_eq!(
        run(&mut framer, &[&[b'x'; 9]]).1,
        Some(FrameError::TooLarge)
    );
}

#[test]
fn header_and_markup_limits() {
    let long_header = format!("<s a='{}'>", "x".repeat(50));
    assert_eq!(
        run(&mut Framer::new(limits(40)), &[long_header.as_bytes()]).1,
        Some(FrameError::TooLarge)
    );
    let long_decl = format!("<?xml v='{}'?><s>", "x".repeat(50));
    assert_eq!(
        run(&mut Framer::new(limits(40)), &[long_decl.as_bytes()]).1,
        Some(FrameError::TooLarge)
    );
    let long_close = format!("<s></{}>", "x".repeat(50));
    assert_eq!(
        run(&mut Framer::new(limits(40)), &[long_close.as_bytes()]).1,
        Some(FrameError::TooLarge)
    );
    let tiny = run(&mut Framer::new(limits(1)), &[b"<", b"s>"]);
    assert_eq!(tiny.1, Some(FrameError::TooLarge));
}

#[test]
fn dead_after_error() {
    let mut framer = Framer::new(limits(1 << 16));
    let (frames, first) = run(&mut framer, &[b"<s><!-- c -->"]);
    assert_eq!(frames.len(), 1);
    let first = first.unwrap();
    let mut more: &[u8] = b"<message/>";
    assert_eq!(framer.next_frame(&mut more), Err(first));
    framer.reset();
    let mut more: &[u8] = b"<s>";
    assert_eq!(framer.next_frame(&mut more), Err(first));
    assert_eq!(framer.heap_bytes(), 0);
}

#[test]
fn reset_expects_a_new_header() {
    let mut framer = Framer::new(limits(1 << 16));
    let (frames, err) = run(&mut framer, &[b"<?xml version='1.0'?><s><auth>x</auth>"]);
    assert_eq!((frames.len(), err), (2, None));
    framer.reset();
    let (frames, err) = run(&mut framer, &[b"<?xml version='1.0'?><s2 a='b'><bind/>"]);
    assert_eq!(err, None);
    assert_eq!(frames, [Owned::Open("<s2 a='b'>".into()), st("<bind/>")]);
}

#[test]
fn zero_copy_and_buffering() {
    let mut framer = Framer::new(limits(1 << 16));
    let data = b"<s><a>xy</a><b>";
    let mut input: &[u8] = data;
    assert!(matches!(
        framer.next_frame(&mut input),
        Ok(Some(Frame::StreamOpen(_)))
    ));
    let mut input: &[u8] = &data[3..];
    let Ok(Some(Frame::Stanza(bytes))) = framer.next_frame(&mut input) else {
        panic!()
    };
    assert_eq!(
        bytes.as_ptr(),
        data[3..].as_ptr(),
        "a frame inside one input is not copied"
    );
    let mut input: &[u8] = &data[12..];
    assert_eq!(framer.next_frame(&mut input), Ok(None));
    assert_eq!(framer.buffered_bytes(), 3);
    assert!(framer.heap_bytes() >= 3);
    let mut input: &[u8] = b"z</b>";
    assert_eq!(
        framer.next_frame(&mut input),
        Ok(Some(Frame::Stanza(b"<b>z</b>")))
    );
    assert_eq!(framer.buffered_bytes(), 0);
    let mut input: &[u8] = b" ";
    assert_eq!(framer.next_frame(&mut input), Ok(None));
    assert_eq!(framer.heap_bytes(), 0, "idle framer owns no heap memory");
}

#[test]
fn deep_nesting_frees_its_stack_when_idle() {
    let body = format!("{}{}", "<e>".repeat(40), "</e>".repeat(40));
    let mut framer = Framer::new(limits(1 << 16));
    let (frames, err) = run(&mut framer, &[HEADER.as_bytes(), body.as_bytes()]);
    assert_eq!((frames.len(), err), (2, None));
    assert_eq!(framer.heap_bytes(), 0);
}

#[test]
fn framer_is_small() {
    // 8 (the held box) + 3 x 4 (max, child, aux) + 1 (st) + 2 (flags) + 1 (fault) = 24 on
    // 64-bit targets (measured: exactly 24), and `Option<Framer>` the same (a niche in `st`).
    assert_eq!(
        std::mem::size_of::<Option<Framer>>(),
        std::mem::size_of::<Framer>()
    );
    assert!(
        std::mem::size_of::<Framer>() <= 24,
        "{}",
        std::mem::size_of::<Framer>()
    );
}

#[test]
fn namespace_faults_close_the_stream_as_not_well_formed() {
    let cases = [
        ("<a x='1' x='2'/>", "duplicate attribute"),
        (
            "<a xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>",
            "duplicate attribute",
        ),
        (
            "<a><p:b/></a>",
            "namespace prefix not declared in the stanza",
        ),
        ("<a xmlns:p=''/>", "illegal namespace declaration"),
        (
            "<a xmlns='http://www.w3.org/2000/xmlns/'/>",
            "illegal namespace declaration",
        ),
        ("<a xml:a:b='1'/>", "invalid name"),
        ("<\u{e9}\u{D7}/>", "invalid name"),
    ];
    for (body, detail) in cases {
        let err = err_of(body);
        assert_eq!(err, FrameError::NotWellFormed(detail), "{body:?}");
        assert_eq!(err.condition(), "not-well-formed");
    }
    // A prefix the client's stream header declares is not in scope for a forwarded stanza.
    let header = "<stream:stream xmlns:stream='s' xmlns:p='u'>";
    let (frames, err) = one_shot(&format!("{header}<p:a/>"));
    assert_eq!(frames.len(), 1);
    assert_eq!(
        err,
        Some(FrameError::NotWellFormed(
            "namespace prefix not declared in the stanza"
        ))
    );
}

#[test]
fn the_screen_and_the_exact_check_agree_at_every_split() {
    // Vouched for in one read; split inside a tag, the same frames come from the exact check.
    let body = "<message to='a' xml:lang='en' xmlns='jabber:client' id='1'><b x='1' y='2'/>\
                <c xmlns:p='u' p:x='1'/></message><m a='1' a='1'/>";
    let text = format!("{HEADER}{body}");
    let whole = one_shot(&text);
    assert_eq!(whole.0.len(), 2, "the header and the message");
    assert_eq!(
        whole.1,
        Some(FrameError::NotWellFormed("duplicate attribute"))
    );
    let bytes = text.as_bytes();
    for split in 0..=bytes.len() {
        let got = run(
            &mut Framer::new(limits(1 << 16)),
            &[&bytes[..split], &bytes[split..]],
        );
        assert_eq!(got, whole, "split at {split}");
    }
}

#[test]
fn stream_headers_are_checked_too() {
    assert_eq!(one_shot(&format!("{HEADER}<a/>")).1, None);
    assert_eq!(
        one_shot("<stream:stream><a/>").1,
        None,
        "stream is predeclared"
    );
    assert_eq!(
        one_shot("<s a='1' a='2'>").1,
        Some(FrameError::NotWellFormed("duplicate attribute"))
    );
    assert_eq!(
        one_shot("<x:stream>").1,
        Some(FrameError::NotWellFormed(
            "namespace prefix not declared in the stanza"
        ))
    );
}
