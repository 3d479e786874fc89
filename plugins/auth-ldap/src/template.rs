//! Search filters and DN templates with `%u`, `%n` and `%d`, and the escaping that keeps a login
//! name from changing what they mean.
//!
//! A template is written by the administrator (`(&(objectClass=inetOrgPerson)(uid=%u))`); the
//! values come from whoever connects to port 110. Pasting a login name such as `*)(uid=*` into a
//! filter unescaped would turn "the entry whose uid is this" into "any entry", so every value is
//! escaped for where it lands, and only the administrator's text is syntax:
//!
//! - in a **filter**, RFC 4515 §3: "the octets that represent the ASCII characters '*', '(', ')',
//!   '\' and NUL are to be escaped" as `\2a`, `\28`, `\29`, `\5c`, `\00` (ldap3's
//!   [`ldap_escape`]);
//! - in a **DN**, RFC 4514 §2.4: `"`, `+`, `,`, `;`, `<`, `>`, `\`, `=`, NUL, and a leading space
//!   or `#` and a trailing space, as `\XX` (ldap3's [`dn_escape`]).
//!
//! The placeholders are Dovecot's: `%u` the login name as given, `%n` its part before the last
//! `@` (all of it when there is none), `%d` the part after (empty when there is none), and `%%` a
//! percent sign. Templates are checked when the plugin starts, so a typo such as `%x` or an
//! unbalanced parenthesis stops `poppet check` instead of failing every login.

use ldap3::{dn_escape, ldap_escape};

/// Where a template's output goes, which decides how values are escaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// An RFC 4515 search filter.
    Filter,
    /// An RFC 4514 distinguished name.
    Dn,
}

/// One piece of a parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// Administrator's text, copied as it is.
    Literal(String),
    /// `%u`: the whole login name.
    User,
    /// `%n`: the login name before the last `@`.
    Local,
    /// `%d`: the login name after the last `@`.
    Domain,
}

/// A parsed filter or DN template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    context: Context,
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `text`, refusing unknown placeholders. For a filter it also checks that the result
    /// is a valid filter, by expanding it for a sample user and parsing that with ldap3.
    pub fn parse(text: &str, context: Context) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            let piece = match chars.next() {
                Some('%') => {
                    literal.push('%');
                    continue;
                }
                Some('u') => Piece::User,
                Some('n') => Piece::Local,
                Some('d') => Piece::Domain,
                Some(other) => {
                    return Err(format!(
                        "unknown placeholder %{other} in {text:?} (use %u, %n, %d or %%)"
                    ));
                }
                None => return Err(format!("{text:?} ends with a lone %")),
            };
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(piece);
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        let template = Template { context, pieces };
        if context == Context::Filter {
            let sample = template.expand("sample@example.org");
            ldap3::parse_filter(&sample)
                .map_err(|_| format!("{text:?} is not a valid LDAP filter (RFC 4515)"))?;
        }
        Ok(template)
    }

    /// Whether the template uses the login name at all. A filter that does not would match the
    /// same entries for every user, which is always a mistake.
    pub fn mentions_user(&self) -> bool {
        self.pieces.iter().any(|p| !matches!(p, Piece::Literal(_)))
    }

    /// The template with `user`'s values, escaped for the template's context.
    pub fn expand(&self, user: &str) -> String {
        let (local, domain) = match user.rsplit_once('@') {
            Some((local, domain)) => (local, domain),
            None => (user, ""),
        };
        let mut out = String::new();
        for piece in &self.pieces {
            let value = match piece {
                Piece::Literal(text) => {
                    out.push_str(text);
                    continue;
                }
                Piece::User => user,
                Piece::Local => local,
                Piece::Domain => domain,
            };
            match self.context {
                Context::Filter => out.push_str(&ldap_escape(value)),
                Context::Dn => out.push_str(&dn_escape(value)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(text: &str) -> Template {
        Template::parse(text, Context::Filter).unwrap()
    }

    #[test]
    fn placeholders() {
        let t = filter("(&(uid=%n)(mailDomain=%d)(mail=%u)(note=100%%))");
        assert_eq!(
            t.expand("alice@example.org"),
            "(&(uid=alice)(mailDomain=example.org)(mail=alice@example.org)(note=100%))"
        );
        // No `@`: %n is everything, %d is empty; the last `@` splits.
        assert_eq!(
            t.expand("bob"),
            "(&(uid=bob)(mailDomain=)(mail=bob)(note=100%))"
        );
        assert_eq!(filter("(uid=%n)").expand("a@b@example.org"), "(uid=a@b)");
    }

    /// The classic injection attempts stay values: the expanded filter has exactly the
    /// administrator's structure, which ldap3's parser confirms.
    #[test]
    fn filter_values_cannot_change_the_filter() {
        let t = filter("(&(objectClass=inetOrgPerson)(uid=%u))");
        for (user, want) in [
            (
                "*)(uid=*",
                "(&(objectClass=inetOrgPerson)(uid=\\2a\\29\\28uid=\\2a))",
            ),
            ("*", "(&(objectClass=inetOrgPerson)(uid=\\2a))"),
            (
                "admin)(|(uid=*",
                "(&(objectClass=inetOrgPerson)(uid=admin\\29\\28|\\28uid=\\2a))",
            ),
            (
                "back\\slash",
                "(&(objectClass=inetOrgPerson)(uid=back\\5cslash))",
            ),
            (
                "nul\0byte",
                "(&(objectClass=inetOrgPerson)(uid=nul\\00byte))",
            ),
            ("o'brien+x", "(&(objectClass=inetOrgPerson)(uid=o'brien+x))"),
        ] {
            let got = t.expand(user);
            assert_eq!(got, want, "{user:?}");
            assert!(ldap3::parse_filter(&got).is_ok(), "{got}");
        }
    }

    #[test]
    fn dn_values_are_escaped_per_rfc4514() {
        let t = Template::parse("uid=%u,ou=people,dc=example,dc=org", Context::Dn).unwrap();
        assert_eq!(t.expand("alice"), "uid=alice,ou=people,dc=example,dc=org");
        assert_eq!(
            t.expand("x,ou=admins"),
            "uid=x\\2cou\\3dadmins,ou=people,dc=example,dc=org"
        );
        assert_eq!(
            t.expand(" lead+trail "),
            "uid=\\20lead\\2btrail\\20,ou=people,dc=example,dc=org"
        );
        assert_eq!(t.expand("#x"), "uid=\\23x,ou=people,dc=example,dc=org");
    }

    #[test]
    fn bad_templates_are_refused() {
        for (text, needle) in [
            ("(uid=%x)", "unknown placeholder %x"),
            ("(uid=%u", "not a valid LDAP filter"),
            ("(uid=%u)%", "lone %"),
            ("uid=%u)(", "not a valid LDAP filter"),
        ] {
            let err = Template::parse(text, Context::Filter).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
        assert!(!filter("(objectClass=*)").mentions_user());
        assert!(filter("(uid=%n)").mentions_user());
    }
}
