//! The central server (work in progress).
fn main() {}
