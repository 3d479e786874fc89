//! The session: input framing, dispatch by state, pending actions, the idle clock.
//!
//! This is the sans-I/O core (imap-next and quinn-proto style): the driver feeds bytes
//! with [`Session::enqueue_input`], pulls [`Event`]s with [`Session::next`], answers
//! the actions it was asked for, and passes the clock in. The command families live in
//! their own files: `authorization.rs` (USER, PASS, APOP), `tls.rs` (STLS), `sasl.rs`
//! (AUTH), `transaction.rs` (STAT, LIST, RETR, DELE, NOOP, RSET, TOP, UIDL), `update.rs`
//! (QUIT and the commit).
//!
//! RFC 1939 §3 on the idle clock: "A POP3 server MAY have an inactivity autologout
//! timer. Such a timer MUST be of at least 10 minutes' duration. The receipt of any
//! command from the client during that interval should suffice to reset the autologout
//! timer. When the timer expires, the session does NOT enter the UPDATE state". The RFC
//! also says the server should close "without [...] sending any response"; like Dovecot
//! we send one `-ERR` line first, which clients ignore or show to the user, and which
//! makes the reason visible in transcripts.
//!
//! Before login a second clock runs: the login timeout, counted from the start of the
//! session and never reset, so a client that trickles commands cannot hold a connection
//! slot forever (slow-loris); Dovecot's login process does the same. Bad commands are
//! counted per state: a few before login (Dovecot: 3), more after (Dovecot: 20).

use std::collections::VecDeque;
use std::mem;
use std::sync::Arc;
use std::time::Instant;

use crate::capability::{UserPolicy, capa_response};
use crate::command::{Command, Verb, split_args, split_keyword};
use crate::error::ProtoError;
use crate::event::{CloseReason, Event, MessageMeta, SessionStats};
use crate::line::LineReader;
use crate::options::SessionOptions;
use crate::response::Response;
use crate::state::State;
use crate::text::Catalog;
use crate::transaction::Maildrop;

/// A POP3 session state machine (RFC 1939 §3 states; see [`State`]).
#[derive(Debug)]
pub struct Session {
    pub(crate) options: SessionOptions,
    pub(crate) input: LineReader,
    pub(crate) phase: Phase,
    pub(crate) pending: Option<Pending>,
    /// Events produced by a completed action, handed out before any new input is read.
    pub(crate) queued: VecDeque<Event>,
    /// When the session started; the login timeout counts from here.
    started: Instant,
    last_activity: Instant,
    /// An action completed; the next `next(now)` restarts the idle clock.
    pub(crate) touch_on_next: bool,
    /// Consecutive engine errors.
    bad_streak: u32,
    pub(crate) stats: SessionStats,
    /// The language of the core's texts (RFC 6856 `LANG`); English when `None`.
    catalog: Option<Arc<Catalog>>,
    /// RFC 6856 UTF-8 mode, switched on by the `UTF8` command.
    pub(crate) utf8: bool,
}

/// The RFC state together with the data that only exists in it.
#[derive(Debug)]
pub(crate) enum Phase {
    /// `user` is set after a successful USER; `sasl` names the mechanism while an
    /// AUTH exchange runs.
    Authorization {
        user: Option<String>,
        sasl: Option<String>,
    },
    Transaction(Account),
    Update(Account),
    Closed(Option<Account>),
}

/// A logged-in user and their maildrop snapshot.
#[derive(Debug)]
pub(crate) struct Account {
    /// `None` after a SASL login the driver did not name (see `auth_completed`).
    pub(crate) user: Option<String>,
    pub(crate) maildrop: Maildrop,
    pub(crate) policy: UserPolicy,
}

/// The action the driver is performing; input waits until it completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pending {
    Auth {
        user: String,
    },
    /// The TLS handshake after STLS; input is ignored until it completes.
    Tls,
    /// A SASL step: the driver answers with a challenge or a verdict.
    Sasl,
    Transfer {
        top: bool,
        size: u64,
    },
    Commit,
    Extension,
}

