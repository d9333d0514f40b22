//! Configuration: defaults, then the TOML file, then `PIZZA_ORDERS_*` environment variables,
//! then command-line flags; the later source wins. The result is validated once into a
//! [`Config`] whose fields are domain types, so nothing downstream re-checks a setting.
//!
//! Environment variables name a setting by its path with `__` between sections:
//! `PIZZA_ORDERS_SLOTS__CAPACITY=40`, `PIZZA_ORDERS_LISTEN=0.0.0.0:8080`.
//! Flags: `--listen`, `--data-dir`, `--log-format`, and `--set section.key=value` for any other.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::domain::{CatalogDoc, DeliveryDoc, MenuDoc, SizePrices, StoreDoc, ToppingPrices, WeekHours};

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
    #[error("cannot read the catalog file {path}: {source}")]
    CatalogFile { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Catalog(String),
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
    /// A catalog file (TOML: menu and stores) that seeds the replicated catalog the first time
    /// a leader finds none. Unset: one store, "main", made of `[menu]` and `[slots]`.
    pub catalog_file: Option<PathBuf>,
    pub log: LogSettings,
    pub auth: AuthSettings,
    pub menu: MenuSettings,
    pub slots: SlotSettings,
    pub orders: OrderSettings,
    pub cluster: ClusterSettings,
    pub raft: RaftSettings,
    pub http: HttpSettings,
    pub runtime: RuntimeSettings,
    pub tls: TlsSettings,
    pub limits: LimitSettings,
    pub analytics: AnalyticsSettings,
    pub storage: StorageSettings,
}

/// `[storage]`: the data directory's disk.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// Free space kept in reserve (MiB): below it new writes are refused (503 `storage-full`)
    /// and `/readyz` says why; the Raft log waits rather than write into its last half.
    /// 0 keeps no reserve.
    pub min_free_mb: u64,
    /// redb's page cache for the state (`orders.redb`), MiB. The node's memory is mostly this
    /// cache plus a few tens of MiB; pages not cached are read from the OS page cache.
    pub cache_mb: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self { min_free_mb: 64, cache_mb: 128 }
    }
}

/// `[analytics]`: first-party product analytics from the web UI's beacons.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsSettings {
    /// Accept beacons (`POST /v1/events`); off: 404, and the page sends none.
    pub enabled: bool,
    /// How often this node hands its counts to the cluster (one replicated command).
    pub flush_ms: u64,
    /// Days of figures kept; older days are purged by a replicated command (0: kept for ever).
    pub retention_days: u32,
    /// Beacons one node takes per second (429 beyond).
    pub beacons_per_second: u32,
}

impl Default for AnalyticsSettings {
    fn default() -> Self {
        Self { enabled: true, flush_ms: 5_000, retention_days: 400, beacons_per_second: 2_000 }
    }
}

/// `[tls]`: HTTPS on the API listener. Unset: plain HTTP (the local single-node default).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// The certificate chain (PEM), leaf first.
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// `Strict-Transport-Security: max-age` sent while TLS is on; 0 sends none.
    pub hsts_max_age_s: u64,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self { cert_file: None, key_file: None, hsts_max_age_s: 31_536_000 }
    }
}

/// `[limits]`: how fast one client address or one user may go. Generous by default: they hold
/// back a script, never a customer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    pub enabled: bool,
    /// Requests per second from one client address, and the burst above that rate.
    pub per_address_per_second: u32,
    pub per_address_burst: u32,
    /// Limit loopback clients by address too. Off by default: behind a local proxy (nginx)
    /// every customer is 127.0.0.1, and the proxy limits per address itself.
    pub limit_loopback: bool,
    /// Order writes (create, change, cancel, waitlist join) per user per minute, and the burst.
    pub writes_per_user_per_minute: u32,
    pub writes_burst: u32,
    /// Attempts by one user on one delivery slot per hour (create, change to it, waitlist).
    pub slot_attempts_per_user_per_hour: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            per_address_per_second: 200,
            per_address_burst: 400,
            limit_loopback: false,
            writes_per_user_per_minute: 60,
            writes_burst: 20,
            slot_attempts_per_user_per_hour: 20,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// Threads running requests and replication; unset: one per core. Several nodes sharing a
    /// small host each do better with their share of its cores.
    pub worker_threads: Option<NonZeroUsize>,
    /// While a write or a follower's read-index ask is on its way and this many µs after, one
    /// lowest-priority (`SCHED_IDLE`) thread polls instead of letting a CPU halt
    /// (`raft::busy_poll`): a halted virtual CPU wakes slowly for the disk's and the peers'
    /// answers. 0: off. Unset: 1000, or off when the process has a CPU quota (cgroup `cpu.max`).
    pub busy_poll_us: Option<u64>,
}

