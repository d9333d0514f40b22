//! Configuration: defaults, then the TOML file, then `PIZZA_ORDERS_*` environment variables,
//! then command-line flags; the later source wins. The result is validated once into a
//! [`Config`] whose fields are domain types, so nothing downstream re-checks a setting.
//!
//! Environment variables name a setting by its path with `__` between sections:
//! `PIZZA_ORDERS_SLOTS__CAPACITY=40`, `PIZZA_ORDERS_LISTEN=0.0.0.0:8080`.
//! Flags: `--listen`, `--data-dir`, `--log-format`, and `--set section.key=value` for any other.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::domain::{Cents, Currency, Menu, MenuError, SlotGrid, SlotGridError};
use crate::state::{CommitterSettings, SlotCapacity};

/// Where `serve` looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config/local.toml";
const ENV_PREFIX: &str = "PIZZA_ORDERS_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("--set expects key=value (for example --set slots.capacity=40); got '{0}'")]
    BadOverride(String),
    #[error("no token secret is configured: set auth.jwt_secret_file (or auth.jwt_secret, or PIZZA_ORDERS_AUTH__JWT_SECRET) to at least 32 bytes")]
    NoSecret,
    #[error("set only one of auth.jwt_secret and auth.jwt_secret_file")]
    TwoSecrets,
    #[error("the token secret is {0} bytes; HS256 needs at least 32 (try: openssl rand -base64 48)")]
    ShortSecret(usize),
    #[error("cannot read auth.jwt_secret_file {path}: {source}")]
    SecretFile { path: PathBuf, source: std::io::Error },
    #[error("menu: {0}")]
    Menu(#[from] MenuError),
    #[error("slots: {0}")]
    Slots(#[from] SlotGridError),
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The raw settings, as written in the file. See `config/local.toml` for each one explained.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub log: LogSettings,
    pub auth: AuthSettings,
    pub menu: MenuSettings,
    pub slots: SlotSettings,
    pub orders: OrderSettings,
    pub storage: StorageSettings,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `pizza_orders=debug,tower_http=info`.
    pub filter: String,
}

#[derive(Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    pub jwt_secret: Option<String>,
    pub jwt_secret_file: Option<PathBuf>,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<redacted>"))
            .field("jwt_secret_file", &self.jwt_secret_file)
            .finish()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MenuSettings {
    pub currency: String,
    pub sizes: SizePrices,
    pub toppings: ToppingPrices,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizePrices {
    pub small: u64,
    pub medium: u64,
    pub large: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToppingPrices {
    pub extra_cheese: u64,
    pub pepperoni: u64,
    pub mushroom: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlotSettings {
    pub length_minutes: i64,
    /// Opening hours in UTC, `HH:MM`, on the slot grid; `closes` may be `24:00`.
    pub opens: String,
    pub closes: String,
    /// Pizzas the kitchen can deliver in one slot.
    pub capacity: u32,
    pub horizon_days: i64,
    /// Orders close (create, change, cancel) this long before their slot starts.
    pub cutoff_minutes: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrderSettings {
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl_hours: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// Most writes per durable transaction; 1 disables group commit.
    pub group_commit_max_batch: usize,
    pub queue_depth: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            log: LogSettings::default(),
            auth: AuthSettings::default(),
            menu: MenuSettings::default(),
            slots: SlotSettings::default(),
            orders: OrderSettings::default(),
            storage: StorageSettings::default(),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { format: LogFormat::Text, filter: "info".into() }
    }
}

impl Default for MenuSettings {
    fn default() -> Self {
        Self {
            currency: "EUR".into(),
            sizes: SizePrices { small: 800, medium: 1050, large: 1300 },
            toppings: ToppingPrices { extra_cheese: 150, pepperoni: 200, mushroom: 120 },
        }
    }
}

impl Default for SlotSettings {
    fn default() -> Self {
        Self {
            length_minutes: 30,
            opens: "11:00".into(),
            closes: "23:00".into(),
            capacity: 20,
            horizon_days: 3650,
            cutoff_minutes: 30,
        }
    }
}

impl Default for OrderSettings {
    fn default() -> Self {
        Self { idempotency_ttl_hours: 24 }
    }
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self { group_commit_max_batch: 256, queue_depth: 4096 }
    }
}

/// Command-line overrides, applied last.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    /// `section.key=value` pairs.
    pub set: Vec<String>,
}

impl Settings {
    /// Layer defaults, `file` (or the default path when it exists), the environment and
    /// `overrides`. An explicitly named file that is missing is an error.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.to_owned())),
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_PATH));
            }
            None => {}
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&["config"]));
        if let Some(listen) = overrides.listen {
            figment = figment.merge(("listen", listen));
        }
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(("data_dir", dir));
        }
        if let Some(format) = overrides.log_format {
            figment = figment.merge(("log.format", format));
        }
        for pair in &overrides.set {
            let (key, value) = pair
                .split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .ok_or_else(|| ConfigError::BadOverride(pair.clone()))?;
            let value: figment::value::Value = value.parse().map_err(|_| ConfigError::BadOverride(pair.clone()))?;
            figment = figment.merge((key.trim(), value));
        }
        figment.extract().map_err(|e| ConfigError::Invalid(e.to_string()))
    }
}

