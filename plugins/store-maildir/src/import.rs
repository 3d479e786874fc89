//! UIDLs (and sizes) another POP3 server served from the same maildir, read from its own files, so
//! clients moving to Poppet do not download every message again.
//!
//! Both files are only ever read: a user may still be switched back to the old server.
//!
//! **Dovecot** keeps `dovecot-uidlist` in the maildir (`doc.dovecot.org`, "Maildir Mailbox
//! Format"; `src/lib-storage/index/maildir/maildir-uidlist.c`). Version 3, written since v1.1:
//! ```text
//! 3 V1796007131 N6 G6186d232dbe40c6bcb08000083ecc375
//! 1 W94 :1700000001.M1P100.mail.example.org
//! ```
//! The header has `V<uidvalidity>` and `N<next uid>` among other fields in any order; each entry
//! is `<uid> [<key><value> ...] :<file name>`. Keys used here: `P` (a POP3 UIDL Dovecot was told
//! to keep, served as it is), `G` (the message GUID), `W` (the size with CRLF line ends). Version
//! 1 (Dovecot up to v1.0, and Courier IMAP's `courierimapuiddb`) is `1 <uidvalidity> <next uid>`
//! then `<uid> <file name>`. The UIDL Dovecot served is its `pop3_uidl_format` expanded for the
//! message ([`UidlFormat`]), unless the entry has a `P` value.
//!
//! **Courier** keeps `courierpop3dsizelist` (courier-imap `imap/pop3dserver.c`):
//! ```text
//! /3 6 1796007092
//! 1700000001.M1P100.mail.example.org:2,S 94 1:1796007092:0
//! ```
//! The header is `/<version> <next uid> <uidvalidity>` (versions 2 and 3; Courier ignores any
//! other file and numbers the mail afresh); each entry is `<file name> <size> <uid>:<uidvalidity>`
//! (`:<utf8 flag>` added in version 3). Courier serves `UID<uid>-<uidvalidity>` (`UID<uid>` when
//! the uidvalidity is 0), and for a uid of 0 the file name's unique part with every octet outside
//! 0x21..0x7E, `'`, `"` and `+` written `+XX`.
//!
//! Both match entries to files by the unique part of the name (before the first `:`).
//!
//! **Sizes.** Both old servers also recorded each message's POP3 size, which saves reading the
//! message on the first login. They count one CR per line end but not the CRLF they add after a
//! last line without a line end, so for such a message their size is 2 short of what they (and we)
//! send; [`usable_size`] checks the last octet before trusting one.

use crate::name;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, ErrorKind, Read, Seek, SeekFrom};
use std::path::Path;

/// Dovecot's UIDL list, in the maildir.
pub const DOVECOT_UIDLIST: &str = "dovecot-uidlist";
/// Courier's POP3 UIDL and size list, in the maildir.
pub const COURIER_SIZELIST: &str = "courierpop3dsizelist";

/// Where UIDLs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UidlSource {
    /// Poppet's own: the file name's unique part.
    Native,
    /// Dovecot's `dovecot-uidlist` with its `pop3_uidl_format`.
    Dovecot(UidlFormat),
    /// Courier's `courierpop3dsizelist`.
    Courier,
}

impl UidlSource {
    /// The name used in settings and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            UidlSource::Native => "native",
            UidlSource::Dovecot(_) => "dovecot",
            UidlSource::Courier => "courier",
        }
    }

    /// The file this source reads, if any.
    pub fn file(&self) -> Option<&'static str> {
        match self {
            UidlSource::Native => None,
            UidlSource::Dovecot(_) => Some(DOVECOT_UIDLIST),
            UidlSource::Courier => Some(COURIER_SIZELIST),
        }
    }
}

/// What the old server's file says about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The UIDL it served.
    pub uidl: String,
    /// The size it advertised, if it recorded one.
    pub size: Option<u64>,
}

/// The old server's view of one maildir, by unique part of the file name.
pub type ImportedList = HashMap<Vec<u8>, Imported>;

/// Reads what `source` says about the maildir at `dir`. A missing file gives an empty list (the
/// mailbox was never opened by the old server); a file that cannot be parsed is an error, which
/// the store logs before falling back to native UIDLs.
pub fn load(dir: &Path, source: &UidlSource) -> Result<ImportedList, String> {
    let Some(file) = source.file() else {
        return Ok(ImportedList::new());
    };
    let bytes = match std::fs::read(dir.join(file)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(ImportedList::new()),
        Err(e) => return Err(format!("{file}: {e}")),
    };
    let parsed = match source {
        UidlSource::Native => Ok(ImportedList::new()),
        UidlSource::Dovecot(format) => parse_dovecot(&bytes, format),
        UidlSource::Courier => parse_courier(&bytes),
    };
    parsed.map_err(|e| format!("{file}: {e}"))
}

