//! One helper to start real nodes: the release-shaped binary as a child process, on a random
//! 127.0.0.1 port, with its own data directory. Every node is killed when dropped, also when a
//! test fails.
#![allow(dead_code)]

pub mod cluster;
pub mod pki;
pub mod provider;
pub mod writers;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pizza_orders::auth::TokenKeys;
use pizza_orders::config::TokenSecret;
use pizza_orders::domain::{Timestamp, UserId};
use serde_json::{json, Value};

pub const SECRET: &str = "integration-test-secret-integration-test-secret";
pub const CLUSTER_SECRET: &str = "integration-test-cluster-secret-0123456789";
const START_DEADLINE: Duration = Duration::from_secs(30);

pub struct TestNode {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    pub config_file: PathBuf,
    extra: Vec<String>,
    env: Vec<(String, String)>,
    /// Where the node's log (stderr) goes, when a test reads it; else it is inherited.
    pub log: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

/// Settings every test node shares: open around the clock so any future grid slot is valid.
/// Under `PIZZA_TEST_TLS=1` every node serves HTTPS and talks mutual TLS to its peers.
fn write_config(dir: &Path) -> PathBuf {
    let file = dir.join("test.toml");
    let mut body = format!(
        "listen = \"127.0.0.1:0\"\n[auth]\njwt_secret = \"{SECRET}\"\n[cluster]\nsecret = \"{CLUSTER_SECRET}\"\n[slots]\nopens = \"00:00\"\ncloses = \"24:00\"\n[log]\nfilter = \"warn,openraft=error\"\n"
    );
    if pki::tls_everywhere() {
        let f = pki::shared();
        let (ca, cert, key) = (f.ca.display(), f.cert.display(), f.key.display());
        body = body.replace(
            "[cluster]\n",
            &format!("[cluster]\nca_file = \"{ca}\"\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n"),
        );
        body.push_str(&format!("[tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n"));
    }
    std::fs::write(&file, body).expect("write test config");
    file
}

impl TestNode {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Start with extra `--set key=value` overrides.
    pub fn start_with(sets: &[&str]) -> Self {
        Self::start_with_env(sets, &[])
    }

    /// Start with `--set` overrides and extra environment variables.
    pub fn start_with_env(sets: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_file = write_config(dir.path());
        let data_dir = dir.path().join("data");
        let extra: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let (child, base) = spawn(&config_file, &data_dir, &extra, &env, None);
        Self { child, base, data_dir, config_file, extra, env, log: None, _dir: Some(dir) }
    }

    /// Start with `auth_toml` in place of the test secret's `[auth]` section.
    pub fn start_with_auth(auth_toml: &str, sets: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_file = write_config(dir.path());
        Self::set_auth(&config_file, auth_toml);
        let data_dir = dir.path().join("data");
        let extra: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let (child, base) = spawn(&config_file, &data_dir, &extra, &[], None);
        Self { child, base, data_dir, config_file, extra, env: Vec::new(), log: None, _dir: Some(dir) }
    }

    /// Replace the `[auth]` section of the node's config file (takes effect on restart).
    pub fn set_auth(config_file: &Path, auth_toml: &str) {
        let body = std::fs::read_to_string(config_file).expect("read config");
        let start = body.find("[auth]").expect("[auth] section");
        let end = start + body[start..].find("\n[cluster]").expect("[cluster] after [auth]") + 1;
        let body = format!("{}{}\n{}", &body[..start], auth_toml.trim_end(), &body[end..]);
        std::fs::write(config_file, body).expect("write config");
    }

    /// Start with `--set` overrides, the node's log kept in a file for [`Self::log_text`].
    pub fn start_logged(sets: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_file = write_config(dir.path());
        let data_dir = dir.path().join("data");
        let log = dir.path().join("node.log");
        let extra: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let (child, base) = spawn(&config_file, &data_dir, &extra, &[], Some(&log));
        Self { child, base, data_dir, config_file, extra, env: Vec::new(), log: Some(log), _dir: Some(dir) }
    }

    /// What the node logged so far (started with [`Self::start_logged`]).
    pub fn log_text(&self) -> String {
        self.log.as_ref().and_then(|l| std::fs::read_to_string(l).ok()).unwrap_or_default()
    }

    /// Start a node on an existing data directory (for example a restored one).
    pub fn start_on(data_dir: &Path, sets: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_file = write_config(dir.path());
        let extra: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let (child, base) = spawn(&config_file, data_dir, &extra, &[], None);
        Self {
            child,
            base,
            data_dir: data_dir.to_owned(),
            config_file,
            extra,
            env: Vec::new(),
            log: None,
            _dir: Some(dir),
        }
    }