/// The longest busy-poll linger a node accepts (100 ms): beyond that it is spinning, not waiting.
const MAX_BUSY_POLL_US: u64 = 100_000;

/// Most worker threads a node accepts: more is a typo, not a machine.
const MAX_WORKER_THREADS: usize = 1024;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// A client must send its request headers within this time (slow-loris protection).
    pub header_read_timeout_ms: u64,
    /// On shutdown, connections still busy after this long are closed.
    pub drain_timeout_ms: u64,
    /// Live availability streams (Server-Sent Events) one node serves at once; more are
    /// answered 503 with Retry-After.
    pub max_streams: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self { header_read_timeout_ms: 10_000, drain_timeout_ms: 20_000, max_streams: 10_000 }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// The cluster's name, written into backups so a restore knows where data came from.
    pub name: String,
    /// This node's id, unique in the cluster, at least 1.
    pub node_id: u64,
    /// The `host:port` peers and forwarded requests use to reach this node; defaults to the
    /// address the API listens on.
    pub advertise: Option<String>,
    /// Initialise a one-node cluster on first start. Off for nodes that join a cluster.
    pub bootstrap: bool,
    /// Local IP that connections to peers start from, on hosts with several addresses;
    /// default: chosen by the operating system.
    pub source_ip: Option<std::net::IpAddr>,
    /// Shared secret that Raft RPCs between nodes must carry (at least 32 bytes).
    pub secret: Option<String>,
    pub secret_file: Option<PathBuf>,
    /// Mutual TLS between nodes (all three or none): the cluster CA (PEM) that every peer's
    /// certificate must chain to, and this node's certificate and key, shown to peers.
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl std::fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("name", &self.name)
            .field("node_id", &self.node_id)
            .field("advertise", &self.advertise)
            .field("bootstrap", &self.bootstrap)
            .field("source_ip", &self.source_ip)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_file", &self.secret_file)
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSettings {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_after_entries: u64,
    /// Log entries kept behind a snapshot, so a briefly lagging follower needs no snapshot.
    pub entries_kept_after_snapshot: u64,
    /// Most entries in one replication message.
    pub max_payload_entries: u64,
    /// Pack concurrent writes into one log entry (group commit): one append and one fsync per
    /// node for the batch. Off: one entry, and one fsync, per write.
    pub group_commit: bool,
    /// Most writes in one log entry.
    pub max_batch: usize,
    /// Batches being replicated at once; more wait and grow meanwhile. One since appends are
    /// pipelined (`raft::stream`): three nodes took 10–13 % more creates at 16 and 64 clients
    /// than with two (docs/design.md, "Pipelined appends"); one node the same.
    pub batches_in_flight: usize,
    /// Linearizable reads on the leader use a read lease (half the minimum election timeout)
    /// instead of a heartbeat round each; safe while clocks tick at similar rates. Off: every
    /// read round confirms leadership with a quorum (etcd's default).
    pub lease_reads: bool,
    /// The leader sends entries to the followers as soon as they are written, while its own
    /// fsync runs (openraft 0.10's `broadcast_submitted_on_append`); the leader counts its own
    /// copy only once synced either way. Off: openraft's default scheduling, which sends them
    /// on its next round.
    pub replicate_while_syncing: bool,
}

/// Our own events at info, libraries' at warn: openraft logs its state machine's every step at
/// info, twenty lines for a one-node start, which hide the one that says where the node is.
pub const DEFAULT_LOG_FILTER: &str = "warn,pizza_orders=info";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `info,pizza_orders::api=debug` (a span per request).
    pub filter: String,
}

#[derive(Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    pub jwt_secret: Option<String>,
    pub jwt_secret_file: Option<PathBuf>,
    /// Development only: `POST /v1/dev/login` mints a token for any name (used by the web
    /// UI's sign-in). Never enable it on a real deployment.
    pub dev_login: bool,
    /// Rotating secrets instead of `jwt_secret`: current first (it signs), older ones still
    /// verify the tokens whose `kid` names them.
    pub keys: Vec<KeySettings>,
    /// An OpenID Connect provider whose tokens are taken beside the secrets'.
    pub oidc: Option<OidcSettings>,
}

/// Where the provider's keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    Uri(String),
    /// The issuer's discovery document (`ISSUER/.well-known/openid-configuration`) names the
    /// `jwks_uri`.
    Discovery,
}

