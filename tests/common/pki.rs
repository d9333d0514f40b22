//! Certificates for tests, made with rcgen: a cluster CA and node certificates, and the bad
//! ones a TLS test needs (expired, another CA's, self-signed).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

/// A certificate and its key, PEM.
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

/// Every name a test node may be reached by: localhost and the loopback addresses the fault
/// suite gives its nodes (127.0.0.1 to 127.0.0.9).
fn leaf_params(name: &str) -> CertificateParams {
    let mut names = vec!["localhost".to_owned(), name.to_owned()];
    names.extend((1..=9).map(|i| format!("127.0.0.{i}")));
    let mut params = CertificateParams::new(names).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let pem = params.self_signed(&key).expect("CA").pem();
        Self { issuer: Issuer::new(params, key), pem }
    }

    /// A node certificate for localhost / 127.0.0.1, valid now.
    pub fn leaf(&self, name: &str) -> Leaf {
        self.sign(leaf_params(name))
    }

    /// A node certificate that expired in 2020.
    pub fn expired_leaf(&self, name: &str) -> Leaf {
        let mut params = leaf_params(name);
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Leaf { cert: cert.pem(), key: key.serialize_pem() }
    }
}

/// A certificate that signs itself: no CA vouches for it.
pub fn self_signed(name: &str) -> Leaf {
    let key = KeyPair::generate().expect("key");
    let cert = leaf_params(name).self_signed(&key).expect("self-signed");
    Leaf { cert: cert.pem(), key: key.serialize_pem() }
}

/// Where a node's TLS files are.
#[derive(Clone, Debug)]
pub struct Files {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Files {
    /// Write `ca` and `leaf` into `dir` as `<name>-ca.pem`, `<name>.pem`, `<name>-key.pem`.
    pub fn write(dir: &Path, name: &str, ca_pem: &str, leaf: &Leaf) -> Self {
        std::fs::create_dir_all(dir).expect("cert dir");
        let files = Self {
            ca: dir.join(format!("{name}-ca.pem")),
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&files.ca, ca_pem).expect("write CA");
        std::fs::write(&files.cert, &leaf.cert).expect("write cert");
        std::fs::write(&files.key, &leaf.key).expect("write key");
        files
    }

    /// `--set` overrides for HTTPS and mutual TLS with these files.
    pub fn sets(&self) -> Vec<String> {
        vec![
            format!("tls.cert_file={}", self.cert.display()),
            format!("tls.key_file={}", self.key.display()),
            format!("cluster.ca_file={}", self.ca.display()),
            format!("cluster.cert_file={}", self.cert.display()),
            format!("cluster.key_file={}", self.key.display()),
        ]
    }
}

/// The test process's cluster CA and one node certificate every test node may use, written
/// once under the target directory.
pub fn shared() -> &'static Files {
    &shared_pki().0
}

/// The CA behind [`shared`], to sign more certificates with it.
pub fn shared_ca() -> &'static Ca {
    &shared_pki().1
}

fn shared_pki() -> &'static (Files, Ca) {
    static SHARED: OnceLock<(Files, Ca)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("test-certs-{}", std::process::id()));
        let ca = Ca::new("pizza-orders test CA");
        (Files::write(&dir, "node", &ca.pem, &ca.leaf("node")), ca)
    })
}

/// True when the whole test run should use HTTPS and mutual TLS (`PIZZA_TEST_TLS=1`), as CI
/// does for the cluster and fault suites.
pub fn tls_everywhere() -> bool {
    std::env::var("PIZZA_TEST_TLS").is_ok_and(|v| v == "1")
}

/// `https` under [`tls_everywhere`], else `http`.
pub fn scheme() -> &'static str {
    if tls_everywhere() {
        "https"
    } else {
        "http"
    }
}
