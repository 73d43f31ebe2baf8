//! cert-manager, in every API server where its Deployments (labelled
//! `clusterctl.cluster.x-k8s.io/core: cert-manager`, as clusterctl installs it) are Available:
//! each Certificate whose Secret is missing gets one, a `kubernetes.io/tls` Secret holding a
//! certificate for its `dnsNames` that signs itself (the providers' Issuers are `selfSigned`,
//! so `ca.crt` is the certificate), and its Ready condition. Where cert-manager does not run
//! nothing is issued, and a provider whose webhook serving Secret is missing does not start
//! (workloads.rs), as on a real cluster.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rcgen::{CertificateParams, KeyPair};
use serde_json::{Value, json};

use super::objects::{ident, is_deleting, name, object_ref, s};
use super::schema::Server;
use super::status::{Cond, conditions, is_true};
use super::{Report, SimulatorError};
use crate::apply::health::health;
use crate::pivot::providers::CORE_LABEL;

/// The label selector of cert-manager's own objects.
pub const SELECTOR: &str = "clusterctl.cluster.x-k8s.io/core=cert-manager";
const CERTIFICATE_API: &str = "cert-manager.io/v1";

/// Whether `obj` is one of cert-manager's components.
pub fn is_cert_manager(obj: &Value) -> bool {
    crate::render::kinds::label(obj, CORE_LABEL) == Some("cert-manager")
}

/// Issues the Certificates of `server` that have no Secret, if cert-manager runs there.
pub async fn reconcile(server: &Server, report: &mut Report) -> Result<(), SimulatorError> {
    let deployments = server
        .list("apps/v1", "Deployment", None, Some(SELECTOR))
        .await?;
    if deployments.is_empty() || !deployments.iter().all(|d| health(d).is_ready()) {
        return Ok(());
    }

    for certificate in server
        .list(CERTIFICATE_API, "Certificate", None, None)
        .await?
    {
        let secret_name = s(&certificate, "/spec/secretName");
        if is_deleting(&certificate) || secret_name.is_empty() {
            continue;
        }
        let namespace = s(&certificate, "/metadata/namespace");
        let secret = ident("v1", "Secret", namespace, secret_name);
        if server.fetch(&secret).await?.is_none() {
            server
                .apply(&issue(&certificate)?, "issue a certificate")
                .await?;
            report.created.push(object_ref(&secret));
        }
        if !is_true(&certificate, "Ready") {
            let status = json!({
                "conditions": conditions(
                    certificate.pointer("/status/conditions"),
                    &[Cond::new("Ready", true, "Ready")
                        .msg("Certificate is up to date and has not expired")],
                    None,
                ),
                "revision": 1,
            });
            server
                .set_status(&certificate, status, "set the Certificate status")
                .await?;
        }
    }
    Ok(())
}

/// The Secret cert-manager writes for `certificate`: a self-signed certificate for its
/// `dnsNames` (its `commonName` when it has none), its key, and itself as `ca.crt`.
fn issue(certificate: &Value) -> Result<Value, SimulatorError> {
    let failed = |source| SimulatorError::Issue {
        certificate: object_ref(certificate),
        source,
    };
    let mut names: Vec<String> = certificate
        .pointer("/spec/dnsNames")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    if names.is_empty() {
        names.push(match s(certificate, "/spec/commonName") {
            "" => name(certificate).to_string(),
            common => common.to_string(),
        });
    }
    let key = KeyPair::generate().map_err(failed)?;
    let cert = CertificateParams::new(names)
        .and_then(|params| params.self_signed(&key))
        .map_err(failed)?;
    let pem = B64.encode(cert.pem());
    let namespace = s(certificate, "/metadata/namespace");
    let mut secret = ident(
        "v1",
        "Secret",
        namespace,
        s(certificate, "/spec/secretName"),
    );
    secret["metadata"]["labels"] = json!({"controller.cert-manager.io/fao": "true"});
    secret["metadata"]["annotations"] = json!({
        "cert-manager.io/certificate-name": name(certificate),
        "cert-manager.io/issuer-name": s(certificate, "/spec/issuerRef/name"),
        "cert-manager.io/issuer-kind": s(certificate, "/spec/issuerRef/kind"),
    });
    secret["type"] = "kubernetes.io/tls".into();
    secret["data"] = json!({
        "tls.crt": pem,
        "tls.key": B64.encode(key.serialize_pem()),
        "ca.crt": pem,
    });
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_issued_for_its_dns_names_into_its_secret() {
        let certificate = json!({
            "apiVersion": CERTIFICATE_API, "kind": "Certificate",
            "metadata": {"name": "capi-serving-cert", "namespace": "capi-system"},
            "spec": {
                "secretName": "capi-webhook-service-cert",
                "dnsNames": ["capi-webhook-service.capi-system.svc"],
                "issuerRef": {"kind": "Issuer", "name": "capi-selfsigned-issuer"},
            },
        });
        let secret = issue(&certificate).unwrap();
        assert_eq!(secret["metadata"]["name"], "capi-webhook-service-cert");
        assert_eq!(secret["metadata"]["namespace"], "capi-system");
        assert_eq!(secret["type"], "kubernetes.io/tls");
        let pem = B64
            .decode(secret["data"]["tls.crt"].as_str().unwrap())
            .unwrap();
        let (_, der) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let cert = der.parse_x509().unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            format!("{:?}", san.value.general_names),
            r#"[DNSName("capi-webhook-service.capi-system.svc")]"#
        );
        assert_eq!(secret["data"]["ca.crt"], secret["data"]["tls.crt"]);
        assert!(
            secret["data"]["tls.key"]
                .as_str()
                .is_some_and(|k| !k.is_empty())
        );
    }
}