/// `[auth.oidc]`, checked (see `auth::oidc`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcConfig {
    /// The provider's short name: user ids are `NAME:sub`.
    pub name: String,
    /// The exact `iss` its tokens carry.
    pub issuer: String,
    /// The `aud` (one of) its tokens must carry for this service.
    pub audience: String,
    pub jwks: JwksSource,
    /// CA certificates for an https `jwks_uri`.
    pub ca_file: PathBuf,
    /// The claim that lists a user's roles.
    pub roles_claim: String,
    /// The role that makes an admin.
    pub admin_role: String,
    /// `PREFIX<store id>` makes staff of that store.
    pub staff_role_prefix: String,
    /// The pages' sign-in through this provider, when it has a client for them.
    pub pages: Option<PagesSignIn>,
}

/// The pages' sign-in: the authorization-code flow with PKCE as a public client (no secret in
/// the page), the token kept in the page's memory (`src/ui/assets/signin.js`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PagesSignIn {
    /// The pages' client at the provider (public: no secret).
    pub client_id: String,
    /// What the pages ask for (`openid` at least; `offline_access` for a refresh token where the
    /// provider wants it).
    pub scope: String,
    /// Extra parameters of the authorization request (Auth0's `audience`, RFC 8707's
    /// `resource`).
    pub authorize_params: BTreeMap<String, String>,
    /// The provider's endpoints from the config; `None`: from its discovery document.
    pub endpoints: Option<ProviderEndpoints>,
}

/// Where the pages send the reader to sign in and out, and where they fetch tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProviderEndpoints {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
}

/// `[auth.oidc]`: tokens from an OpenID Connect provider (docs/operations.md, "Sign-in from an
/// identity provider").
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// A short name for the provider: its users are `NAME:sub`.
    pub name: String,
    pub issuer: String,
    pub audience: String,
    /// The provider's keys in a file (a JWKS document), or …
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// … where the provider publishes them; neither: its discovery document says
    /// (`ISSUER/.well-known/openid-configuration`).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The CA certificates (PEM) an https `jwks_uri` is checked against; default the
    /// system's bundle (Debian's `/etc/ssl/certs/ca-certificates.crt`).
    #[serde(default = "default_ca_file")]
    pub ca_file: PathBuf,
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    #[serde(default = "default_admin_role")]
    pub admin_role: String,
    #[serde(default = "default_staff_role_prefix")]
    pub staff_role_prefix: String,
    /// The pages' client id at the provider (a public client, authorization code with PKCE);
    /// absent: the pages offer no sign-in through the provider.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The scope the pages ask for.
    #[serde(default = "default_scope")]
    pub scope: String,
    /// Extra parameters of the pages' authorization request, e.g. Auth0's
    /// `{ audience = "https://orders.example.com" }`.
    #[serde(default)]
    pub authorize_params: BTreeMap<String, String>,
    /// The provider's endpoints for the pages; without them the discovery document names them
    /// (needed with `jwks_file`: the node then reads nothing from the provider).
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

