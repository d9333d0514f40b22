//! A real OpenID Connect provider for the sign-in tests: panva's OpenID-certified
//! `oidc-provider` (Node), run from `tests/oidc-provider/provider.mjs` on a random 127.0.0.1
//! port. `.ci/web-tools` installs it (into `target/oidc-provider`); without Node or the package
//! the tests using it fail saying so. Stopped (with its process group) when dropped.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub struct OidcProvider {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`: the issuer, and where its discovery document is.
    pub issuer: String,
    port: u16,
    /// The signing keys (private JWKs; the first signs).
    pub keys_file: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc-provider/provider.mjs")
}

fn node() -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(script());
    cmd
}

impl OidcProvider {
    /// Start it with one ES256 key; `env`: the script's settings (`ACCESS_TTL`, …).
    pub fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys_file = dir.path().join("jwks.json");
        let key = Self::generate("ES256", "provider-key-1");
        std::fs::write(&keys_file, serde_json::json!({ "keys": [key] }).to_string())
            .expect("write the provider's keys");
        let log = dir.path().join("provider.log");
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut provider = Self { child: None, issuer: String::new(), port: 0, keys_file, log, env, _dir: dir };
        provider.launch();
        provider
    }

    fn launch(&mut self) {
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("provider log");
        let mut child = node()
            .process_group(0)
            .env("PORT", self.port.to_string())
            .env("KEYS_FILE", &self.keys_file)
            // The three pages, on a node's any loopback port (the client is a native one).
            .env("REDIRECT_URIS", "http://127.0.0.1/ http://127.0.0.1/kitchen/ http://127.0.0.1/admin/")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start the test identity provider: is Node.js installed? (`bash .ci/test` installs what the tests need)");
        let rx = super::announced(child.stdout.take().expect("stdout"), "ISSUER ");
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(issuer) => {
                self.port = issuer.rsplit(':').next().and_then(|p| p.parse().ok()).expect("the issuer's port");
                self.issuer = issuer;
                self.child = Some(child);
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the test identity provider did not start (run `bash .ci/web-tools` to install oidc-provider); its log:\n{}",
                    self.log()
                );
            }
        }
    }

    /// Stop it (SIGTERM, then wait): its keys stay known to the nodes that read them.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = i32::try_from(child.id()).ok().and_then(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let _ = child.wait();
        }
    }

    /// Start it again on the same port (its keys file as it is now).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// A new key first in the keys file (it signs from now), the old ones kept after it (the
    /// provider still publishes them), and the provider restarted: a rotation.
    pub fn rotate(&mut self, alg: &str, kid: &str) {
        let mut keys: Value = serde_json::from_str(&std::fs::read_to_string(&self.keys_file).unwrap()).unwrap();
        keys["keys"].as_array_mut().unwrap().insert(0, Self::generate(alg, kid));
        std::fs::write(&self.keys_file, keys.to_string()).unwrap();
        self.restart();
    }

    /// A private JWK made by the script (node:crypto).
    pub fn generate(alg: &str, kid: &str) -> Value {
        let out = node().args(["genkey", alg, kid]).stderr(Stdio::null()).output().expect("node: genkey");
        assert!(out.status.success(), "genkey failed: {out:?}");
        serde_json::from_slice(&out.stdout).expect("a JWK")
    }

    /// A token over `claims` signed with the provider's current key, the way the provider signs
    /// (jose): what only the provider could have made.
    pub fn sign(&self, claims: &Value) -> String {
        let mut child = node()
            .arg("sign")
            .env("KEYS_FILE", &self.keys_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node: sign");
        child.stdin.take().unwrap().write_all(claims.to_string().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "sign failed: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// The provider's public keys as it publishes them (`jwks_uri`).
    pub async fn published_keys(&self) -> Value {
        let url = format!("{}/jwks", self.issuer);
        let response = reqwest::get(&url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(response.status().is_success(), "{url}: {}", response.status());
        response.json().await.expect("the JWKS")
    }

    /// What it logged (stderr): one `GRANT <grant_type>` line per token it issued.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(group) = i32::try_from(child.id()).ok().and_then(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
