//! Dropping root after binding the listeners. Poppet may start as root to bind ports 110/995, then
//! becomes the configured user and group before it serves anyone. Serving a non-loopback address as
//! root without a configured user is refused; loopback-only setups (the quickstart) only get a warning.

use crate::config::Config;
use nix::unistd::{Gid, Group, Uid, User, setgid, setgroups, setuid};

/// Why privileges could not be dropped.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// The named user or group does not exist.
    #[error("no such {kind} `{name}` (config key `{kind}`)")]
    Unknown {
        /// "user" or "group".
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// A system call failed.
    #[error("cannot switch to {what}: {source}")]
    Switch {
        /// What was attempted.
        what: String,
        /// The error.
        source: nix::Error,
    },
    /// Root without a user to drop to, on a network-facing listener.
    #[error(
        "refusing to serve {0} as root: set `user: \"poppet\"` (and optionally `group`) in the config so Poppet drops root after binding"
    )]
    RootOnNetwork(String),
}

/// What to do about privileges at startup.
#[derive(Debug, PartialEq, Eq)]
enum Plan<'a> {
    /// Not root: nothing to do.
    Nothing,
    /// Root on loopback only: allowed with a warning (the quickstart).
    StayRootOnLoopback,
    /// Switch to this user (and optional group).
    Drop(&'a str, Option<&'a str>),
}

fn plan(is_root: bool, config: &Config) -> Result<Plan<'_>, PrivilegeError> {
    if !is_root {
        return Ok(Plan::Nothing);
    }
    match &config.user {
        Some(user) => Ok(Plan::Drop(user, config.group.as_deref())),
        None => match config
            .listeners
            .iter()
            .find(|l| !l.address.ip().is_loopback())
        {
            Some(l) => Err(PrivilegeError::RootOnNetwork(l.address.to_string())),
            None => Ok(Plan::StayRootOnLoopback),
        },
    }
}

/// Drops to the configured user/group if running as root.
pub fn drop_privileges(config: &Config) -> Result<(), PrivilegeError> {
    let (user_name, group) = match plan(Uid::effective().is_root(), config)? {
        Plan::Nothing => return Ok(()),
        Plan::StayRootOnLoopback => {
            log::warn!(
                "running as root on loopback only; set `user` in the config before serving a network"
            );
            return Ok(());
        }
        Plan::Drop(user, group) => (user.to_owned(), group.map(str::to_owned)),
    };
    let user_name = &user_name;
    let lookup_err = |e| PrivilegeError::Switch {
        what: format!("user {user_name}"),
        source: e,
    };
    let user = User::from_name(user_name)
        .map_err(lookup_err)?
        .ok_or_else(|| PrivilegeError::Unknown {
            kind: "user",
            name: user_name.clone(),
        })?;
    let gid: Gid = match &group {
        Some(g) => {
            Group::from_name(g)
                .map_err(|e| PrivilegeError::Switch {
                    what: format!("group {g}"),
                    source: e,
                })?
                .ok_or_else(|| PrivilegeError::Unknown {
                    kind: "group",
                    name: g.clone(),
                })?
                .gid
        }
        None => user.gid,
    };
    // Order matters: supplementary groups and gid while still root, uid last.
    setgroups(&[gid]).map_err(|e| PrivilegeError::Switch {
        what: "supplementary groups".into(),
        source: e,
    })?;
    setgid(gid).map_err(|e| PrivilegeError::Switch {
        what: format!("gid {gid}"),
        source: e,
    })?;
    setuid(user.uid).map_err(|e| PrivilegeError::Switch {
        what: format!("uid {}", user.uid),
        source: e,
    })?;
    log::info!("dropped root: now uid {} gid {}", user.uid, gid);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(listen: &str, user: Option<&str>) -> Config {
        let text = format!(
            r#"(listeners: [(address: "{listen}")], plugins: [(library: "a", kind: auth, name: "a"), (library: "s", kind: store, name: "s")], auth: "a", store: "s")"#
        );
        let mut c = Config::parse(Path::new("t.ron"), &text).unwrap();
        c.user = user.map(str::to_owned);
        c
    }

    #[test]
    fn root_must_drop_before_serving_a_network() {
        let public = config("0.0.0.0:110", None);
        assert!(
            matches!(plan(true, &public), Err(PrivilegeError::RootOnNetwork(a)) if a == "0.0.0.0:110")
        );
        assert_eq!(plan(false, &public).unwrap(), Plan::Nothing);
        assert_eq!(
            plan(true, &config("127.0.0.1:11110", None)).unwrap(),
            Plan::StayRootOnLoopback
        );
        assert_eq!(
            plan(true, &config("[::]:995", Some("poppet"))).unwrap(),
            Plan::Drop("poppet", None)
        );
    }
}