fn default_scope() -> String {
    "openid profile".into()
}
fn default_ca_file() -> PathBuf {
    PathBuf::from("/etc/ssl/certs/ca-certificates.crt")
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_admin_role() -> String {
    "pizza-admin".into()
}
fn default_staff_role_prefix() -> String {
    "pizza-staff:".into()
}

impl OidcSettings {
    fn check(&self) -> Result<OidcConfig, ConfigError> {
        let bad = |why: String| Err(ConfigError::Invalid(format!("auth.oidc: {why}")));
        let name_ok = (1..=16).contains(&self.name.len())
            && self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return bad("name must be 1 to 16 of a-z, 0-9 and '-' (user ids become NAME:sub)".into());
        }
        if self.issuer.trim().is_empty() || self.audience.trim().is_empty() {
            return bad("issuer and audience must be given (the iss and aud the provider's tokens carry)".into());
        }
        if self.roles_claim.is_empty() || self.admin_role.is_empty() || self.staff_role_prefix.is_empty() {
            return bad("roles_claim, admin_role and staff_role_prefix must not be empty".into());
        }
        let jwks = match (&self.jwks_file, &self.jwks_uri) {
            (Some(path), None) => JwksSource::File(path.clone()),
            (None, Some(uri)) if uri.starts_with("https://") || uri.starts_with("http://") => {
                JwksSource::Uri(uri.clone())
            }
            (None, Some(uri)) => return bad(format!("jwks_uri '{uri}' is not an http(s) URL")),
            (None, None) if self.issuer.starts_with("https://") || self.issuer.starts_with("http://") => {
                JwksSource::Discovery
            }
            (None, None) => {
                return bad(format!(
                    "the issuer '{}' is not an http(s) URL to discover the keys from: set jwks_uri or jwks_file",
                    self.issuer
                ))
            }
            (Some(_), Some(_)) => return bad("set only one of jwks_file and jwks_uri".into()),
        };
        let pages = self.pages(&jwks)?;
        Ok(OidcConfig {
            pages,
            name: self.name.clone(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            jwks,
            ca_file: self.ca_file.clone(),
            roles_claim: self.roles_claim.clone(),
            admin_role: self.admin_role.clone(),
            staff_role_prefix: self.staff_role_prefix.clone(),
        })
    }
}

impl OidcSettings {
    /// The pages' sign-in, checked: a client id, a scope with `openid`, http(s) endpoints given
    /// together (or none, and the discovery document read).
    fn pages(&self, jwks: &JwksSource) -> Result<Option<PagesSignIn>, ConfigError> {
        let bad = |why: String| Err(ConfigError::Invalid(format!("auth.oidc: {why}")));
        let url = |field: &str, value: &Option<String>| -> Result<Option<String>, ConfigError> {
            match value {
                Some(v) if reqwest::Url::parse(v).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) => {
                    Ok(Some(v.clone()))
                }
                Some(v) => Err(ConfigError::Invalid(format!("auth.oidc: {field} '{v}' is not an http(s) URL"))),
                None => Ok(None),
            }
        };
        let authorization = url("authorization_endpoint", &self.authorization_endpoint)?;
        let token = url("token_endpoint", &self.token_endpoint)?;
        let end_session = url("end_session_endpoint", &self.end_session_endpoint)?;
        let Some(client_id) = self.client_id.as_ref() else {
            if authorization.is_some() || token.is_some() || end_session.is_some() {
                return bad("the endpoints are for the pages' sign-in: set client_id too".into());
            }
            return Ok(None);
        };
        if client_id.trim().is_empty() {
            return bad("client_id must not be empty".into());
        }
        const FLOW: [&str; 8] = [
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "nonce",
            "code_challenge",
            "code_challenge_method",
        ];
        if let Some(name) = self.authorize_params.keys().find(|k| FLOW.contains(&k.as_str())) {
            return bad(format!("authorize_params: '{name}' is set by the pages' sign-in itself"));
        }
        if !self.scope.split_whitespace().any(|s| s == "openid") {
            return bad(format!("scope '{}' must include openid", self.scope));
        }
        let endpoints = match (authorization, token) {
            (Some(authorization_endpoint), Some(token_endpoint)) => {
                Some(ProviderEndpoints { authorization_endpoint, token_endpoint, end_session_endpoint: end_session })
            }
            (None, None) if end_session.is_none() => {
                if matches!(jwks, JwksSource::File(_)) {
                    return bad("with jwks_file the node reads nothing from the provider: give the pages' \
                                authorization_endpoint and token_endpoint"
                        .into());
                }
                None
            }
            _ => return bad("give authorization_endpoint and token_endpoint together (or neither: discovery)".into()),
        };
        Ok(Some(PagesSignIn {
            client_id: client_id.clone(),
            scope: self.scope.clone(),
            authorize_params: self.authorize_params.clone(),
            endpoints,
        }))
    }
}

/// `[[auth.keys]]`: one token secret and its key id.
#[derive(Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct KeySettings {
    pub kid: String,
    pub secret: Option<String>,
    pub secret_file: Option<PathBuf>,
}

impl std::fmt::Debug for KeySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySettings")
            .field("kid", &self.kid)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_file", &self.secret_file)
            .finish()
    }
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<redacted>"))
            .field("jwt_secret_file", &self.jwt_secret_file)
            .field("dev_login", &self.dev_login)
            .field("keys", &self.keys)
            .finish()
    }
}

/// `[menu]`: the seed catalog's prices when no catalog file is named.
pub type MenuSettings = MenuDoc;

/// `[slots]`: the seed catalog's one store when no catalog file is named. Only ever a seed:
/// once the catalog is replicated, these settings are not read again.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlotSettings {
    pub length_minutes: i64,
    /// Opening hours in `time_zone`, `HH:MM`, on the slot grid; `closes` may be `24:00`.
    pub opens: String,
    pub closes: String,
    /// Pizzas the kitchen can deliver in one slot.
    pub capacity: u32,
    pub horizon_days: i64,
    /// Orders close (create, change, cancel) this long before their slot starts.
    pub cutoff_minutes: i64,
    /// IANA time zone of the opening hours.
    pub time_zone: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrderSettings {
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl_hours: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            catalog_file: None,
            log: LogSettings::default(),
            auth: AuthSettings::default(),
            menu: MenuSettings::default(),
            slots: SlotSettings::default(),
            orders: OrderSettings::default(),
            cluster: ClusterSettings::default(),
            raft: RaftSettings::default(),
            http: HttpSettings::default(),
            runtime: RuntimeSettings::default(),
            tls: TlsSettings::default(),
            limits: LimitSettings::default(),
            analytics: AnalyticsSettings::default(),
            storage: StorageSettings::default(),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { format: LogFormat::Text, filter: DEFAULT_LOG_FILTER.into() }
    }
}

