//! The command grammar: one decoded line in, one typed [`Command`] out.
//!
//! RFC 1939 §3: "Commands in the POP3 consist of a case-insensitive keyword, possibly
//! followed by one or more arguments. [...] Keywords and arguments are each separated by
//! a single SPACE character. Keywords are three or four characters long. Each argument
//! may be up to 40 characters long." RFC 2449 §4 keeps the 40-octet argument limit.
//!
//! Parsing is two steps so that the session can check the state between them: first
//! the keyword ([`Verb`]), then the arguments for that verb. A client that sends `RETR`
//! before logging in hears "not valid in this state", which helps more than a complaint
//! about its arguments. Keywords that are not core verbs come back as `None` from
//! [`Verb::parse`]; that is where extension verbs hook in. STLS (RFC 2595 §4) and AUTH
//! (RFC 5034) are core verbs: a plugin cannot take them over.
//!
//! Runs of spaces between arguments are tolerated (some clients send a trailing space),
//! except for PASS, whose argument is the rest of the line: RFC 1939 §7 notes "Since the
//! PASS command has exactly one argument, a POP3 server may treat spaces in the argument
//! as part of the password, instead of as argument separators."

use crate::error::ProtoError;
use crate::secret::Secret;
use crate::state::{State, StateSet};

/// The longest argument, in octets (RFC 1939 §3, RFC 2449 §4).
pub(crate) const MAX_ARG: usize = 40;

/// A core command keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    User,
    Pass,
    Apop,
    Quit,
    Stat,
    List,
    Retr,
    Dele,
    Noop,
    Rset,
    Top,
    Uidl,
    Capa,
    Stls,
    Auth,
}

impl Verb {
    const ALL: [Verb; 15] = [
        Verb::User,
        Verb::Pass,
        Verb::Apop,
        Verb::Quit,
        Verb::Stat,
        Verb::List,
        Verb::Retr,
        Verb::Dele,
        Verb::Noop,
        Verb::Rset,
        Verb::Top,
        Verb::Uidl,
        Verb::Capa,
        Verb::Stls,
        Verb::Auth,
    ];

    /// The core verb for a keyword, case-insensitively.
    pub(crate) fn parse(keyword: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|verb| verb.as_str().eq_ignore_ascii_case(keyword))
    }

    /// The keyword in upper case.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::Pass => "PASS",
            Self::Apop => "APOP",
            Self::Quit => "QUIT",
            Self::Stat => "STAT",
            Self::List => "LIST",
            Self::Retr => "RETR",
            Self::Dele => "DELE",
            Self::Noop => "NOOP",
            Self::Rset => "RSET",
            Self::Top => "TOP",
            Self::Uidl => "UIDL",
            Self::Capa => "CAPA",
            Self::Stls => "STLS",
            Self::Auth => "AUTH",
        }
    }

    /// The states in which RFC 1939 (and RFC 2449 for CAPA) allow the verb.
    pub(crate) fn states(self) -> StateSet {
        match self {
            // RFC 2595 §4: "The STLS command is only permitted in AUTHORIZATION state";
            // RFC 5034 §4: "The AUTH command may only be given in the AUTHORIZATION
            // state".
            Self::User | Self::Pass | Self::Apop | Self::Stls | Self::Auth => {
                StateSet::AUTHORIZATION
            }
            Self::Quit | Self::Capa => StateSet::BOTH,
            Self::Stat
            | Self::List
            | Self::Retr
            | Self::Dele
            | Self::Noop
            | Self::Rset
            | Self::Top
            | Self::Uidl => StateSet::TRANSACTION,
        }
    }

    /// Whether the verb is allowed in `state`.
    pub(crate) fn allowed_in(self, state: State) -> bool {
        self.states().contains(state)
    }
}

/// A parsed core command. Message numbers are as sent (1-based, unchecked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    User(String),
    Pass(Secret<String>),
    Apop {
        user: String,
        digest: Secret<String>,
    },
    Quit,
    Stat,
    List(Option<u64>),
    Retr(u64),
    Dele(u64),
    Noop,
    Rset,
    Top {
        msg: u64,
        lines: u64,
    },
    Uidl(Option<u64>),
    Capa,
    Stls,
    /// `AUTH` alone lists the mechanisms; the initial response is raw base64.
    Auth {
        mechanism: Option<String>,
        initial_response: Option<String>,
    },
}

