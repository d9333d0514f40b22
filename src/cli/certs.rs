//! `pizza-orders certs init`: a development CA and one certificate per node (rcgen), for HTTPS
//! and mutual TLS between nodes. Production certificates come from the operator's own CA.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{Datelike, Duration as Days, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("{} already exists; choose another --out or remove it (certificates are never overwritten)", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("--nodes must be between 1 and 99")]
    Nodes,
    #[error("--days must be between 1 and 3650")]
    Days,
    #[error("cannot make the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// What `certs init` wrote.
#[derive(Debug)]
pub struct Written {
    pub files: Vec<PathBuf>,
}

/// Names every node certificate carries besides `node<i>` and the extra `sans`.
const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

fn validity(params: &mut CertificateParams, days: i64) {
    let at = |d: chrono::NaiveDate| {
        rcgen::date_time_ymd(d.year(), u8::try_from(d.month()).unwrap_or(1), u8::try_from(d.day()).unwrap_or(1))
    };
    let today = Utc::now().date_naive();
    // A day back, for clocks a little behind.
    params.not_before = at(today - Days::days(1));
    params.not_after = at(today + Days::days(days));
}

/// Write `ca.pem`, `ca-key.pem` and `node<i>.pem`, `node<i>-key.pem` for i in 1..=nodes into
/// `out`, refusing to overwrite any file. Keys are written mode 0600.
pub fn init(out: &Path, nodes: u32, sans: &[String], days: i64) -> Result<Written, CertsError> {
    if !(1..=99).contains(&nodes) {
        return Err(CertsError::Nodes);
    }
    if !(1..=3650).contains(&days) {
        return Err(CertsError::Days);
    }
    let mut names = vec![PathBuf::from("ca.pem"), PathBuf::from("ca-key.pem")];
    for i in 1..=nodes {
        names.push(format!("node{i}.pem").into());
        names.push(format!("node{i}-key.pem").into());
    }
    for name in &names {
        let path = out.join(name);
        if path.exists() {
            return Err(CertsError::Exists(path));
        }
    }
    std::fs::create_dir_all(out).map_err(|source| CertsError::Write { path: out.to_owned(), source })?;

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(DnType::CommonName, "pizza-orders development CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut ca, days);
    let ca_cert = ca.self_signed(&ca_key)?;
    let mut files = Vec::new();
    files.push(write(out, "ca.pem", &ca_cert.pem(), false)?);
    files.push(write(out, "ca-key.pem", &ca_key.serialize_pem(), true)?);
    let issuer = Issuer::new(ca, ca_key);

    for i in 1..=nodes {
        let mut alt: Vec<String> = LOCAL_NAMES.iter().map(|s| (*s).to_owned()).collect();
        alt.push(format!("node{i}"));
        alt.extend(sans.iter().cloned());
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(alt)?;
        params.distinguished_name.push(DnType::CommonName, format!("node{i}"));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        validity(&mut params, days);
        let cert = params.signed_by(&key, &issuer)?;
        files.push(write(out, &format!("node{i}.pem"), &cert.pem(), false)?);
        files.push(write(out, &format!("node{i}-key.pem"), &key.serialize_pem(), true)?);
    }
    Ok(Written { files })
}

fn write(dir: &Path, name: &str, body: &str, secret: bool) -> Result<PathBuf, CertsError> {
    let path = dir.join(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let result = options.open(&path).and_then(|mut f| f.write_all(body.as_bytes()).and_then(|()| f.sync_all()));
    result.map_err(|source| CertsError::Write { path: path.clone(), source })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls;

    #[test]
    fn node_certificates_chain_to_the_ca_and_nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let written = init(dir.path(), 2, &["pizza.example".into()], 30).unwrap();
        assert_eq!(written.files.len(), 6);
        let roots = tls::load_roots(&dir.path().join("ca.pem")).unwrap();
        assert_eq!(roots.len(), 1);
        let config = crate::config::PeerTlsConfig {
            ca_file: dir.path().join("ca.pem"),
            cert_file: dir.path().join("node2.pem"),
            key_file: dir.path().join("node2-key.pem"),
        };
        tls::peer_client_config(&config).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("node1-key.pem")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = init(dir.path(), 1, &[], 30).unwrap_err().to_string();
        assert!(again.contains("ca.pem already exists"), "{again}");
        assert!(matches!(init(dir.path(), 0, &[], 30), Err(CertsError::Nodes)));
    }
}
