//! Mailbox path templates shared by store plugins: `/var/mail/%d/%n/Maildir`, `/var/mail/%u`.
//!
//! The user name is the one part of a path that comes from a client, so it is checked before any
//! path is built, and each substituted part must be a usable path component.

use crate::error::{ErrorCode, PluginError};
use std::path::{Component, PathBuf};

/// Refuses user names that could change which file or directory a template names: empty, `/`,
/// `..`, or any control character (which also keeps them out of log lines).
pub fn check_user(user: &str) -> Result<(), PluginError> {
    let bad = user.is_empty()
        || user.contains('/')
        || user.contains("..")
        || user.chars().any(char::is_control);
    if bad {
        return Err(PluginError::new(
            ErrorCode::PERMANENT,
            format!("user name {user:?} is not allowed in a mailbox path"),
        ));
    }
    Ok(())
}

/// Expands `%u` (user), `%n` (local part), `%d` (domain) and `%%` in `template`. Each substituted
/// part must be a usable path component (not empty, `.` or `..`), so `%n` of `".@x"` cannot name
/// the parent directory. The error text says which escape or part is wrong.
pub fn expand(template: &str, user: &str) -> Result<PathBuf, String> {
    let (local, domain) = match user.rsplit_once('@') {
        Some((local, domain)) => (local, Some(domain)),
        None => (user, None),
    };
    let mut out = String::with_capacity(template.len() + user.len());
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let part = match chars.next() {
            Some('%') => {
                out.push('%');
                continue;
            }
            Some('u') => user,
            Some('n') => local,
            Some('d') => domain.ok_or_else(|| format!("user {user:?} has no domain for %d"))?,
            Some(other) => return Err(format!("unknown escape %{other} (known: %u %n %d %%)")),
            None => return Err("a lone % at the end (write %% for a percent sign)".into()),
        };
        if part.is_empty() || part == "." || part == ".." {
            return Err(format!(
                "user {user:?} gives an unusable path part {part:?}"
            ));
        }
        out.push_str(part);
    }
    Ok(PathBuf::from(out))
}

/// The mailbox path for `user` from `template`: [`check_user`], [`expand`], and a final check that
/// the result names a file or directory inside the template's tree (no `..`, a final name).
pub fn template_path(template: &str, user: &str) -> Result<PathBuf, PluginError> {
    check_user(user)?;
    let path = expand(template, user).map_err(PluginError::permanent)?;
    if path.components().any(|c| c == Component::ParentDir) || path.file_name().is_none() {
        return Err(PluginError::permanent(format!(
            "user name {user:?} leads outside the mail directory"
        )));
    }
    Ok(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_refusals() {
        assert_eq!(
            expand("/m/%d/%n/%u/%%", "ann@example.org").unwrap(),
            PathBuf::from("/m/example.org/ann/ann@example.org/%")
        );
        assert!(expand("/m/%d", "ann").unwrap_err().contains("no domain"));
        assert!(
            expand("/m/%x", "ann")
                .unwrap_err()
                .contains("unknown escape")
        );
        assert!(expand("/m/%n", ".@x").is_err());
        for bad in ["", "a/b", "..", "a..b", "a\0b", "a\nb"] {
            assert!(check_user(bad).is_err(), "{bad:?}");
            assert!(template_path("/var/mail/%u", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            template_path("/var/mail/%u", "ann").unwrap(),
            PathBuf::from("/var/mail/ann")
        );
    }
}