impl Default for MenuDoc {
    fn default() -> Self {
        Self {
            currency: "EUR".into(),
            sizes: SizePrices::all(800, 1050, 1300),
            toppings: ToppingPrices::all(150, 200, 120),
            tax: None,
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
            time_zone: "UTC".into(),
        }
    }
}

impl Default for OrderSettings {
    fn default() -> Self {
        Self { idempotency_ttl_hours: 24 }
    }
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            name: "pizza-orders".into(),
            node_id: 1,
            advertise: None,
            bootstrap: true,
            source_ip: None,
            secret: None,
            secret_file: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
        }
    }
}

impl Default for RaftSettings {
    fn default() -> Self {
        Self {
            heartbeat_ms: 50,
            election_timeout_min_ms: 200,
            election_timeout_max_ms: 400,
            snapshot_after_entries: 20_000,
            entries_kept_after_snapshot: 2_000,
            max_payload_entries: 512,
            group_commit: true,
            max_batch: 256,
            batches_in_flight: 1,
            lease_reads: true,
            replicate_while_syncing: true,
        }
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
        // The CLI's own variables are not settings.
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&["config", "admin_token", "ca_file"]));
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
    /// Token secrets, current (signing) first.
    pub token_keys: Vec<NamedSecret>,
    /// The identity provider whose tokens are taken too, if any.
    pub oidc: Option<OidcConfig>,
    pub dev_login: bool,
    /// The catalog a leader proposes when the replicated state has none yet (a new cluster,
    /// or a data directory from before catalogs). Checked at load; never read on the request
    /// or apply path.
    pub seed_catalog: CatalogDoc,
    pub idempotency_ttl_ms: i64,
    pub cluster: ClusterConfig,
    pub raft: RaftSettings,
    pub http: HttpSettings,
    /// HTTPS on the API listener; `None`: plain HTTP.
    pub tls: Option<TlsConfig>,
    pub limits: LimitSettings,
    pub analytics: AnalyticsSettings,
    pub storage: StorageSettings,
    /// Worker threads of the node's async runtime, resolved (unset: one per core).
    pub worker_threads: usize,
    /// `runtime.busy_poll_us` (`None`: the default, decided at start from the CPU quota).
    pub busy_poll: Option<std::time::Duration>,
}

/// The API listener's certificate, key and HSTS age.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub hsts_max_age_s: u64,
}

