//! The grammar's internals, for the fuzz targets in `fuzz/` and nothing else.
//!
//! The command parser and the line framing are crate-private: the session is the API. The
//! fuzz targets need them alone, to check properties the session hides (parse, render,
//! parse again gives the same command; framing does not depend on how input is chunked),
//! so this module wraps them thinly. It is `#[doc(hidden)]` and not part of the API.

use crate::command::{Command, Verb, split_keyword};
use crate::error::ProtoError;
use crate::line::LineReader;

/// A parsed core command, comparable and renderable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCommand(Command);

impl ParsedCommand {
    /// The canonical command line, without CRLF.
    pub fn render(&self) -> String {
        self.0.render()
    }
}

/// Parses one command line (without its CRLF) as the session does: the keyword, then the
/// arguments for that verb, whatever the state. `None` when the keyword is not a core
/// verb (the session would look for an extension verb).
pub fn parse_command(line: &str) -> Option<Result<ParsedCommand, ProtoError>> {
    let (keyword, rest) = split_keyword(line);
    let verb = Verb::parse(keyword)?;
    Some(Command::parse(verb, rest).map(ParsedCommand))
}

/// The session's input framing: bytes in, command lines out.
#[derive(Debug, Default)]
pub struct Lines(LineReader);

impl Lines {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.0.push(bytes);
    }

    /// The next complete command line (at most 255 octets with CRLF), decoded and checked.
    pub fn next_line(&mut self) -> Option<Result<String, ProtoError>> {
        self.0.next_line()
    }

    /// The next complete line of at most `limit` octets, CRLF included.
    pub fn next_line_within(&mut self, limit: usize) -> Option<Result<String, ProtoError>> {
        self.0.next_line_within(limit)
    }

    /// Whether unread input is buffered.
    pub fn has_input(&self) -> bool {
        self.0.has_input()
    }
}