impl Command {
    /// Parses the arguments of `verb` (`rest` is everything after the keyword's space).
    pub(crate) fn parse(verb: Verb, rest: &str) -> Result<Self, ProtoError> {
        let name = verb.as_str();
        if verb == Verb::Pass {
            if rest.is_empty() {
                return Err(ProtoError::MissingArgument {
                    verb: name,
                    what: "a password",
                });
            }
            return Ok(Self::Pass(Secret::new(rest.to_owned())));
        }
        if verb == Verb::Auth {
            return crate::sasl::parse_auth(rest);
        }
        let args = split_args(rest)?;
        let command = match verb {
            Verb::User => Self::User(one(name, "a user name", &args)?.to_owned()),
            Verb::Apop => {
                let [user, digest] = exact(name, "a user name and a digest", &args)?;
                Self::Apop {
                    user: user.to_owned(),
                    digest: Secret::new(parse_digest(digest)?),
                }
            }
            Verb::Quit => none(name, &args).map(|()| Self::Quit)?,
            Verb::Stat => none(name, &args).map(|()| Self::Stat)?,
            Verb::Noop => none(name, &args).map(|()| Self::Noop)?,
            Verb::Rset => none(name, &args).map(|()| Self::Rset)?,
            Verb::Capa => none(name, &args).map(|()| Self::Capa)?,
            Verb::Stls => none(name, &args).map(|()| Self::Stls)?,
            Verb::List => Self::List(optional_msg(name, &args)?),
            Verb::Uidl => Self::Uidl(optional_msg(name, &args)?),
            Verb::Retr => Self::Retr(msg_number(one(name, "a message number", &args)?)?),
            Verb::Dele => Self::Dele(msg_number(one(name, "a message number", &args)?)?),
            Verb::Top => {
                let [msg, lines] = exact(name, "a message number and a line count", &args)?;
                Self::Top {
                    msg: msg_number(msg)?,
                    lines: line_count(lines)?,
                }
            }
            Verb::Pass | Verb::Auth => {
                return Err(ProtoError::MissingArgument {
                    verb: name,
                    what: "a password",
                });
            }
        };
        Ok(command)
    }
}

impl Command {
    /// The canonical command line (no CRLF): the upper-case keyword and the arguments
    /// as parsed, single spaces between them. Parsing it gives this command back, which
    /// the fuzz targets and property tests check; the session itself never writes
    /// commands.
    pub(crate) fn render(&self) -> String {
        let verb = |verb: Verb| verb.as_str().to_owned();
        match self {
            Self::User(user) => format!("USER {user}"),
            Self::Pass(secret) => format!("PASS {}", secret.expose()),
            Self::Apop { user, digest } => format!("APOP {user} {}", digest.expose()),
            Self::Quit => verb(Verb::Quit),
            Self::Stat => verb(Verb::Stat),
            Self::List(None) => verb(Verb::List),
            Self::List(Some(msg)) => format!("LIST {msg}"),
            Self::Retr(msg) => format!("RETR {msg}"),
            Self::Dele(msg) => format!("DELE {msg}"),
            Self::Noop => verb(Verb::Noop),
            Self::Rset => verb(Verb::Rset),
            Self::Top { msg, lines } => format!("TOP {msg} {lines}"),
            Self::Uidl(None) => verb(Verb::Uidl),
            Self::Uidl(Some(msg)) => format!("UIDL {msg}"),
            Self::Capa => verb(Verb::Capa),
            Self::Stls => verb(Verb::Stls),
            Self::Auth {
                mechanism,
                initial_response,
            } => [
                Some("AUTH"),
                mechanism.as_deref(),
                initial_response.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" "),
        }
    }
}

/// Splits a line into its keyword and the rest after the first space.
pub(crate) fn split_keyword(line: &str) -> (&str, &str) {
    line.split_once(' ').unwrap_or((line, ""))
}

/// Splits arguments on spaces and enforces the 40-octet limit.
pub(crate) fn split_args(rest: &str) -> Result<Vec<&str>, ProtoError> {
    let args: Vec<&str> = rest.split(' ').filter(|arg| !arg.is_empty()).collect();
    if args.iter().any(|arg| arg.len() > MAX_ARG) {
        return Err(ProtoError::ArgumentTooLong);
    }
    Ok(args)
}

fn none(verb: &'static str, args: &[&str]) -> Result<(), ProtoError> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(ProtoError::TooManyArguments(verb))
    }
}

fn one<'a>(
    verb: &'static str,
    what: &'static str,
    args: &[&'a str],
) -> Result<&'a str, ProtoError> {
    exact::<1>(verb, what, args).map(|[arg]| arg)
}

fn exact<'a, const N: usize>(
    verb: &'static str,
    what: &'static str,
    args: &[&'a str],
) -> Result<[&'a str; N], ProtoError> {
    if args.len() > N {
        return Err(ProtoError::TooManyArguments(verb));
    }
    <[&str; N]>::try_from(args).map_err(|_| ProtoError::MissingArgument { verb, what })
}

fn optional_msg(verb: &'static str, args: &[&str]) -> Result<Option<u64>, ProtoError> {
    match args {
        [] => Ok(None),
        [msg] => msg_number(msg).map(Some),
        _ => Err(ProtoError::TooManyArguments(verb)),
    }
}