/// Mutual TLS between nodes.
#[derive(Clone, Debug)]
pub struct PeerTlsConfig {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// A token secret with the key id tokens signed by it carry (`None`: tokens carry no `kid`).
#[derive(Clone, Debug)]
pub struct NamedSecret {
    pub kid: Option<String>,
    pub secret: TokenSecret,
}

impl NamedSecret {
    /// The secrets `[auth]` names, current first: `keys`, or the one `jwt_secret(_file)`.
    pub fn from_auth(auth: &AuthSettings) -> Result<Vec<Self>, ConfigError> {
        if auth.keys.is_empty() {
            return Ok(vec![Self { kid: None, secret: TokenSecret::from_auth(auth)? }]);
        }
        if auth.jwt_secret.is_some() || auth.jwt_secret_file.is_some() {
            return Err(ConfigError::Invalid(
                "set either auth.jwt_secret(_file) or [[auth.keys]], not both (put the old secret in auth.keys with a kid)"
                    .into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        auth.keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let kid = key.kid.trim();
                if kid.is_empty() || kid.len() > 64 || !kid.chars().all(|c| c.is_ascii_graphic()) {
                    return Err(ConfigError::Invalid(format!(
                        "auth.keys[{i}].kid must be 1 to 64 visible ASCII characters"
                    )));
                }
                if !seen.insert(kid.to_owned()) {
                    return Err(ConfigError::Invalid(format!("auth.keys: the kid '{kid}' is used twice")));
                }
                let secret = match (&key.secret, &key.secret_file) {
                    (Some(_), Some(_)) | (None, None) => {
                        return Err(ConfigError::Invalid(format!(
                            "auth.keys[{i}] ('{kid}'): set exactly one of secret and secret_file"
                        )))
                    }
                    (Some(secret), None) => TokenSecret::parse(secret.as_bytes())?,
                    (None, Some(path)) => {
                        let raw = std::fs::read(path)
                            .map_err(|source| ConfigError::SecretFile { path: path.clone(), source })?;
                        TokenSecret::parse(raw.trim_ascii_end())?
                    }
                };
                Ok(Self { kid: Some(kid.to_owned()), secret })
            })
            .collect()
    }
}

/// This node's place in the cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub name: String,
    pub node_id: u64,
    pub advertise: Option<String>,
    pub bootstrap: bool,
    pub source_ip: Option<std::net::IpAddr>,
    pub secret: TokenSecret,
    /// Mutual TLS between nodes; `None`: peers speak plain HTTP.
    pub tls: Option<PeerTlsConfig>,
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
        let token_keys = NamedSecret::from_auth(&s.auth)?;
        let oidc = s.auth.oidc.as_ref().map(OidcSettings::check).transpose()?;
        let seed_catalog = seed_catalog(&s)?;
        if s.orders.idempotency_ttl_hours < 1 {
            return Err(ConfigError::Zero("orders.idempotency_ttl_hours"));
        }
        if s.http.header_read_timeout_ms == 0 {
            return Err(ConfigError::Zero("http.header_read_timeout_ms"));
        }
        if s.cluster.node_id == 0 {
            return Err(ConfigError::Zero("cluster.node_id"));
        }
        let worker_threads = match s.runtime.worker_threads {
            Some(n) if n.get() > MAX_WORKER_THREADS => {
                return Err(ConfigError::Invalid(format!(
                    "runtime.worker_threads is {n}; at most {MAX_WORKER_THREADS} (leave it unset for one per core)"
                )))
            }
            Some(n) => n.get(),
            None => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        };
        if s.runtime.busy_poll_us.is_some_and(|us| us > MAX_BUSY_POLL_US) {
            return Err(ConfigError::Invalid(format!(
                "runtime.busy_poll_us is at most {MAX_BUSY_POLL_US} (it is how long a CPU keeps polling after a write; 0 turns it off)"
            )));
        }
        let r = &s.raft;
        if r.heartbeat_ms == 0
            || r.election_timeout_min_ms <= r.heartbeat_ms * 2
            || r.election_timeout_max_ms <= r.election_timeout_min_ms
        {
            return Err(ConfigError::Invalid(
                "raft: need 0 < heartbeat_ms, 2 × heartbeat_ms < election_timeout_min_ms < election_timeout_max_ms"
                    .into(),
            ));
        }
        if r.snapshot_after_entries == 0 || r.max_payload_entries == 0 || r.max_batch == 0 || r.batches_in_flight == 0 {
            return Err(ConfigError::Zero(
                "raft.snapshot_after_entries, raft.max_payload_entries, raft.max_batch and raft.batches_in_flight",
            ));
        }
        let cluster_secret = match (&s.cluster.secret, &s.cluster.secret_file) {
            (Some(_), Some(_)) => return Err(ConfigError::Invalid("set only one of cluster.secret and cluster.secret_file".into())),
            (None, None) => return Err(ConfigError::Invalid(
                "no cluster secret: set cluster.secret_file (or cluster.secret, or PIZZA_ORDERS_CLUSTER__SECRET) to at least 32 bytes".into(),
            )),
            (Some(secret), None) => TokenSecret::parse(secret.as_bytes())?,
            (None, Some(path)) => {
                let raw = std::fs::read(path).map_err(|source| ConfigError::SecretFile { path: path.clone(), source })?;
                TokenSecret::parse(raw.trim_ascii_end())?
            }
        };
        let (peer_tls, tls) = tls_settings(&s)?;
        if s.analytics.flush_ms < 100 || s.analytics.beacons_per_second == 0 {
            return Err(ConfigError::Invalid(
                "analytics: flush_ms must be at least 100 and beacons_per_second at least 1 (analytics.enabled = false turns beacons off)".into(),
            ));
        }
        if s.storage.cache_mb < 8 {
            return Err(ConfigError::Invalid(format!(
                "storage.cache_mb must be at least 8 (MiB of redb page cache), not {}",
                s.storage.cache_mb
            )));
        }
        let l = &s.limits;
        if l.enabled
            && (l.per_address_per_second == 0
                || l.writes_per_user_per_minute == 0
                || l.slot_attempts_per_user_per_hour == 0)
        {
            return Err(ConfigError::Invalid(
                "limits: a rate of 0 would refuse everything; set limits.enabled = false to turn limits off".into(),
            ));
        }
        Ok(Self {
            listen: s.listen,
            data_dir: s.data_dir,
            log: s.log,
            token_keys,
            oidc,
            dev_login: s.auth.dev_login,
            seed_catalog,
            idempotency_ttl_ms: s.orders.idempotency_ttl_hours.saturating_mul(3_600_000),
            cluster: ClusterConfig {
                name: s.cluster.name,
                node_id: s.cluster.node_id,
                advertise: s.cluster.advertise,
                bootstrap: s.cluster.bootstrap,
                source_ip: s.cluster.source_ip,
                secret: cluster_secret,
                tls: peer_tls,
            },
            raft: s.raft,
            http: s.http,
            tls,
            limits: s.limits,
            analytics: s.analytics,
            storage: s.storage,
            worker_threads,
            busy_poll: s.runtime.busy_poll_us.map(std::time::Duration::from_micros),
        })
    }
}

