//! What an AWS apply did: a change list and result per role, and the report.

use serde::Serialize;
use serde_json::Value;

use crate::outcome::Action;

/// One planned change to a role or association.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "camelCase")]
pub enum Change {
    CreateRole,
    UpdateTrustPolicy,
    UpdateRole {
        max_session_duration: u32,
    },
    PutPermissionsBoundary {
        arn: String,
    },
    DeletePermissionsBoundary,
    TagRole {
        keys: Vec<String>,
    },
    AttachPolicy {
        arn: String,
    },
    DetachPolicy {
        arn: String,
    },
    PutInlinePolicy,
    DeleteInlinePolicy,
    CreateAssociation {
        namespace: String,
        service_account: String,
    },
    /// The association's role, or its session tags, drifted: set back.
    UpdateAssociation {
        id: String,
        /// The fields that differ from the plan (`roleArn`, `disableSessionTags`).
        fields: Vec<String>,
    },
    /// The association carries a target role or a session policy the plan
    /// does not: deleted and created again as planned (the API cannot be
    /// relied on to clear either).
    ReplaceAssociation {
        id: String,
        fields: Vec<String>,
    },
    DeleteRole,
    DeleteAssociation {
        id: String,
    },
}

/// The result for one role (and its association).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleResult {
    pub repository: String,
    pub role: String,
    pub action: Action,
    pub changes: Vec<Change>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The trust the Pod Identity target role must hold, once the
    /// association (and so its `externalId`) exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_trust: Option<TargetTrust>,
}

/// What the owner of a target role writes into its trust.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TargetTrust {
    pub target_role_arn: String,
    /// The repository's role, which the trust admits.
    pub role_arn: String,
    /// The association was created in this run: its `externalId` is new,
    /// and a trust written for an earlier one no longer admits the chain.
    pub new_external_id: bool,
    pub external_id: String,
    pub trust_policy: Value,
}

/// The whole AWS result.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsReport {
    pub roles: Vec<RoleResult>,
    /// IAM and EKS write requests sent.
    pub writes: usize,
    /// Problems that do not belong to one role (a missing OIDC provider).
    pub problems: Vec<String>,
}

impl AwsReport {
    /// Whether anything failed.
    pub fn failed(&self) -> bool {
        !self.problems.is_empty()
            || self
                .roles
                .iter()
                .any(|r| r.error.is_some() || r.action == Action::Conflict)
    }

    /// One line per role that changes, fails or conflicts, and a total.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for r in &self.roles {
            let action = serde_json::to_value(r.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let changes: Vec<String> = r
                .changes
                .iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .filter_map(|v| v.get("change").and_then(Value::as_str).map(str::to_owned))
                .collect();
            out.push_str(&format!(
                "IAM role {:<40} {action:<9} {}\n",
                r.role,
                changes.join(", ")
            ));
            if let Some(e) = &r.error {
                out.push_str(&format!("  error: {e}\n"));
            }
            if let Some(t) = &r.target_trust {
                out.push_str(&format!(
                    "  chains to {}: its trust must allow {} sts:AssumeRole with sts:ExternalId \
                     {} and sts:TagSession (-o json has the policy; runner-identity doctor checks it)\n",
                    t.target_role_arn, t.role_arn, t.external_id
                ));
                if t.new_external_id {
                    out.push_str(
                        "  the association is new, and so is its externalId: update the target's \
                         trust before jobs run\n",
                    );
                }
            }
        }
        for p in &self.problems {
            out.push_str(&format!("problem: {p}\n"));
        }
        if self.writes == 0 {
            out.push_str("AWS: no changes: 0 write requests sent\n");
        } else {
            out.push_str(&format!("AWS: {} write requests sent\n", self.writes));
        }
        out
    }
}
