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
#[cfg(any(test, feature = "test-support"))]
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

#[cfg(any(test, feature = "test-support"))]
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

#[cfg(any(test, feature = "test-support"))]
/// Capabilities the Pod Security Standard `baseline` allows to add.
const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

#[cfg(any(test, feature = "test-support"))]
/// Sysctls `baseline` allows.
const SAFE_SYSCTLS: [&str; 5] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
];

/// What of `spec` the Pod Security Standard `baseline` forbids (host
/// namespaces, privileged containers, added capabilities beyond its list,
/// hostPath volumes, host ports, an unmasked /proc, unconfined seccomp,
/// unsafe sysctls); empty when the pod passes.
#[cfg(any(test, feature = "test-support"))]
pub fn baseline_violations(spec: &k8s_openapi::api::core::v1::PodSpec) -> Vec<String> {
    let mut out = Vec::new();
    for (set, what) in [
        (spec.host_network, "hostNetwork"),
        (spec.host_pid, "hostPID"),
        (spec.host_ipc, "hostIPC"),
    ] {
        if set == Some(true) {
            out.push(format!("{what}: true"));
        }
    }
    for v in spec.volumes.iter().flatten() {
        if v.host_path.is_some() {
            out.push(format!("volume {} is a hostPath", v.name));
        }
    }
    let pod_seccomp = spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref());
    if pod_seccomp.is_some_and(|p| p.type_ == "Unconfined") {
        out.push("pod seccompProfile Unconfined".into());
    }
    for sysctl in spec
        .security_context
        .as_ref()
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
    {
        if !SAFE_SYSCTLS.contains(&sysctl.name.as_str()) {
            out.push(format!("sysctl {}", sysctl.name));
        }
    }
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        let sc = c.security_context.as_ref();
        if sc.and_then(|s| s.privileged) == Some(true) {
            out.push(format!("container {} is privileged", c.name));
        }
        for cap in sc
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|c| c.add.as_ref())
            .into_iter()
            .flatten()
        {
            if !BASELINE_CAPABILITIES.contains(&cap.as_str()) {
                out.push(format!("container {} adds capability {cap}", c.name));
            }
        }
        if sc
            .and_then(|s| s.proc_mount.as_deref())
            .is_some_and(|m| m != "Default")
        {
            out.push(format!("container {} unmasks /proc", c.name));
        }
        if sc
            .and_then(|s| s.seccomp_profile.as_ref())
            .is_some_and(|p| p.type_ == "Unconfined")
        {
            out.push(format!("container {} seccompProfile Unconfined", c.name));
        }
        for port in c.ports.iter().flatten() {
            if port.host_port.is_some_and(|p| p != 0) {
                out.push(format!("container {} uses hostPort", c.name));
            }
        }
    }
    out
}

#[cfg(test)]
mod baseline_tests {
    //! The workflow and step pods runner-container-hooks create (v0.7.0's
    //! `createPod`/`createJob`, v0.8.1's `createJobPod`/`createContainerStepPod`,
    //! read from their source), merged with the hook template a real plan
    //! renders (each flavour's), pass `baseline`.
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    /// The `spec` of the hook template planned for a repository with
    /// `hooks` (`kubernetes` or `kubernetes-novolume`), as rendered.
    fn template(hooks: &str) -> serde_json::Value {
        let text = format!(
            "github:\n  owner: acme\nrepositories: [api]\n\
             cluster:\n  name: prod\n  oidcIssuer: https://oidc.eks.us-east-1.amazonaws.com/id/X\n\
             aws:\n  accountId: \"111122223333\"\n  mode: irsa\nkubernetes:\n  hooks: {hooks}\n"
        );
        let settings = crate::config::parse(&text, std::path::Path::new("t.yaml")).unwrap();
        let templates = crate::templates::Templates::load(None).unwrap();
        let plan = crate::plan::plan(&settings, &templates).unwrap();
        let repo = &plan.repositories[0];
        let rendered =
            crate::plan::check_hook_template(repo.hook_template_text().unwrap(), &repo.names)
                .unwrap();
        serde_json::to_value(rendered.spec.unwrap()).unwrap()
    }

