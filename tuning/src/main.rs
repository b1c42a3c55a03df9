//! rookery-tune (placeholder main while the library is built).
fn main() {}
