//! The sync agent (work in progress).
fn main() {}
