//! Placeholder: hsm-sim throughput benchmark (written with the hsm-sim tests).

fn main() {}