/// Parses a `dovecot-uidlist` and expands `format` for each entry.
pub fn parse_dovecot(bytes: &[u8], format: &UidlFormat) -> Result<ImportedList, String> {
    let mut lines = bytes.split(|&b| b == b'\n').enumerate();
    let header = lines.next().map(|(_, l)| l).unwrap_or_default();
    let header = std::str::from_utf8(header).map_err(|_| "line 1: not UTF-8".to_owned())?;
    let mut fields = header.split(' ');
    let version = fields.next().unwrap_or_default();
    let uidvalidity: u32 = match version {
        "3" => fields
            .find_map(|f| f.strip_prefix('V'))
            .ok_or("line 1: no V<uidvalidity>")?
            .parse()
            .map_err(|_| "line 1: bad uidvalidity".to_owned())?,
        "1" => fields
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or("line 1: bad uidvalidity")?,
        other => {
            return Err(format!(
                "line 1: version {other:?} is not supported (1 or 3)"
            ));
        }
    };
    let mut out = ImportedList::new();
    for (i, line) in lines {
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| format!("line {}: {why}", i + 1);
        let digits = line.iter().take_while(|b| b.is_ascii_digit()).count();
        let uid: u32 = std::str::from_utf8(&line[..digits])
            .ok()
            .and_then(|d| d.parse().ok())
            .filter(|&u| u > 0)
            .ok_or_else(|| bad("no uid"))?;
        let mut rest = line[digits..]
            .strip_prefix(b" ")
            .ok_or_else(|| bad("no file name"))?;
        let mut kept = None;
        let mut guid = None;
        let mut vsize = None;
        if version == "3" {
            // Extension fields up to the `:` that starts the file name.
            while let Some(&key) = rest.first() {
                if key == b':' {
                    rest = &rest[1..];
                    break;
                }
                let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
                // A space where a key should be (two spaces in a row) is an empty field: `end` is
                // 0 then, and the trim below moves past it.
                let value =
                    String::from_utf8_lossy(rest.get(1..end).unwrap_or_default()).into_owned();
                match key {
                    b'P' => kept = Some(value),
                    b'G' => guid = Some(value),
                    b'W' => vsize = value.parse().ok(),
                    _ => {}
                }
                rest = rest[end..].trim_ascii_start();
            }
        }
        if rest.is_empty() {
            return Err(bad("no file name"));
        }
        let base = name::base(rest).to_vec();
        let vars = Vars {
            uid,
            uidvalidity,
            base: &base,
            guid: guid.as_deref(),
        };
        let uidl = kept.unwrap_or_else(|| format.expand(&vars));
        out.insert(base.clone(), Imported { uidl, size: vsize });
    }
    Ok(out)
}