/// `[tls]` and the `cluster.*_file` settings, each all or nothing. With mutual TLS between
/// nodes and no `[tls]`, the listener serves with the node's cluster certificate (peers reach
/// it over HTTPS and check it against the cluster CA).
fn tls_settings(s: &Settings) -> Result<(Option<PeerTlsConfig>, Option<TlsConfig>), ConfigError> {
    let c = &s.cluster;
    let peer = match (&c.ca_file, &c.cert_file, &c.key_file) {
        (None, None, None) => None,
        (Some(ca), Some(cert), Some(key)) => {
            Some(PeerTlsConfig { ca_file: ca.clone(), cert_file: cert.clone(), key_file: key.clone() })
        }
        _ => {
            return Err(ConfigError::Invalid(
                "mutual TLS between nodes needs all of cluster.ca_file, cluster.cert_file and cluster.key_file".into(),
            ))
        }
    };
    let t = &s.tls;
    let api = match (&t.cert_file, &t.key_file, &peer) {
        (Some(cert), Some(key), _) => Some((cert.clone(), key.clone())),
        (None, None, Some(p)) => Some((p.cert_file.clone(), p.key_file.clone())),
        (None, None, None) => None,
        _ => return Err(ConfigError::Invalid("HTTPS needs both tls.cert_file and tls.key_file".into())),
    };
    let api = api.map(|(cert_file, key_file)| TlsConfig { cert_file, key_file, hsts_max_age_s: t.hsts_max_age_s });
    Ok((peer, api))
}

/// The id of the one store a catalog made of `[menu]` and `[slots]` has (and that data
/// directories from before catalogs are converted into).
pub const SEED_STORE_ID: &str = "main";

/// The catalog named by `catalog_file`, or the one-store catalog of `[menu]` and `[slots]`;
/// checked here so that a bad seed stops the node at start, naming the problem.
fn seed_catalog(s: &Settings) -> Result<CatalogDoc, ConfigError> {
    let doc = match &s.catalog_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::CatalogFile { path: path.clone(), source })?;
            CatalogDoc::from_toml(&text).map_err(|e| ConfigError::Catalog(format!("{}: {e}", path.display())))?
        }
        None => legacy_catalog(s),
    };
    if s.catalog_file.is_none() && s.slots.capacity == 0 {
        return Err(ConfigError::Zero("slots.capacity"));
    }
    doc.clone().check().map_err(|e| match &s.catalog_file {
        Some(path) => ConfigError::Catalog(format!("{}: {e}", path.display())),
        None => ConfigError::Catalog(format!("[menu] and [slots]: {e}")),
    })?;
    Ok(doc)
}