impl Session {
    /// A session in the AUTHORIZATION state whose idle and login clocks start at `now`.
    ///
    /// An `idle_timeout` below RFC 1939's 10 minutes is raised to 10 minutes.
    pub fn new(mut options: SessionOptions, now: Instant) -> Session {
        options.idle_timeout = options.idle_timeout.max(SessionOptions::MIN_IDLE_TIMEOUT);
        Session {
            options,
            input: LineReader::default(),
            phase: Phase::Authorization {
                user: None,
                sasl: None,
            },
            pending: None,
            queued: VecDeque::new(),
            started: now,
            last_activity: now,
            touch_on_next: false,
            bad_streak: 0,
            stats: SessionStats::default(),
            catalog: None,
            utf8: false,
        }
    }

    /// The greeting: `+OK <text>`, followed by the APOP timestamp when APOP is enabled
    /// (RFC 1939 §7: "A POP3 server which implements the APOP command will include a
    /// timestamp in its banner greeting").
    pub fn greeting(&self) -> Response {
        match &self.options.apop_timestamp {
            Some(stamp) => Response::ok(format!("{} {stamp}", self.options.greeting_text)),
            None => Response::ok(self.options.greeting_text.clone()),
        }
    }

    /// Buffers bytes from the client; any chunking, any number of pipelined commands.
    /// Input after the session closed, and between STLS and
    /// [`Session::tls_started`], is dropped.
    pub fn enqueue_input(&mut self, bytes: &[u8]) {
        if !matches!(self.phase, Phase::Closed(_)) && self.pending != Some(Pending::Tls) {
            self.input.push(bytes);
        }
    }

    /// The next thing for the driver to do.
    ///
    /// `None` means: read more input, or finish the action that was requested (the
    /// session holds queued commands back until then, so replies stay in order).
    pub fn next(&mut self, now: Instant) -> Option<Event> {
        if self.touch_on_next && self.pending.is_none() {
            self.touch_on_next = false;
            self.last_activity = now;
        }
        if let Some(event) = self.queued.pop_front() {
            return Some(self.localized(event));
        }
        if self.pending.is_some() || !self.reads_commands() {
            return None;
        }
        if self.in_sasl_exchange() {
            let line = self.input.next_line_within(self.options.max_sasl_line)?;
            self.last_activity = now;
            return Some(self.sasl_continuation(line));
        }
        let line = self.input.next_line()?;
        self.last_activity = now;
        self.stats.commands += 1;
        let result = line.and_then(|line| self.dispatch(&line));
        let event = self.conclude(result);
        Some(self.localized(event))
    }

    /// When a timer fires: last client activity plus the idle timeout, and before
    /// login no later than the session start plus the login timeout. While the driver
    /// works on an action the server, not the client, is busy, and no timer fires; the
    /// TLS handshake after STLS is the client's work, so the login timeout covers it.
    pub fn deadline(&self) -> Instant {
        let idle = self.last_activity + self.options.idle_timeout;
        self.login_deadline().map_or(idle, |login| login.min(idle))
    }