/// Parses a `courierpop3dsizelist`.
pub fn parse_courier(bytes: &[u8]) -> Result<ImportedList, String> {
    let mut lines = bytes.split(|&b| b == b'\n').enumerate();
    let header = lines.next().map(|(_, l)| l).unwrap_or_default();
    let header = String::from_utf8_lossy(header);
    let version = header
        .strip_prefix('/')
        .and_then(|h| h.split(' ').next())
        .unwrap_or_default();
    if version != "2" && version != "3" {
        // Courier itself ignores such a file and assigns new UIDLs, so there is nothing to keep.
        return Err(format!(
            "line 1: not a version 2 or 3 header ({header:?}); Courier ignores such a file too"
        ));
    }
    let mut out = ImportedList::new();
    for (i, line) in lines {
        if line.is_empty() {
            continue;
        }
        let bad = || format!("line {}: not `<file> <size> <uid>:<uidvalidity>`", i + 1);
        // From the right, as Courier reads it: the file name may contain spaces.
        let mut parts = line.rsplitn(3, |&b| b == b' ');
        let (Some(ids), Some(size), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let size: u64 = std::str::from_utf8(size)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        let ids = std::str::from_utf8(ids).map_err(|_| bad())?;
        let mut ids = ids.split(':');
        let uid: u64 = ids.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let uidv: u64 = ids.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        if file.is_empty() {
            return Err(bad());
        }
        let base = name::base(file).to_vec();
        let uidl = match (uid, uidv) {
            (0, _) => courier_escaped(&base),
            (n, 0) => format!("UID{n}"),
            (n, v) => format!("UID{n}-{v}"),
        };
        out.insert(
            base,
            Imported {
                uidl,
                size: Some(size),
            },
        );
    }
    Ok(out)
}

/// Courier's "version 0" UIDL: the unique part with unsafe octets written `+XX`.
fn courier_escaped(base: &[u8]) -> String {
    let mut out = String::new();
    for &b in base {
        if !(0x21..=0x7E).contains(&b) || b == b'\'' || b == b'"' || b == b'+' {
            out.push_str(&format!("+{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// The values a Dovecot `pop3_uidl_format` can use for one message.
#[derive(Debug)]
pub struct Vars<'a> {
    /// IMAP UID.
    pub uid: u32,
    /// IMAP UIDVALIDITY of the mailbox.
    pub uidvalidity: u32,
    /// The file name's unique part.
    pub base: &'a [u8],
    /// The `G` field, when the uidlist has one (else Dovecot's maildir GUID is the unique part).
    pub guid: Option<&'a str>,
}

/// A Dovecot 2.3 `pop3_uidl_format`: literal text and `%` variables, as Dovecot's `var_expand`
/// reads them: `%[0][width][modifiers]<var>` or `%[0][width][modifiers]{<long name>}`.
///
/// Variables: `u`/`{uid}` the IMAP UID, `v`/`{uidvalidity}` the UIDVALIDITY, `f`/`{filename}` the
/// file name's unique part, `g`/`{guid}` the message GUID. Modifiers: `X` (a number in lowercase
/// hex, as Dovecot 2.3 prints it), `L` and `U` (lower and upper case). A width with a leading `0`
/// pads with zeros on the left; without it, it keeps the first `width` characters. `%m` (an MD5 of
/// the headers, meant for mbox) is refused: it would mean reading every message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidlFormat {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var {
        var: Var,
        zero_pad: bool,
        width: Option<usize>,
        hex: bool,
        case: Option<bool>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Uid,
    UidValidity,
    FileName,
    Guid,
}

/// RFC 1939 §7: a unique-id "consists of one to 70 characters".
const MAX_UIDL_LEN: usize = 70;

/// Dovecot's default `pop3_uidl_format` (and the default here).
pub const DOVECOT_DEFAULT_FORMAT: &str = "%08Xu%08Xv";

impl UidlFormat {
    /// Parses a format.
    pub fn parse(text: &str) -> Result<UidlFormat, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            if chars.peek() == Some(&'%') {
                chars.next();
                literal.push('%');
                continue;
            }
            let zero_pad = chars.next_if_eq(&'0').is_some();
            let mut digits = String::new();
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                digits.push(d);
            }
            if chars.peek() == Some(&'.') {
                return Err("offsets (%N.M) are not supported".into());
            }
            let width = if digits.is_empty() {
                None
            } else {
                Some(digits.parse().map_err(|_| "width too large")?)
            };
            // Padding past a UIDL's 70 characters (RFC 1939 §7) can only make invalid UIDLs, and
            // a huge width would be allocated for every message.
            if zero_pad && width.is_some_and(|w: usize| w > MAX_UIDL_LEN) {
                return Err(format!(
                    "zero padding to {digits} characters: a UIDL has at most {MAX_UIDL_LEN}"
                ));
            }
            let (mut hex, mut case) = (false, None);
            let var = loop {
                match chars.next() {
                    Some('X') => hex = true,
                    Some('L') => case = Some(false),
                    Some('U') => case = Some(true),
                    Some('u') => break Var::Uid,
                    Some('v') => break Var::UidValidity,
                    Some('f') => break Var::FileName,
                    Some('g') => break Var::Guid,
                    Some('{') => {
                        let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                        break match name.as_str() {
                            "uid" => Var::Uid,
                            "uidvalidity" => Var::UidValidity,
                            "filename" => Var::FileName,
                            "guid" => Var::Guid,
                            other => return Err(format!("unknown variable %{{{other}}}")),
                        };
                    }
                    Some('m') => {
                        return Err("%m (MD5 of the headers) is not supported: it would \
                                    read every message"
                            .into());
                    }
                    Some(other) => return Err(format!("unknown variable or modifier %{other}")),
                    None => return Err("a lone % at the end (write %% for a percent sign)".into()),
                }
            };
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(Part::Var {
                var,
                zero_pad,
                width,
                hex,
                case,
            });
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        if !parts.iter().any(|p| matches!(p, Part::Var { .. })) {
            return Err("uses no variable, so every message would get the same UIDL".into());
        }
        Ok(UidlFormat {
            text: text.to_owned(),
            parts,
        })
    }

    /// The format as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The UIDL for one message.
    pub fn expand(&self, vars: &Vars<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var {
                    var,
                    zero_pad,
                    width,
                    hex,
                    case,
                } => {
                    let number = |n: u32| {
                        if *hex {
                            format!("{n:x}")
                        } else {
                            n.to_string()
                        }
                    };
                    let mut value = match var {
                        Var::Uid => number(vars.uid),
                        Var::UidValidity => number(vars.uidvalidity),
                        Var::FileName => String::from_utf8_lossy(vars.base).into_owned(),
                        Var::Guid => match vars.guid {
                            Some(g) => g.to_owned(),
                            None => String::from_utf8_lossy(vars.base).into_owned(),
                        },
                    };
                    match case {
                        Some(true) => value = value.to_uppercase(),
                        Some(false) => value = value.to_lowercase(),
                        None => {}
                    }
                    match (width, zero_pad) {
                        (Some(w), true) if value.chars().count() < *w => {
                            out.extend(std::iter::repeat_n('0', w - value.chars().count()));
                        }
                        (Some(w), false) => value = value.chars().take(*w).collect(),
                        _ => {}
                    }
                    out.push_str(&value);
                }
            }
        }
        out
    }
}