/// A message number: unsigned decimal; too large to count means "no such message".
fn msg_number(arg: &str) -> Result<u64, ProtoError> {
    decimal(arg, "message number").map(|n| n.unwrap_or(u64::MAX))
}

/// A TOP line count: unsigned decimal; too large to count means "the whole body".
fn line_count(arg: &str) -> Result<u64, ProtoError> {
    decimal(arg, "line count").map(|n| n.unwrap_or(u64::MAX))
}

/// Parses digits only (no sign, no spaces); `Ok(None)` when it overflows u64.
fn decimal(arg: &str, what: &'static str) -> Result<Option<u64>, ProtoError> {
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProtoError::InvalidNumber {
            what,
            value: arg.to_owned(),
        });
    }
    Ok(arg.parse().ok())
}

/// RFC 1939 §7: the digest is a "16-octet value which is sent in hexadecimal format,
/// using lower-case ASCII characters"; upper case is accepted and folded.
fn parse_digest(arg: &str) -> Result<String, ProtoError> {
    if arg.len() == 32 && arg.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(arg.to_ascii_lowercase())
    } else {
        Err(ProtoError::InvalidDigest)
    }
}

#[cfg(test)]
mod tests {
    use super::{Command, Verb, split_keyword};
    use crate::error::ProtoError;

    fn parse(line: &str) -> Result<Command, ProtoError> {
        let (keyword, rest) = split_keyword(line);
        let verb =
            Verb::parse(keyword).ok_or_else(|| ProtoError::UnknownCommand(keyword.into()))?;
        Command::parse(verb, rest)
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(parse("stat"), Ok(Command::Stat));
        assert_eq!(parse("Capa"), Ok(Command::Capa));
        assert_eq!(parse("tOp 1 0"), Ok(Command::Top { msg: 1, lines: 0 }));
        assert_eq!(parse("stls"), Ok(Command::Stls));
        assert_eq!(parse("STLS x"), Err(ProtoError::TooManyArguments("STLS")));
        assert!(matches!(parse("XTLS"), Err(ProtoError::UnknownCommand(_))));
    }

    #[test]
    fn pass_takes_the_rest_of_the_line() {
        let Ok(Command::Pass(secret)) = parse("PASS my  secret ") else {
            panic!("not PASS")
        };
        assert_eq!(secret.expose(), "my  secret ");
        assert_eq!(
            parse("PASS"),
            Err(ProtoError::MissingArgument {
                verb: "PASS",
                what: "a password"
            })
        );
    }

    #[test]
    fn argument_counts() {
        assert_eq!(parse("STAT 1"), Err(ProtoError::TooManyArguments("STAT")));
        assert_eq!(parse("LIST 1 2"), Err(ProtoError::TooManyArguments("LIST")));
        assert_eq!(parse("LIST"), Ok(Command::List(None)));
        assert_eq!(parse("UIDL 3 "), Ok(Command::Uidl(Some(3))));
        assert_eq!(
            parse("RETR"),
            Err(ProtoError::MissingArgument {
                verb: "RETR",
                what: "a message number"
            })
        );
        assert_eq!(
            parse("TOP 1"),
            Err(ProtoError::MissingArgument {
                verb: "TOP",
                what: "a message number and a line count"
            })
        );
        assert_eq!(parse("USER a b"), Err(ProtoError::TooManyArguments("USER")));
        assert_eq!(
            parse(&format!("USER {}", "u".repeat(41))),
            Err(ProtoError::ArgumentTooLong)
        );
    }

    #[test]
    fn numbers_are_unsigned_decimal() {
        for bad in ["-1", "+1", "1a", "0x1", "١"] {
            assert!(
                matches!(
                    parse(&format!("RETR {bad}")),
                    Err(ProtoError::InvalidNumber { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(parse("DELE 007"), Ok(Command::Dele(7)));
        assert_eq!(
            parse("RETR 99999999999999999999999"),
            Ok(Command::Retr(u64::MAX))
        );
        assert_eq!(
            parse("TOP 1 99999999999999999999999"),
            Ok(Command::Top {
                msg: 1,
                lines: u64::MAX
            })
        );
    }

    #[test]
    fn apop_digest() {
        let Ok(Command::Apop { user, digest }) =
            parse("APOP mrose C4C9334BAC560ECC979E58001B3E22FB")
        else {
            panic!("not APOP")
        };
        assert_eq!(user, "mrose");
        assert_eq!(digest.expose(), "c4c9334bac560ecc979e58001b3e22fb");
        assert_eq!(parse("APOP mrose xyz"), Err(ProtoError::InvalidDigest));
        assert!(matches!(
            parse("APOP mrose"),
            Err(ProtoError::MissingArgument { .. })
        ));
    }
}
