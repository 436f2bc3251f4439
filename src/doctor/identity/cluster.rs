//! The cluster's side: the IAM OIDC provider of its issuer, and whether the
//! kubeconfig's cluster is the one `--cluster` names.

use super::*;

/// The cluster's IAM OIDC provider for `issuer` (host and path): it exists,
/// with client id `sts.amazonaws.com`.
pub async fn oidc_provider(aws: &Clients, issuer: &str, options: &Options<'_>) -> Vec<Finding> {
    let here = object("OpenIDConnectProvider", "", issuer);
    let providers = match aws.iam.list_open_id_connect_providers().send().await {
        Ok(l) => l.open_id_connect_provider_list().to_vec(),
        Err(e) => {
            return vec![unread(
                "oidc-provider",
                here,
                "list IAM OIDC providers",
                &e,
                "iam:ListOpenIDConnectProviders and iam:GetOpenIDConnectProvider",
            )];
        }
    };
    let Some(arn) = providers
        .iter()
        .filter_map(|p| p.arn())
        .find(|arn| arn.ends_with(&format!(":oidc-provider/{issuer}")))
    else {
        let cluster = options.cluster.as_deref().unwrap_or("<cluster>");
        return vec![Finding::new(
            Severity::Error,
            "oidc-provider",
            here,
            format!(
                "no IAM OIDC provider for the cluster's issuer https://{issuer}: every IRSA \
                 AssumeRoleWithWebIdentity fails (InvalidIdentityToken: no OpenIDConnect provider found)"
            ),
            format!("eksctl utils associate-iam-oidc-provider --cluster {cluster} --approve"),
        )];
    };
    match aws
        .iam
        .get_open_id_connect_provider()
        .open_id_connect_provider_arn(arn)
        .send()
        .await
    {
        Ok(p) if !p.client_id_list().iter().any(|c| c == STS_AUDIENCE) => vec![Finding::new(
            Severity::Error,
            "oidc-provider",
            here,
            format!(
                "the provider's client ids {:?} lack {STS_AUDIENCE}",
                p.client_id_list()
            ),
            format!(
                "aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn {arn} --client-id {STS_AUDIENCE}"
            ),
        )],
        Ok(_) => Vec::new(),
        Err(e) => vec![unread(
            "oidc-provider",
            here,
            "read the provider",
            &e,
            "iam:GetOpenIDConnectProvider",
        )],
    }
}

/// The EKS cluster's issuer equals the one its tokens carry and the configured one.
pub async fn cluster_issuer<'a>(
    aws: &Clients,
    cluster: &str,
    seen: impl Iterator<Item = &'a String>,
    options: &Options<'_>,
) -> Vec<Finding> {
    let here = object("Cluster", "", cluster);
    let described = match aws.eks.describe_cluster().name(cluster).send().await {
        Ok(d) => d,
        Err(e) => {
            return vec![unread(
                "cluster-identity",
                here,
                "describe the cluster",
                &e,
                "eks:DescribeCluster (or check --cluster)",
            )];
        }
    };
    let Some(issuer) = described
        .cluster()
        .and_then(|c| c.identity())
        .and_then(|i| i.oidc())
        .and_then(|o| o.issuer())
        .map(|i| {
            i.trim_start_matches("https://")
                .trim_end_matches('/')
                .to_owned()
        })
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for token_issuer in seen {
        if *token_issuer != issuer {
            out.push(Finding::new(
                Severity::Error,
                "cluster-identity",
                here.clone(),
                format!("the cluster's tokens are issued by {token_issuer}, but EKS reports {issuer}: this kubeconfig is not the cluster --cluster names"),
                "check --cluster and --context",
            ));
        }
    }
    if let Some(configured) = options
        .settings
        .and_then(|s| s.issuer_host_path.as_deref())
        .filter(|c| *c != issuer)
    {
        out.push(Finding::new(
            Severity::Error,
            "cluster-identity",
            here,
            format!("cluster.oidcIssuer is {configured}, EKS reports {issuer}: planned trust policies name the wrong provider"),
            format!("set cluster.oidcIssuer: https://{issuer} and re-apply"),
        ));
    }
    out
}
