//! What the property tests' generators share: the content tree, its strategy and its writer.
//! Each test brings its own element tag (the names and attributes it generates, and how it
//! spells them).

use proptest::prelude::*;
use rookery_proto::writer::escape_text;

/// A generated piece of stanza content; `T` is the test's element tag.
#[derive(Clone, Debug)]
pub enum Node<T> {
    Elem { tag: T, kids: Vec<Node<T>> },
    Text(String),
    Cdata(String),
}

/// How a test writes its elements' tags.
pub trait Tag {
    /// The start tag without its closing `>`.
    fn open(&self, out: &mut Vec<u8>);
    /// How an element without content ends when written as an empty-element tag (`/>`), or
    /// `None` for a start and an end tag.
    fn empty_end(&self) -> Option<&'static [u8]>;
    /// The end tag.
    fn close(&self, out: &mut Vec<u8>);
}

/// Content trees up to 4 deep: leaves are text from `text` and CDATA sections from `cdata`
/// (without `]]>`), and `element` makes an element of up to 3 children.
pub fn tree<T, E>(
    text: impl Strategy<Value = String> + 'static,
    cdata: impl Strategy<Value = String> + 'static,
    element: impl Fn(BoxedStrategy<Vec<Node<T>>>) -> E + 'static,
) -> impl Strategy<Value = Node<T>>
where
    T: Clone + std::fmt::Debug + 'static,
    E: Strategy<Value = Node<T>> + 'static,
{
    let leaf = prop_oneof![
        text.prop_map(Node::Text),
        cdata.prop_map(|t| Node::Cdata(without_cdata_end(t))),
    ];
    leaf.prop_recursive(4, 24, 4, move |inner| {
        element(prop::collection::vec(inner, 0..4).boxed())
    })
}

/// Appends `node` as XML: text escaped, CDATA as a section, elements through their tag.
pub fn write<T: Tag>(node: &Node<T>, out: &mut Vec<u8>) {
    match node {
        Node::Text(t) => escape_text(t, out),
        Node::Cdata(t) => {
            out.extend_from_slice(b"<![CDATA[");
            out.extend_from_slice(t.as_bytes());
            out.extend_from_slice(b"]]>");
        }
        Node::Elem { tag, kids } => {
            tag.open(out);
            if let (true, Some(end)) = (kids.is_empty(), tag.empty_end()) {
                out.extend_from_slice(end);
                return;
            }
            out.push(b'>');
            for kid in kids {
                write(kid, out);
            }
            tag.close(out);
        }
    }
}

/// `text` without any `]]>` (CDATA content): removing one can join its neighbours into another
/// ("]]]>>" becomes "]]>"), so until none is left.
pub fn without_cdata_end(mut text: String) -> String {
    while text.contains("]]>") {
        text = text.replace("]]>", "");
    }
    text
}
