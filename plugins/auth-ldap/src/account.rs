//! From a user's entry to what the core needs after a login: the mailbox, and the per-user
//! RFC 2449 LOGIN-DELAY and EXPIRE, from the attributes the settings name.
//!
//! A value that cannot be used (a login delay that is not a number) is logged and left out, so
//! the server's default applies: the user authenticated correctly, and a typo in one attribute
//! should not lock them out of their mail.

use crate::directory::Entry;
use crate::settings::Attributes;
use poppet_sdk::{Accepted, Expire};

/// The login result for `entry`.
pub fn accepted(entry: &Entry, attributes: &Attributes) -> Accepted {
    let value = |name: &Option<String>| name.as_deref().and_then(|name| entry.first(name));
    let mailbox = value(&attributes.mailbox)
        .map(str::to_owned)
        .or_else(|| value(&attributes.home).map(maildir_in));
    let login_delay = value(&attributes.login_delay).and_then(|text| {
        let parsed = text.trim().parse::<u32>();
        if parsed.is_err() {
            log::warn!(
                "{}: login delay {text:?} is not a number of seconds, ignored",
                entry.dn
            );
        }
        parsed.ok()
    });
    let expire = value(&attributes.expire).and_then(|text| {
        let parsed = parse_expire(text);
        if parsed.is_none() {
            log::warn!(
                "{}: expire {text:?} is neither a number of days nor NEVER, ignored",
                entry.dn
            );
        }
        parsed
    });
    Accepted {
        user: None,
        mailbox,
        login_delay,
        expire,
    }
}

/// `<home>/Maildir`, Dovecot's `maildir:~/Maildir`.
fn maildir_in(home: &str) -> String {
    format!("{}/Maildir", home.trim_end_matches('/'))
}

/// RFC 2449 §6.7 writes `EXPIRE NEVER` or a number of days.
fn parse_expire(text: &str) -> Option<Expire> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("never") {
        return Some(Expire::Never);
    }
    text.parse().ok().map(Expire::Days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(maildir_in("/home/a/"), "/home/a/Maildir");
        assert_eq!(parse_expire("NEVER"), Some(Expire::Never));
        assert_eq!(parse_expire(" 30 "), Some(Expire::Days(30)));
        assert_eq!(parse_expire("-1"), None);
        assert_eq!(parse_expire("soon"), None);
    }
}