fn legacy_catalog(s: &Settings) -> CatalogDoc {
    let slots = &s.slots;
    CatalogDoc {
        menu: s.menu.clone(),
        stores: vec![StoreDoc {
            id: SEED_STORE_ID.into(),
            name: s.cluster.name.clone(),
            address: String::new(),
            latitude: None,
            longitude: None,
            time_zone: slots.time_zone.clone(),
            slot_minutes: slots.length_minutes,
            capacity: slots.capacity,
            cutoff_minutes: slots.cutoff_minutes,
            horizon_days: slots.horizon_days,
            hours: WeekHours::every_day(vec![format!("{}-{}", slots.opens, slots.closes)]),
            closed_dates: Vec::new(),
            capacity_overrides: Vec::new(),
            delivery: DeliveryDoc { everywhere: true, ..DeliveryDoc::default() },
            menu: None,
        }],
        menus: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_secret() -> Settings {
        let mut s = Settings::default();
        s.auth.jwt_secret = Some("x".repeat(32));
        s.cluster.secret = Some("c".repeat(32));
        s
    }

    #[test]
    fn defaults_validate_once_a_secret_is_set() {
        assert!(matches!(Config::from_settings(Settings::default()), Err(ConfigError::NoSecret)));
        let config = Config::from_settings(with_secret()).unwrap();
        let seed = config.seed_catalog.check().unwrap();
        assert_eq!(seed.stores().len(), 1);
        assert_eq!(seed.stores()[0].calendar.slot_minutes(), 30);
    }

    fn oidc(extra: &str) -> Result<OidcConfig, String> {
        let text = format!(
            "name = \"kc\"\nissuer = \"https://id.example.test/realms/pizza\"\naudience = \"pizza-orders\"\n{extra}"
        );
        let settings: OidcSettings = toml::from_str(&text).map_err(|e| e.to_string())?;
        settings.check().map_err(|e| e.to_string())
    }

    #[test]
    fn the_pages_sign_in_needs_a_client_and_checks_its_endpoints_and_parameters() {
        assert_eq!(oidc("").unwrap().pages, None);
        let pages = oidc("client_id = \"pizza-web\"").unwrap().pages.unwrap();
        assert_eq!(
            (pages.client_id.as_str(), pages.scope.as_str(), pages.endpoints),
            ("pizza-web", "openid profile", None)
        );
        let given = oidc(
            "client_id = \"w\"\nauthorization_endpoint = \"https://id.example.test/auth\"\ntoken_endpoint = \"https://id.example.test/token\"\n\
             [authorize_params]\naudience = \"https://orders.example.test\"",
        )
        .unwrap()
        .pages
        .unwrap();
        assert_eq!(given.endpoints.unwrap().token_endpoint, "https://id.example.test/token");
        assert_eq!(
            given.authorize_params,
            BTreeMap::from([("audience".to_string(), "https://orders.example.test".to_string())])
        );
        for (extra, why) in [
            ("client_id = \" \"", "client_id must not be empty"),
            ("client_id = \"w\"\nscope = \"profile\"", "must include openid"),
            ("client_id = \"w\"\ntoken_endpoint = \"https://id.example.test/token\"", "together"),
            (
                "client_id = \"w\"\nauthorization_endpoint = \"ftp://x\"\ntoken_endpoint = \"https://x/t\"",
                "not an http(s) URL",
            ),
            ("token_endpoint = \"https://x/t\"", "set client_id too"),
            ("client_id = \"w\"\njwks_file = \"/etc/keys.json\"", "with jwks_file"),
            (
                "client_id = \"w\"\n[authorize_params]\nredirect_uri = \"https://evil.test/\"",
                "'redirect_uri' is set by the pages",
            ),
        ] {
            let err = oidc(extra).unwrap_err();
            assert!(err.contains(why), "{extra}: {err}");
        }
    }

    #[test]
    fn the_shipped_local_config_seeds_the_demo_chain() {
        // Unit tests run in the package root, as `serve` does from a checkout.
        let s = Settings::load(Some(Path::new("config/local.toml")), &Overrides::default()).unwrap();
        let seed = Config::from_settings(s).unwrap().seed_catalog.check().unwrap();
        let ids: Vec<&str> = seed.stores().iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["auckland-central", "berlin-kreuzberg", "berlin-mitte", "london-soho"]);
    }

    #[test]
    fn a_bad_catalog_file_stops_the_node_naming_file_store_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cat.toml");
        let text = std::fs::read_to_string("config/catalog.toml").unwrap().replace("Europe/London", "Europe/Lundon");
        std::fs::write(&file, text).unwrap();
        let mut s = with_secret();
        s.catalog_file = Some(file);
        let err = Config::from_settings(s).unwrap_err().to_string();
        assert!(err.contains("cat.toml") && err.contains("store 'london-soho': time_zone"), "{err}");
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

    /// The configuration with one `--set KEY=VALUE` (and the secrets a config needs).
    fn with_setting(setting: &str) -> Result<Config, ConfigError> {
        let overrides = Overrides { set: vec![setting.to_owned()], ..Overrides::default() };
        let mut s = Settings::load(None, &overrides)?;
        s.auth = with_secret().auth;
        s.cluster = with_secret().cluster;
        Config::from_settings(s)
    }

    #[test]
    fn busy_polling_is_the_default_can_be_turned_off_and_a_spin_of_seconds_is_refused() {
        assert_eq!(Config::from_settings(with_secret()).unwrap().busy_poll, None);
        let set = |value: &str| with_setting(&format!("runtime.busy_poll_us={value}"));
        assert_eq!(set("0").unwrap().busy_poll, Some(std::time::Duration::ZERO));
        assert_eq!(set("250").unwrap().busy_poll, Some(std::time::Duration::from_micros(250)));
        let absurd = set("5000000").unwrap_err().to_string();
        assert!(absurd.contains("busy_poll_us is at most 100000"), "{absurd}");
    }

    #[test]
    fn worker_threads_default_to_one_per_core_and_zero_or_absurd_counts_are_refused() {
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(Config::from_settings(with_secret()).unwrap().worker_threads, cores);
        let set = |value: &str| with_setting(&format!("runtime.worker_threads={value}"));
        assert_eq!(set("1").unwrap().worker_threads, 1);
        let zero = set("0").unwrap_err().to_string();
        assert!(zero.contains("worker_threads"), "{zero}");
        let absurd = set("100000").unwrap_err().to_string();
        assert!(absurd.contains("at most 1024"), "{absurd}");
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