    /// Checks the timers. Past the deadline this returns the `Close` event with an
    /// `-ERR` line and reason [`CloseReason::LoginTimeout`] (not logged in within the
    /// login timeout) or [`CloseReason::Timeout`] (idle); nothing is committed.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Event> {
        let waiting_for_client = self.queued.is_empty()
            && match self.pending {
                None => !self.touch_on_next,
                Some(Pending::Tls) => true,
                Some(_) => false,
            };
        if !self.reads_commands() || !waiting_for_client || now < self.deadline() {
            return None;
        }
        let (reason, error) = if self.login_deadline().is_some_and(|login| now >= login) {
            (CloseReason::LoginTimeout, ProtoError::LoginTimeout)
        } else {
            (CloseReason::Timeout, ProtoError::IdleTimeout)
        };
        let reply = self.localize(error.to_response());
        Some(self.close(reason, Some(reply)))
    }

    /// The end of the login timeout, while not logged in (and the timeout is on).
    fn login_deadline(&self) -> Option<Instant> {
        let timeout = self.options.login_timeout;
        if timeout.is_zero() || !matches!(self.phase, Phase::Authorization { .. }) {
            return None;
        }
        self.started.checked_add(timeout)
    }

    /// The current state.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Authorization { .. } => State::Authorization,
            Phase::Transaction(_) => State::Transaction,
            Phase::Update(_) => State::Update,
            Phase::Closed(_) => State::Closed,
        }
    }

    /// Counters for logging.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// The logged-in user, once a login succeeded.
    pub fn user(&self) -> Option<&str> {
        self.account().and_then(|account| account.user.as_deref())
    }

    /// The maildrop snapshot taken at login (empty before). Message n is index n - 1.
    pub fn messages(&self) -> &[MessageMeta] {
        self.account()
            .map_or(&[], |account| account.maildrop.messages())
    }

    /// Whether message `index` (0-based) is marked as deleted.
    pub fn is_deleted(&self, index: usize) -> bool {
        self.account()
            .is_some_and(|account| account.maildrop.is_deleted(index))
    }

    /// The APOP timestamp of the greeting, which the auth backend needs to check a
    /// digest.
    pub fn apop_timestamp(&self) -> Option<&str> {
        self.options.apop_timestamp.as_deref()
    }

    /// Whether input is buffered that has not been turned into events yet (pipelined
    /// commands waiting behind a pending action, or part of a line).
    pub fn has_buffered_input(&self) -> bool {
        self.input.has_input()
    }

    /// The options the session runs with; after STLS, [`Session::tls_started`] has set
    /// `tls_active` and cleared `plaintext_disallowed`.
    pub fn options(&self) -> &SessionOptions {
        &self.options
    }

    /// Answers [`Event::ExtensionCommand`]; the reply is handed out by the next
    /// [`Session::next`]. Ignored if no extension command is pending.
    pub fn extension_completed(&mut self, reply: Response) {
        if self.pending == Some(Pending::Extension) {
            self.pending = None;
            self.touch_on_next = true;
            self.queued.push_back(Event::Reply(reply));
        }
    }

    /// Selects the language of the core's texts (RFC 6856 §3); `None` is English. Texts
    /// from plugins and protocol data are not affected.
    pub fn set_language(&mut self, catalog: Option<Arc<Catalog>>) {
        self.catalog = catalog;
    }

    /// The selected language's tag; `None` while the texts are English.
    pub fn language(&self) -> Option<&str> {
        self.catalog.as_deref().map(Catalog::tag)
    }

    /// Switches RFC 6856 UTF-8 mode on (the `UTF8` command an extension answers): user
    /// names with non-ASCII characters are accepted from now on, when
    /// [`SessionOptions::utf8_users_need_command`] is set.
    pub fn enable_utf8(&mut self) {
        self.utf8 = true;
    }

    /// Whether UTF-8 mode is on.
    pub fn utf8_enabled(&self) -> bool {
        self.utf8
    }

    /// Renders a core text of `response` in the session's language (a no-op in English).
    /// The engine does this for its own replies; the driver calls it for the core texts it
    /// writes itself.
    pub fn localize(&self, mut response: Response) -> Response {
        if self.catalog.is_some() {
            response.localize(self.catalog.as_deref());
        }
        response
    }

    fn localized(&self, event: Event) -> Event {
        if self.catalog.is_none() {
            return event;
        }
        match event {
            Event::Reply(response) => Event::Reply(self.localize(response)),
            Event::Close { reason, reply } => Event::Close {
                reason,
                reply: reply.map(|reply| self.localize(reply)),
            },
            other => other,
        }
    }

    /// Answers [`Event::ExtensionCommand`] whose reply the driver wrote itself: a multi-line
    /// reply streamed from the extension (first line, body through a [`crate::BodyEncoder`],
    /// terminating `.`). Ignored if no extension command is pending.
    pub fn extension_streamed(&mut self) {
        if self.pending == Some(Pending::Extension) {
            self.pending = None;
            self.touch_on_next = true;
        }
    }

    fn account(&self) -> Option<&Account> {
        match &self.phase {
            Phase::Transaction(account) | Phase::Update(account) => Some(account),
            Phase::Closed(account) => account.as_ref(),
            Phase::Authorization { .. } => None,
        }
    }

    pub(crate) fn user_policy(&self) -> Option<UserPolicy> {
        self.account().map(|account| account.policy)
    }

    fn reads_commands(&self) -> bool {
        matches!(
            self.phase,
            Phase::Authorization { .. } | Phase::Transaction(_)
        )
    }

    fn dispatch(&mut self, line: &str) -> Result<Event, ProtoError> {
        if line.is_empty() {
            return Err(ProtoError::EmptyCommand);
        }
        let (keyword, rest) = split_keyword(line);
        let state = self.state();
        let Some(verb) = Verb::parse(keyword) else {
            return self.extension(keyword, rest, state);
        };
        if !verb.allowed_in(state) {
            return Err(ProtoError::WrongState {
                verb: verb.as_str().into(),
                state,
            });
        }
        match Command::parse(verb, rest)? {
            Command::Capa => Ok(Event::Reply(capa_response(
                &self.options,
                state,
                self.user_policy(),
            ))),
            Command::Quit => Ok(self.quit()),
            Command::Stls => self.stls(),
            Command::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response),
            command @ (Command::User(_) | Command::Pass(_) | Command::Apop { .. }) => {
                self.authorization(command)
            }
            command => self.transaction(command),
        }
    }

    /// An extension verb, or an unknown command.
    fn extension(&mut self, keyword: &str, rest: &str, state: State) -> Result<Event, ProtoError> {
        let Some(verb) = self
            .options
            .extension_verbs
            .iter()
            .find(|verb| verb.name.eq_ignore_ascii_case(keyword))
        else {
            return Err(ProtoError::UnknownCommand(keyword.to_owned()));
        };
        let name = verb.name.to_ascii_uppercase();
        if !verb.states.contains(state) {
            return Err(ProtoError::WrongState { verb: name, state });
        }
        let args = split_args(rest)?.into_iter().map(String::from).collect();
        self.pending = Some(Pending::Extension);
        Ok(Event::ExtensionCommand { verb: name, args })
    }

    /// Counts errors and turns them into replies, or into a close after too many
    /// (the limit of the state the error happened in).
    pub(crate) fn conclude(&mut self, result: Result<Event, ProtoError>) -> Event {
        match result {
            Ok(event) => {
                self.bad_streak = 0;
                event
            }
            Err(error) if error.is_login_refusal() => {
                self.bad_streak = 0;
                Event::Reply(error.to_response())
            }
            Err(error) => {
                self.stats.bad_commands += 1;
                self.bad_streak = self.bad_streak.saturating_add(1);
                let limit = match self.phase {
                    Phase::Authorization { .. } => self.options.max_bad_commands_authorization,
                    _ => self.options.max_bad_commands_transaction,
                };
                if limit > 0 && self.bad_streak >= limit {
                    let reply = ProtoError::TooManyBadCommands.to_response();
                    self.close(CloseReason::TooManyErrors, Some(reply))
                } else {
                    Event::Reply(error.to_response())
                }
            }
        }
    }

    /// Moves to `Closed`, keeping the account for `user()` and `messages()`.
    pub(crate) fn close(&mut self, reason: CloseReason, reply: Option<Response>) -> Event {
        let account = match mem::replace(&mut self.phase, Phase::Closed(None)) {
            Phase::Transaction(account) | Phase::Update(account) => Some(account),
            Phase::Closed(account) => account,
            Phase::Authorization { .. } => None,
        };
        self.phase = Phase::Closed(account);
        self.pending = None;
        Event::Close { reason, reply }
    }
}
