//! What the property tests' generators share.

/// `text` without any `]]>` (CDATA content): removing one can join its neighbours into another
/// ("]]]>>" becomes "]]>"), so until none is left.
pub fn without_cdata_end(mut text: String) -> String {
    while text.contains("]]>") {
        text = text.replace("]]>", "");
    }
    text
}
