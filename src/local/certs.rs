//! The PKI of a local API server, made the way controller-runtime's envtest makes it: a CA that
//! signs the serving certificate for 127.0.0.1, a client CA that signs an admin certificate in
//! `system:masters`, and a service-account signing key pair.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot generate the {what}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// PEM-encoded material of one API server.
pub struct ServerPki {
    pub ca_cert: String,
    pub serving_cert: String,
    pub serving_key: String,
    pub client_ca_cert: String,
    pub admin_cert: String,
    pub admin_key: String,
    pub sa_key: String,
    pub sa_public_key: String,
}

/// Paths of the PKI files as kube-apiserver's flags want them.
pub struct PkiFiles {
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub client_ca: PathBuf,
    pub sa_key: PathBuf,
    pub sa_public_key: PathBuf,
}

fn generated<T>(what: &'static str, r: Result<T, rcgen::Error>) -> Result<T, CertError> {
    r.map_err(|source| CertError::Generate { what, source })
}

/// The parameters of a self-signed CA certificate named `common_name`.
pub(crate) fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
}

impl ServerPki {
    pub fn generate() -> Result<ServerPki, CertError> {
        let ca = generated(
            "serving CA",
            CertifiedIssuer::self_signed(
                ca_params("cairn-local-ca"),
                generated("CA key", KeyPair::generate())?,
            ),
        )?;
        let serving_key = generated("serving key", KeyPair::generate())?;
        let mut serving = generated(
            "serving certificate",
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]),
        )?;
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        serving.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let serving_cert = generated("serving certificate", serving.signed_by(&serving_key, &ca))?;

        let client_ca = generated(
            "client CA",
            CertifiedIssuer::self_signed(
                ca_params("cairn-local-client-ca"),
                generated("client CA key", KeyPair::generate())?,
            ),
        )?;
        let admin_key = generated("admin key", KeyPair::generate())?;
        let mut admin = CertificateParams::default();
        admin
            .distinguished_name
            .push(DnType::CommonName, "cairn-admin");
        admin
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        admin.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let admin_cert = generated("admin certificate", admin.signed_by(&admin_key, &client_ca))?;

        let sa = generated("service-account key", KeyPair::generate())?;
        Ok(ServerPki {
            ca_cert: ca.pem(),
            serving_cert: serving_cert.pem(),
            serving_key: serving_key.serialize_pem(),
            client_ca_cert: client_ca.pem(),
            admin_cert: admin_cert.pem(),
            admin_key: admin_key.serialize_pem(),
            sa_key: sa.serialize_pem(),
            sa_public_key: sa.public_key_pem(),
        })
    }

    /// Writes the server-side files into `dir` (keys readable by the owner only).
    pub fn write(&self, dir: &Path) -> Result<PkiFiles, CertError> {
        let write = |name: &str, content: &str| -> Result<PathBuf, CertError> {
            let path = dir.join(name);
            std::fs::write(&path, content).map_err(|source| CertError::Write {
                path: path.clone(),
                source,
            })?;
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            Ok(path)
        };
        Ok(PkiFiles {
            serving_cert: write("apiserver.crt", &self.serving_cert)?,
            serving_key: write("apiserver.key", &self.serving_key)?,
            client_ca: write("client-ca.crt", &self.client_ca_cert)?,
            sa_key: write("sa.key", &self.sa_key)?,
            sa_public_key: write("sa.pub", &self.sa_public_key)?,
        })
    }
}