    /// `kill -9` the process: no shutdown code runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start again on the same data directory (after `kill`), with other overrides if given.
    pub fn restart_with(&mut self, sets: &[&str]) {
        self.kill();
        self.extra = sets.iter().map(|s| s.to_string()).collect();
        let (child, base) = spawn(&self.config_file, &self.data_dir, &self.extra, &self.env, self.log.as_deref());
        self.child = child;
        self.base = base;
    }

    /// Run `program` (another build of pizza-orders, such as the previous release) from the
    /// next restart on.
    pub fn set_program(&mut self, program: &Path) {
        self.env.retain(|(k, _)| k != PROGRAM_ENV);
        self.env.push((PROGRAM_ENV.to_owned(), program.display().to_string()));
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "node did not stop within 20 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

/// In a node's environment list: the program to start instead of this build (not passed on).
pub const PROGRAM_ENV: &str = "PIZZA_TEST_PROGRAM";

/// The binary with no inherited `PIZZA_ORDERS_*` variables, so tests are hermetic.
/// `PIZZA_BENCH_BINARY` runs another build instead (benchmarks compare two builds side by side).
pub fn binary() -> Command {
    program_command(std::env::var_os("PIZZA_BENCH_BINARY").unwrap_or_else(|| env!("CARGO_BIN_EXE_pizza-orders").into()))
}

/// `path` to run, without the test process's own `PIZZA_ORDERS_*` settings.
fn program_command(path: std::ffi::OsString) -> Command {
    let mut cmd = Command::new(path);
    for (key, _) in std::env::vars() {
        if key.starts_with("PIZZA_ORDERS_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Run the binary to completion (killed after 30 s): exit code, stdout, stderr.
pub fn run_cli(args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = binary();
    if pki::tls_everywhere() {
        command.env("PIZZA_ORDERS_CA_FILE", &pki::shared().ca);
    }
    let mut child = command.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("pizza-orders {args:?} did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// What a child process announces on its stdout after `prefix` (a node's listening URL, the
/// test provider's issuer), read on a thread of its own until the output closes.
pub fn announced(stdout: std::process::ChildStdout, prefix: &'static str) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(value) = line.strip_prefix(prefix) {
                let _ = tx.send(value.trim().to_owned());
            }
        }
    });
    rx
}

fn spawn(
    config: &Path,
    data_dir: &Path,
    sets: &[String],
    env: &[(String, String)],
    log: Option<&Path>,
) -> (Child, String) {
    let mut cmd = match env.iter().find(|(k, _)| k == PROGRAM_ENV) {
        Some((_, program)) => program_command(program.into()),
        None => binary(),
    };
    let env: Vec<(String, String)> = env.iter().filter(|(k, _)| k != PROGRAM_ENV).cloned().collect();
    cmd.arg("serve").arg("--config").arg(config).arg("--data-dir").arg(data_dir);
    for set in sets {
        cmd.arg("--set").arg(set);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let stderr = match log {
        Some(path) => Stdio::from(
            std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open the node's log file"),
        ),
        None => Stdio::inherit(),
    };
    let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().expect("spawn pizza-orders");
    let rx = announced(child.stdout.take().expect("stdout"), "pizza-orders listening on ");
    match rx.recv_timeout(START_DEADLINE) {
        Ok(base) => (child, base),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // Its output closed before it listened: it exited (its stderr says why).
            let status = child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            panic!("node exited at start ({status}) before it listened");
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            panic!("node did not report its address within {START_DEADLINE:?}");
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn token(user: &str) -> String {
    token_with(user, false, 3600, Timestamp::now())
}

pub fn token_with(user: &str, admin: bool, ttl_secs: u64, issued: Timestamp) -> String {
    let keys = TokenKeys::new(&TokenSecret::parse(SECRET.as_bytes()).expect("secret"));
    keys.mint(&UserId::parse(user).expect("user"), admin, Duration::from_secs(ttl_secs), issued).expect("mint")
}

/// An HTTP client that also trusts the test CA ([`pki::shared`]), for nodes serving HTTPS.
pub fn client() -> reqwest::Client {
    client_builder().timeout(Duration::from_secs(20)).build().expect("client")
}

pub fn client_builder() -> reqwest::ClientBuilder {
    let ca = std::fs::read(&pki::shared().ca).expect("test CA");
    let ca = reqwest::Certificate::from_pem(&ca).expect("test CA PEM");
    reqwest::Client::builder().no_proxy().add_root_certificate(ca)
}

/// The start of a 30-minute grid slot `days` days from now, `index` slots after midnight UTC.
pub fn slot(days: i64, index: i64) -> String {
    let day_ms = 86_400_000;
    let midnight = (Timestamp::now().millis() / day_ms + days) * day_ms;
    Timestamp::from_millis(midnight + index * 1_800_000).to_rfc3339()
}

pub fn order_body(slot: &str) -> Value {
    json!({ "address": "1 Main St", "size": "medium", "toppings": ["pepperoni"], "delivery_slot": slot })
}

pub async fn create(node: &TestNode, user: &str, body: &Value) -> reqwest::Response {
    client().post(node.url("/v1/orders")).bearer_auth(token(user)).json(body).send().await.expect("request")
}

/// GET a JSON document without authentication (for example `/v1/slots`).
pub async fn get_json(url: &str, query: &[(&str, &str)]) -> Value {
    client().get(url).query(query).send().await.expect("request").json().await.expect("JSON body")
}

/// Read a problem+json response and return its `type`.
/// GET `url` as `user` (their token) and return its JSON: an order, a list of them.
pub async fn get_as(url: &str, user: &str) -> Value {
    let response = client().get(url).bearer_auth(token(user)).send().await.expect("request");
    response.json().await.expect("JSON body")
}

pub async fn problem_type(response: reqwest::Response) -> String {
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem body");
    body["type"].as_str().expect("type").to_owned()
}

/// A chain of three stores: two in Berlin with overlapping areas (a radius and a drawn
/// polygon), one in Auckland (UTC+13 in December), and postcodes for each (whole ones, a prefix
/// and a range).
pub const CHAIN: &str = r#"
[menu]
currency = "EUR"
sizes = { small = 800, medium = 1050, large = 1300 }
toppings = { extra_cheese = 150, pepperoni = 200, mushroom = 120 }

[[stores]]
id = "mitte"
name = "Berlin Mitte"
latitude = 52.5290
longitude = 13.4010
time_zone = "Europe/Berlin"
slot_minutes = 60
capacity = 3
cutoff_minutes = 0
horizon_days = 400
hours = { mon = ["00:00-24:00"], tue = ["00:00-24:00"], wed = ["00:00-24:00"], thu = ["00:00-24:00"], fri = ["00:00-24:00"], sat = ["00:00-24:00"], sun = ["00:00-24:00"] }
delivery = { radius_km = 3.0, postcodes = ["10115", "101*"] }

[[stores]]
id = "kreuzberg"
name = "Berlin Kreuzberg"
latitude = 52.5010
longitude = 13.4180
time_zone = "Europe/Berlin"
capacity = 2
cutoff_minutes = 0
horizon_days = 400
hours = { mon = ["00:00-24:00"], tue = ["00:00-24:00"], wed = ["00:00-24:00"], thu = ["00:00-24:00"], fri = ["00:00-24:00"], sat = ["00:00-24:00"], sun = ["00:00-24:00"] }
delivery = { postcodes = ["10997", "10961-10999"], geojson = '{"type":"Polygon","coordinates":[[[13.38,52.485],[13.45,52.485],[13.45,52.512],[13.38,52.512],[13.38,52.485]]]}' }

[[stores]]
id = "auckland"
name = "Auckland Central"
latitude = -36.8446
longitude = 174.7669
time_zone = "Pacific/Auckland"
capacity = 4
cutoff_minutes = 0
horizon_days = 400
hours = { mon = ["00:00-01:00", "23:00-24:00"], tue = ["00:00-01:00", "23:00-24:00"], wed = ["00:00-01:00", "23:00-24:00"], thu = ["00:00-01:00", "23:00-24:00"], fri = ["00:00-01:00", "23:00-24:00"], sat = ["00:00-01:00", "23:00-24:00"], sun = ["00:00-01:00", "23:00-24:00"] }
delivery = { radius_km = 5.0, postcodes = ["1010"] }
"#;

/// Write [`CHAIN`] into `dir` and return its path, for `--set catalog_file=…`.
pub fn chain_file(dir: &std::path::Path) -> String {
    let path = dir.join("chain.toml");
    std::fs::write(&path, CHAIN).expect("write catalog");
    path.display().to_string()
}

/// GET a document with an admin token and return its JSON (for example `/admin/check`).
pub async fn admin_get_json(url: &str) -> Value {
    let response = client().get(url).bearer_auth(cluster::admin_token()).send().await.expect("request");
    response.json().await.expect("JSON body")
}
