//! Session tests: every command in every state, replayed as transcripts through the
//! fake driver of `testing.rs`.

mod authorization;
mod pipelining;
mod transaction;
mod update;
