//! The config exactly as written: serde structs with `deny_unknown_fields`. Values whose errors need a
//! position are kept as [`Located`] (borrowed RON text), parsed later by the validator.

use ron::value::RawValue;
use serde::Deserialize;

/// A value borrowed from the config text, so errors about it can point at it.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(super) struct Located<'a>(#[serde(borrow)] &'a RawValue);

impl Located<'_> {
    /// The value's RON text.
    pub(super) fn text(&self) -> &str {
        self.0.trim().get_ron()
    }

    /// Parses the value.
    pub(super) fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        poppet_sdk::config::ron_options()
            .from_str(self.text())
            .map_err(|e| e.code.to_string())
    }

    /// 1-based (line, column) of the value within `file`, which it borrows from.
    pub(super) fn at(&self, file: &str) -> (usize, usize) {
        let offset = (self.text().as_ptr() as usize)
            .saturating_sub(file.as_ptr() as usize)
            .min(file.len());
        let before = &file[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename = "config")]
pub(super) struct RawConfig<'a> {
    #[serde(borrow)]
    pub listeners: Vec<RawListener<'a>>,
    #[serde(default)]
    pub plugin_dir: Option<String>,
    #[serde(borrow)]
    pub plugins: Vec<RawPlugin<'a>>,
    #[serde(borrow)]
    pub auth: Located<'a>,
    #[serde(borrow)]
    pub store: Located<'a>,
    #[serde(default, borrow)]
    pub extensions: Vec<Located<'a>>,
    #[serde(default, borrow)]
    pub limits: RawLimits<'a>,
    #[serde(default)]
    pub apop: bool,
    #[serde(default)]
    pub greeting: Option<String>,
    #[serde(default)]
    pub logging: RawLogging,
    #[serde(default)]
    pub tls: Option<RawTls>,
    #[serde(default, borrow)]
    pub metrics: Option<RawMetrics<'a>>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics<'a> {
    #[serde(borrow)]
    pub address: Located<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub cert: String,
    pub key: String,
    #[serde(default)]
    pub generate_self_signed: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogging {
    #[serde(default)]
    pub level: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListener<'a> {
    #[serde(borrow)]
    pub address: Located<'a>,
    #[serde(default)]
    pub tls: Option<super::TlsMode>,
    #[serde(default)]
    pub plaintext_auth: Option<super::PlaintextAuth>,
    #[serde(default, borrow)]
    pub proxy_protocol: Option<Vec<Located<'a>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlugin<'a> {
    #[serde(borrow)]
    pub library: Located<'a>,
    pub kind: super::PluginKind,
    #[serde(borrow)]
    pub name: Located<'a>,
    #[serde(default, borrow)]
    pub settings: Option<Located<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits<'a> {
    #[serde(default, borrow)]
    pub idle_timeout: Option<Located<'a>>,
    #[serde(default)]
    pub max_connections: Option<u32>,
    #[serde(default)]
    pub max_connections_per_ip: Option<u32>,
    #[serde(default, borrow)]
    pub shutdown_grace: Option<Located<'a>>,
    #[serde(default)]
    pub max_bad_commands: Option<u32>,
    #[serde(default)]
    pub max_bad_commands_before_login: Option<u32>,
    #[serde(default, borrow)]
    pub login_timeout: Option<Located<'a>>,
    #[serde(default, borrow)]
    pub auth_failure_delay: Option<Located<'a>>,
    #[serde(default, borrow)]
    pub auth_penalty_max: Option<Located<'a>>,
    #[serde(default, borrow)]
    pub plugin_timeout: Option<Located<'a>>,
    #[serde(default, borrow)]
    pub tcp_keepalive: Option<Located<'a>>,
    #[serde(default)]
    pub max_connections_per_user: Option<u32>,
    #[serde(default)]
    pub max_auth_failures: Option<u32>,
    #[serde(default, borrow)]
    pub trusted_networks: Option<Vec<Located<'a>>>,
}
