//! Session tests: every command in every state, replayed as transcripts through the
//! fake driver of `testing.rs`.

mod authorization;
mod language;
mod limits;
mod pipelining;
mod properties;
mod sasl;
mod stls;
mod transaction;
mod update;
