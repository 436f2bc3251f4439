//! What keeps a repository's jobs inside their own identity: the egress
//! policy that puts the node's role out of reach, and the Pod Security
//! labels of the repository namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::config::PodSecurityLevel;

/// The name of the egress policy in every repository namespace.
pub const METADATA_POLICY: &str = "runner-identity-deny-instance-metadata";

/// The instance metadata service (IMDS), IPv4 and IPv6: the node's role.
pub const INSTANCE_METADATA: [&str; 2] = ["169.254.169.254/32", "fd00:ec2::254/128"];

/// The EKS Pod Identity agent, which must stay reachable.
pub const POD_IDENTITY_AGENT: [&str; 2] = ["169.254.170.23/32", "fd00:ec2::23/128"];

/// Egress from every pod of the namespace to anything but the instance
/// metadata service. NetworkPolicies only add allowances, so the one rule
/// allows all of IPv4 and IPv6 except IMDS: the Pod Identity agent, cluster
/// DNS and the API server stay reachable.
pub fn instance_metadata_policy(metadata: ObjectMeta) -> NetworkPolicy {
    let except = |all: &str, imds: &str| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: all.to_owned(),
            except: Some(vec![imds.to_owned()]),
        }),
        ..Default::default()
    };
    NetworkPolicy {
        metadata,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Egress".into()]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![
                    except("0.0.0.0/0", INSTANCE_METADATA[0]),
                    except("::/0", INSTANCE_METADATA[1]),
                ]),
                ports: None,
            }]),
            ..Default::default()
        }),
    }
}

/// The Pod Security admission labels of a namespace at `level`.
pub fn pod_security_labels(level: PodSecurityLevel) -> BTreeMap<String, String> {
    ["enforce", "warn", "audit"]
        .iter()
        .map(|mode| {
            (
                format!("pod-security.kubernetes.io/{mode}"),
                level.as_str().to_owned(),
            )
        })
        .collect()
}

/// Whether `address` (v4 or v6) falls in one of the policy's `cidr`s minus
/// its `except`s: what a CNI enforcing the policy lets through.
pub fn egress_allowed(policy: &NetworkPolicy, address: std::net::IpAddr) -> bool {
    let Some(rules) = policy.spec.as_ref().and_then(|s| s.egress.as_ref()) else {
        return false;
    };
    rules.iter().any(|rule| match &rule.to {
        None => true,
        Some(peers) => peers.iter().any(|peer| {
            peer.ip_block.as_ref().is_some_and(|block| {
                in_cidr(address, &block.cidr)
                    && !block.except.iter().flatten().any(|e| in_cidr(address, e))
            })
        }),
    })
}

fn in_cidr(address: std::net::IpAddr, cidr: &str) -> bool {
    use std::net::IpAddr;
    let Some((net, len)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<IpAddr>(), len.parse::<u32>()) else {
        return false;
    };
    match (address, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_blocks_imds_and_nothing_else_the_job_needs() {
        let policy = instance_metadata_policy(ObjectMeta::default());
        let allowed = |a: &str| egress_allowed(&policy, a.parse().unwrap());
        assert!(!allowed("169.254.169.254"));
        assert!(!allowed("fd00:ec2::254"));
        // The Pod Identity agent, cluster DNS, the API server, STS.
        for open in [
            "169.254.170.23",
            "fd00:ec2::23",
            "10.100.0.10",
            "172.20.0.1",
            "52.94.0.1",
        ] {
            assert!(allowed(open), "{open}");
        }
        assert!(allowed("169.254.169.253"), "only the one address is denied");
        let spec = policy.spec.unwrap();
        assert_eq!(spec.policy_types.unwrap(), ["Egress"]);
        assert!(spec.ingress.is_none(), "ingress is not restricted");
    }

    #[test]
    fn every_pod_security_mode_is_labelled() {
        let labels = pod_security_labels(PodSecurityLevel::Baseline);
        assert_eq!(labels.len(), 3);
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "baseline");
        assert_eq!(labels["pod-security.kubernetes.io/audit"], "baseline");
    }
}