    /// The hooks' merge: the template's pod-level fields win; its containers
    /// (`$job`) merge into the job container.
    fn merged(mut pod: serde_json::Value, template: &serde_json::Value) -> PodSpec {
        let mut template = template.clone();
        let containers = template
            .as_object_mut()
            .and_then(|t| t.remove("containers"))
            .unwrap_or_default();
        if let (Some(p), Some(t)) = (pod.as_object_mut(), template.as_object()) {
            p.extend(t.clone());
        }
        for c in containers.as_array().into_iter().flatten() {
            if c["name"] == "$job"
                && let (Some(job), Some(extra)) =
                    (pod["containers"][0].as_object_mut(), c.as_object())
            {
                job.extend(extra.clone().into_iter().filter(|(k, _)| k != "name"));
            }
        }
        spec(pod)
    }

    #[test]
    fn the_hooks_pods_pass_baseline() {
        let job_container = json!({
            "name": "job", "image": "node:20", "command": ["tail", "-f", "/dev/null"],
            "workingDir": "/__w/app/app",
            "volumeMounts": [{"name": "work", "mountPath": "/__w", "subPath": "_work"}],
            "env": [{"name": "GITHUB_ACTIONS", "value": "true"}]
        });
        let v07_job_pod = json!({
            "containers": [job_container.clone(), {"name": "redis", "image": "redis:7"}],
            "restartPolicy": "Never",
            "nodeName": "ip-10-0-0-1",
            "volumes": [{"name": "work", "persistentVolumeClaim": {"claimName": "runner-work"}}],
            "imagePullSecrets": [{"name": "runner-docker-secret"}]
        });
        let v07_step_job = json!({
            "containers": [job_container.clone()],
            "restartPolicy": "Never",
            "volumes": [{"name": "work", "persistentVolumeClaim": {"claimName": "runner-work"}}]
        });
        let empty = |n: &str| json!({"name": n, "emptyDir": {}});
        let v08_job_pod = json!({
            "containers": [job_container.clone()],
            "initContainers": [{
                "name": "fs-init", "image": "ghcr.io/actions/actions-runner:latest",
                "command": ["sh", "-c", "mkdir -p /mnt/externals"],
                "securityContext": {"runAsGroup": 1001, "runAsUser": 1001}
            }],
            "restartPolicy": "Never",
            "volumes": [empty("externals"), empty("github"), empty("work")]
        });
        let v08_step_pod = json!({
            "containers": [job_container],
            "restartPolicy": "Never",
            "volumes": [empty("externals"), empty("github"), empty("work")]
        });
        let v07 = template("kubernetes");
        let v08 = template("kubernetes-novolume");
        for t in [&v07, &v08] {
            assert_eq!(t["serviceAccountName"], "gha-job", "{t}");
        }
        for (name, pod, template) in [
            ("v0.7.0 job pod", v07_job_pod, &v07),
            ("v0.7.0 step job", v07_step_job, &v07),
            ("v0.8.1 job pod", v08_job_pod, &v08),
            ("v0.8.1 step pod", v08_step_pod, &v08),
        ] {
            let pod = merged(pod, template);
            assert_eq!(pod.service_account_name.as_deref(), Some("gha-job"));
            let violations = baseline_violations(&pod);
            assert!(violations.is_empty(), "{name}: {violations:?}");
        }
        // The check is live: a template that made the pod privileged fails it.
        let mut bad = v08.clone();
        bad["hostNetwork"] = json!(true);
        assert!(!baseline_violations(&merged(v08_step_pod_again(), &bad)).is_empty());
    }

    fn v08_step_pod_again() -> serde_json::Value {
        json!({"containers": [{"name": "job", "image": "node:20"}], "restartPolicy": "Never"})
    }

    #[test]
    fn what_baseline_forbids_is_found() {
        let bad = spec(json!({
            "hostNetwork": true,
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
            "containers": [{
                "name": "c",
                "securityContext": {"privileged": true, "capabilities": {"add": ["SYS_ADMIN", "CHOWN"]}},
                "ports": [{"containerPort": 80, "hostPort": 80}]
            }]
        }));
        let v = baseline_violations(&bad);
        assert_eq!(v.len(), 5, "{v:?}");
        assert!(v.iter().any(|m| m.contains("SYS_ADMIN")));
        assert!(!v.iter().any(|m| m.contains("CHOWN")));
    }
}
