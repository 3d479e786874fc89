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

/// Drops to the configured user/group if running as root.
pub fn drop_privileges(config: &Config) -> Result<(), PrivilegeError> {
    if !Uid::effective().is_root() {
        return Ok(());
    }
    let Some(user_name) = &config.user else {
        if let Some(l) = config
            .listeners
            .iter()
            .find(|l| !l.address.ip().is_loopback())
        {
            return Err(PrivilegeError::RootOnNetwork(l.address.to_string()));
        }
        log::warn!(
            "running as root on loopback only; set `user` in the config before serving a network"
        );
        return Ok(());
    };
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
    let gid: Gid = match &config.group {
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
