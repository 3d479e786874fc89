//! Placeholder: the load generator is being written.

fn main() {}
