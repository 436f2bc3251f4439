//! What IAM holds for a role, read: its trust, session length, boundary,
//! tags, attached and inline policies. The read side that `diff` compares
//! with the plan.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::error_kind::found;
use super::{AwsError, INLINE_POLICY, call_error};

/// What IAM holds for one role.
#[derive(Debug, Default)]
pub(super) struct LiveRole {
    pub(super) trust: Option<Value>,
    pub(super) max_session: Option<i32>,
    pub(super) boundary: Option<String>,
    pub(super) tags: BTreeMap<String, String>,
    pub(super) attached: BTreeSet<String>,
    pub(super) inline: Option<Value>,
}

pub(super) async fn read_role(
    iam: &aws_sdk_iam::Client,
    name: &str,
) -> Result<Option<LiveRole>, AwsError> {
    let Some(got) = found(iam.get_role().role_name(name).send().await, |e| {
        e.is_no_such_entity_exception()
    })
    .map_err(|e| call_error("GetRole", name, &e))?
    else {
        return Ok(None);
    };
    let Some(role) = got.role() else {
        return Ok(None);
    };
    let mut live = LiveRole {
        trust: role.assume_role_policy_document().and_then(decode_policy),
        max_session: role.max_session_duration(),
        boundary: role
            .permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn())
            .map(str::to_owned),
        tags: role
            .tags()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect(),
        ..Default::default()
    };
    let attached = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| call_error("ListAttachedRolePolicies", name.to_string(), &e))?;
    live.attached = attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn())
        .map(str::to_owned)
        .collect();
    live.inline = found(
        iam.get_role_policy()
            .role_name(name)
            .policy_name(INLINE_POLICY)
            .send()
            .await,
        |e| e.is_no_such_entity_exception(),
    )
    .map_err(|e| call_error("GetRolePolicy", name, &e))?
    .and_then(|out| decode_policy(out.policy_document()));
    Ok(Some(live))
}

/// IAM returns policy documents URL-encoded; this decodes one into JSON.
pub fn decode_policy(encoded: &str) -> Option<Value> {
    let text = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policy_documents_are_url_decoded() {
        let v = decode_policy("%7B%22Version%22%3A%222012-10-17%22%7D").unwrap();
        assert_eq!(v, json!({"Version": "2012-10-17"}));
        assert_eq!(decode_policy("{\"a\":1}").unwrap(), json!({"a": 1}));
    }
}
