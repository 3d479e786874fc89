//! The session states of RFC 1939 §3.
//!
//! RFC 1939 §3: "Once the TCP connection has been opened and the POP3 server has sent
//! the greeting, the session enters the AUTHORIZATION state. In this state, the client
//! must identify itself to the POP3 server. Once the client has successfully done this,
//! the server acquires resources associated with the client's maildrop, and the session
//! enters the TRANSACTION state. In this state, the client requests actions on the part
//! of the POP3 server. When the client has issued the QUIT command, the session enters
//! the UPDATE state. In this state, the POP3 server releases any resources acquired
//! during the TRANSACTION state and says goodbye. The TCP connection is then closed."
//!
//! ```text
//!  greeting ──> AUTHORIZATION ──USER+PASS / APOP accepted──> TRANSACTION
//!                    │                                           │
//!                  QUIT                                        QUIT
//!                    │                                           v
//!                    └──────────────> Closed <──commit done── UPDATE
//! ```
//!
//! `Closed` is ours, not the RFC's: the session has asked the driver to close (QUIT,
//! autologout, too many errors) and accepts nothing more.

use std::fmt;

/// Where a session is in its life (RFC 1939 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// The client has not logged in yet.
    Authorization,
    /// The client is logged in and works on its maildrop.
    Transaction,
    /// QUIT arrived in TRANSACTION; deletions are being committed.
    Update,
    /// The session has asked the driver to close the connection.
    Closed,
}

impl State {
    /// The RFC's name for the state (`AUTHORIZATION`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorization => "AUTHORIZATION",
            Self::Transaction => "TRANSACTION",
            Self::Update => "UPDATE",
            Self::Closed => "CLOSED",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of states in which a command is valid (used by extension verbs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StateSet(u8);

impl StateSet {
    /// No state.
    pub const NONE: Self = Self(0);
    /// AUTHORIZATION only.
    pub const AUTHORIZATION: Self = Self(1);
    /// TRANSACTION only.
    pub const TRANSACTION: Self = Self(2);
    /// AUTHORIZATION and TRANSACTION, the states in which commands are read.
    pub const BOTH: Self = Self(3);

    /// Whether `state` is in the set.
    pub fn contains(self, state: State) -> bool {
        let bit = match state {
            State::Authorization => 1,
            State::Transaction => 2,
            State::Update | State::Closed => return false,
        };
        self.0 & bit != 0
    }

    /// The union of two sets.
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{State, StateSet};

    #[test]
    fn state_sets() {
        assert!(StateSet::AUTHORIZATION.contains(State::Authorization));
        assert!(!StateSet::AUTHORIZATION.contains(State::Transaction));
        assert!(
            StateSet::TRANSACTION
                .union(StateSet::AUTHORIZATION)
                .contains(State::Authorization)
        );
        assert_eq!(
            StateSet::AUTHORIZATION.union(StateSet::TRANSACTION),
            StateSet::BOTH
        );
        assert!(!StateSet::BOTH.contains(State::Update));
        assert!(!StateSet::BOTH.contains(State::Closed));
        assert!(!StateSet::NONE.contains(State::Authorization));
        assert_eq!(State::Transaction.to_string(), "TRANSACTION");
    }
}