/// The validated configuration of a node.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub log: LogSettings,
    pub secret: TokenSecret,
    pub menu: Menu,
    pub grid: SlotGrid,
    pub capacity: SlotCapacity,
    pub idempotency_ttl_ms: i64,
    pub committer: CommitterSettings,
}

/// The HS256 key, at least 32 bytes. Never printed.
#[derive(Clone)]
pub struct TokenSecret(Vec<u8>);

impl TokenSecret {
    pub const MIN_BYTES: usize = 32;

    pub fn parse(raw: &[u8]) -> Result<Self, ConfigError> {
        if raw.len() < Self::MIN_BYTES {
            return Err(ConfigError::ShortSecret(raw.len()));
        }
        Ok(Self(raw.to_vec()))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn from_auth(auth: &AuthSettings) -> Result<Self, ConfigError> {
        match (&auth.jwt_secret, &auth.jwt_secret_file) {
            (Some(_), Some(_)) => Err(ConfigError::TwoSecrets),
            (None, None) => Err(ConfigError::NoSecret),
            (Some(secret), None) => Self::parse(secret.as_bytes()),
            (None, Some(path)) => {
                let raw =
                    std::fs::read(path).map_err(|source| ConfigError::SecretFile { path: path.clone(), source })?;
                Self::parse(raw.trim_ascii_end())
            }
        }
    }
}

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

impl Config {
    pub fn from_settings(s: Settings) -> Result<Self, ConfigError> {
        let menu = Menu::new(
            Currency::parse(&s.menu.currency)?,
            [s.menu.sizes.small, s.menu.sizes.medium, s.menu.sizes.large].map(Cents),
            [s.menu.toppings.extra_cheese, s.menu.toppings.pepperoni, s.menu.toppings.mushroom].map(Cents),
        )?;
        let grid = SlotGrid::new(
            s.slots.length_minutes,
            &s.slots.opens,
            &s.slots.closes,
            s.slots.horizon_days,
            s.slots.cutoff_minutes,
        )?;
        if s.slots.capacity == 0 {
            return Err(ConfigError::Zero("slots.capacity"));
        }
        if s.orders.idempotency_ttl_hours < 1 {
            return Err(ConfigError::Zero("orders.idempotency_ttl_hours"));
        }
        if s.storage.group_commit_max_batch == 0 {
            return Err(ConfigError::Zero("storage.group_commit_max_batch"));
        }
        if s.storage.queue_depth == 0 {
            return Err(ConfigError::Zero("storage.queue_depth"));
        }
        Ok(Self {
            listen: s.listen,
            data_dir: s.data_dir,
            log: s.log,
            secret: TokenSecret::from_auth(&s.auth)?,
            menu,
            grid,
            capacity: SlotCapacity(s.slots.capacity),
            idempotency_ttl_ms: s.orders.idempotency_ttl_hours.saturating_mul(3_600_000),
            committer: CommitterSettings {
                max_batch: s.storage.group_commit_max_batch,
                queue_depth: s.storage.queue_depth,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_secret() -> Settings {
        let mut s = Settings::default();
        s.auth.jwt_secret = Some("x".repeat(32));
        s
    }

    #[test]
    fn defaults_validate_once_a_secret_is_set() {
        assert!(matches!(Config::from_settings(Settings::default()), Err(ConfigError::NoSecret)));
        let config = Config::from_settings(with_secret()).unwrap();
        assert_eq!(config.capacity, SlotCapacity(20));
        assert_eq!(config.grid.length_minutes(), 30);
    }

    #[test]
    fn short_secrets_and_zero_capacity_are_refused() {
        let mut s = with_secret();
        s.auth.jwt_secret = Some("short".into());
        assert!(matches!(Config::from_settings(s), Err(ConfigError::ShortSecret(5))));
        let mut s = with_secret();
        s.slots.capacity = 0;
        assert!(matches!(Config::from_settings(s), Err(ConfigError::Zero("slots.capacity"))));
    }

    #[test]
    fn set_overrides_any_setting_and_bad_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[slots]\ncapacity = 5\n").unwrap();
        let overrides = Overrides { set: vec!["slots.cutoff_minutes=10".into()], ..Overrides::default() };
        let s = Settings::load(Some(&file), &overrides).unwrap();
        assert_eq!((s.slots.capacity, s.slots.cutoff_minutes), (5, 10));

        let bad = Overrides { set: vec!["slots.capacty=10".into()], ..Overrides::default() };
        let err = Settings::load(Some(&file), &bad).unwrap_err().to_string();
        assert!(err.contains("capacty"), "{err}");
        assert!(matches!(
            Settings::load(Some(&dir.path().join("missing.toml")), &Overrides::default()),
            Err(ConfigError::MissingFile(_))
        ));
    }
}