/// Whether an imported `size` can be advertised for the file at `path` of `len` octets without
/// reading it: it must be plausible (as for a Maildir++ `W=`: between `len` and `2 * len`), and the
/// file must end with a line end (or be empty), since both old servers leave out the CRLF they add
/// after an unterminated last line. Only the last octet is read. The size is still checked as the
/// message is sent, where a mismatch fails the transfer and puts the true size in the cache.
pub fn usable_size(size: u64, path: &Path, len: u64) -> io::Result<bool> {
    if size < len || size > len.saturating_mul(2) {
        return Ok(false);
    }
    if len == 0 {
        return Ok(size == 0);
    }
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Whether `uidl` may be sent (RFC 1939 §7: 1 to 70 characters in 0x21..=0x7E).
pub fn valid_uidl(uidl: &str) -> bool {
    !uidl.is_empty()
        && uidl.len() <= MAX_UIDL_LEN
        && uidl.bytes().all(|b| (0x21..=0x7E).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(uid: u32, base: &[u8]) -> Vars<'_> {
        Vars {
            uid,
            uidvalidity: 0x6b0c_e4db,
            base,
            guid: None,
        }
    }

    #[test]
    fn dovecot_default_format_is_lowercase_hex_zero_padded() {
        let f = UidlFormat::parse(DOVECOT_DEFAULT_FORMAT).expect("format");
        assert_eq!(f.expand(&vars(1, b"x")), "000000016b0ce4db");
        assert_eq!(f.expand(&vars(0xABCDEF12, b"x")), "abcdef126b0ce4db");
        let upper = UidlFormat::parse("%08UXu-%v").expect("format");
        assert_eq!(upper.expand(&vars(255, b"x")), "000000FF-1796007131");
    }

    #[test]
    fn dovecot_formats_with_names_widths_and_literals() {
        let f = UidlFormat::parse("%f").expect("format");
        assert_eq!(f.expand(&vars(1, b"17.M1,S=3")), "17.M1,S=3");
        let f = UidlFormat::parse("%{uidvalidity}.%{uid}%%").expect("format");
        assert_eq!(f.expand(&vars(7, b"x")), "1796007131.7%");
        let f = UidlFormat::parse("%4f").expect("format");
        assert_eq!(f.expand(&vars(7, b"abcdefg")), "abcd");
        let f = UidlFormat::parse("%g").expect("format");
        assert_eq!(f.expand(&vars(7, b"abc")), "abc");
        for bad in ["%m", "%q", "abc", "%", "%{nope}", "%1.2u"] {
            assert!(UidlFormat::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dovecot_uidlist_version_3_and_1() {
        let format = UidlFormat::parse(DOVECOT_DEFAULT_FORMAT).expect("format");
        let v3 = b"3 V1796007131 N7 G6186d232\n\
            1 W94 :1700000001.M1P1.h\n\
            2 G00ff :1700000002.M2P1.h,S=73:2,S\n";
        let list = parse_dovecot(v3, &format).expect("parse");
        assert_eq!(list.len(), 2);
        let one = &list[&b"1700000001.M1P1.h"[..]];
        assert_eq!(
            (one.uidl.as_str(), one.size),
            ("000000016b0ce4db", Some(94))
        );
        let two = &list[&b"1700000002.M2P1.h,S=73"[..]];
        assert_eq!((two.uidl.as_str(), two.size), ("000000026b0ce4db", None));
        // A `P` value is a UIDL Dovecot was told to keep: served as it is.
        let v3p = b"3 V1 N2\n1 Pold-uidl-1 :1.a\n";
        assert_eq!(
            parse_dovecot(v3p, &format).expect("parse")[&b"1.a"[..]].uidl,
            "old-uidl-1"
        );
        let v1 = b"1 1796007131 3\n1 1.a:2,\n2 2.b\n";
        let list = parse_dovecot(v1, &format).expect("parse");
        assert_eq!(list[&b"2.b"[..]].uidl, "000000026b0ce4db");
        for bad in [&b"2 x\n"[..], b"3 N5\n", b"3 V1\nx :a\n", b"3 V1\n1 G1\n"] {
            assert!(parse_dovecot(bad, &format).is_err(), "{bad:?}");
        }
    }

    /// Found by the `maildir_uidlist` fuzz target: `%07777777777g` made every expansion allocate
    /// gigabytes of zeros (a config typo would take the server down at the first login).
    #[test]
    fn a_zero_padded_width_above_70_is_refused_not_allocated() {
        let err = UidlFormat::parse("%07777777777g").expect_err("refused");
        assert!(err.contains("at most 70"), "{err}");
        assert!(UidlFormat::parse("%071u").is_err());
        let widest = UidlFormat::parse("%070u").expect("70 is allowed");
        assert_eq!(widest.expand(&vars(7, b"x")).len(), 70);
        // Without the zero a width only cuts, so any width is harmless.
        assert_eq!(
            UidlFormat::parse("%99999f")
                .expect("cut")
                .expand(&vars(7, b"x")),
            "x"
        );
    }

    /// Found by the `maildir_uidlist` fuzz target: a space where an extension key belongs sliced
    /// `rest[1..0]` and panicked, so one odd `dovecot-uidlist` locked its user out.
    #[test]
    fn dovecot_uidlist_with_two_spaces_after_the_uid_does_not_panic() {
        let format = UidlFormat::parse(DOVECOT_DEFAULT_FORMAT).expect("format");
        let list = parse_dovecot(b"3 V1 N3\n1  :1.a\n2 W9  G1 :2.b\n", &format).expect("parse");
        assert_eq!(list[&b"1.a"[..]].uidl, "0000000100000001");
        assert_eq!(list[&b"2.b"[..]].size, Some(9));
        assert!(parse_dovecot(b"3 V1 N2\n1  \n", &format).is_err());
    }

    #[test]
    fn courier_sizelist_versions_and_uidl_forms() {
        let v3 = b"/3 6 1796007092\n\
            1700000001.M1.h:2,S 94 1:1796007092:0\n\
            with space.M2.h:2, 77 2:1796007092:0\n\
            3.M3.h 10 3:0:0\n\
            4.M4+'.h:2, 10 0:0:0\n";
        let list = parse_courier(v3).expect("parse");
        let one = &list[&b"1700000001.M1.h"[..]];
        assert_eq!((one.uidl.as_str(), one.size), ("UID1-1796007092", Some(94)));
        assert_eq!(list[&b"with space.M2.h"[..]].uidl, "UID2-1796007092");
        assert_eq!(list[&b"3.M3.h"[..]].uidl, "UID3");
        assert_eq!(list[&b"4.M4+'.h"[..]].uidl, "4.M4+2B+27.h");
        let v2 = b"/2 2 99\n1.a:2, 5 1:99\n";
        assert_eq!(
            parse_courier(v2).expect("parse")[&b"1.a"[..]].uidl,
            "UID1-99"
        );
        for bad in [&b"1.a 5\n"[..], b"/1 2 3\n", b"/3 2 3\n1.a five 1:2:0\n"] {
            assert!(parse_courier(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn imported_sizes_need_a_final_line_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ended, open) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&ended, b"a\nb\n").expect("write");
        std::fs::write(&open, b"a\nb").expect("write");
        assert!(usable_size(6, &ended, 4).expect("read"));
        assert!(!usable_size(4, &open, 3).expect("read"));
        assert!(
            !usable_size(3, &ended, 4).expect("read"),
            "below the length"
        );
        assert!(
            !usable_size(9, &ended, 4).expect("read"),
            "above twice the length"
        );
    }

    #[test]
    fn only_rfc_1939_uidls_are_valid() {
        assert!(valid_uidl("UID1-2"));
        assert!(!valid_uidl(""));
        assert!(!valid_uidl("a b"));
        assert!(!valid_uidl(&"a".repeat(71)));
    }
}
