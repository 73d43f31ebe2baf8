//! Kubeconfigs whose user is a ServiceAccount, with a bound token from a real TokenRequest: what
//! a pod's in-cluster config amounts to, so a process the local environment runs in a pod's
//! place has exactly that account's rights.

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};

/// How long a token lasts: a day, longer than any local run without a restart.
const TOKEN_SECONDS: i64 = 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("request a token for ServiceAccount {namespace}/{name}")]
    Request {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("the TokenRequest for ServiceAccount {namespace}/{name} returned no token")]
    NoToken { namespace: String, name: String },
    #[error("the admin kubeconfig is not YAML")]
    Kubeconfig(#[source] serde_yaml::Error),
    #[error("the admin kubeconfig names no user")]
    NoUser,
}

/// `admin_kubeconfig` (its server and CA) with the user replaced by a token of ServiceAccount
/// `namespace/name`, requested through `admin` (the account must exist).
pub async fn service_account_kubeconfig(
    admin: &kube::Client,
    admin_kubeconfig: &str,
    namespace: &str,
    name: &str,
) -> Result<String, TokenError> {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(TOKEN_SECONDS),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let answer = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .map_err(|source| TokenError::Request {
            namespace: namespace.to_string(),
            name: name.to_string(),
            source,
        })?;
    let token = answer
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TokenError::NoToken {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })?;
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(admin_kubeconfig).map_err(TokenError::Kubeconfig)?;
    let entry = config
        .get_mut("users")
        .and_then(|users| users.get_mut(0))
        .and_then(serde_yaml::Value::as_mapping_mut)
        .ok_or(TokenError::NoUser)?;
    let mut user = serde_yaml::Mapping::new();
    user.insert("token".into(), token.into());
    entry.insert("user".into(), serde_yaml::Value::Mapping(user));
    serde_yaml::to_string(&config).map_err(TokenError::Kubeconfig)
}
