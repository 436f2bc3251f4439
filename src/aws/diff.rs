//! The changes that bring a live role to the planned one. Pure.

use std::collections::BTreeSet;

use super::Change;
use super::live::LiveRole;
use crate::plan::IamRolePlan;

/// The changes that bring `live` to `role`. Pure.
pub(super) fn role_changes(role: &IamRolePlan, live: Option<&LiveRole>) -> Vec<Change> {
    let Some(live) = live else {
        let mut changes = vec![Change::CreateRole];
        changes.extend(
            role.managed_policy_arns
                .iter()
                .map(|arn| Change::AttachPolicy { arn: arn.clone() }),
        );
        if role.permissions_policy.is_some() {
            changes.push(Change::PutInlinePolicy);
        }
        return changes;
    };
    let mut changes = Vec::new();
    if live.trust.as_ref() != Some(&role.trust_policy) {
        changes.push(Change::UpdateTrustPolicy);
    }
    if live.max_session != i32::try_from(role.max_session_duration).ok() {
        changes.push(Change::UpdateRole {
            max_session_duration: role.max_session_duration,
        });
    }
    match (&role.permissions_boundary, &live.boundary) {
        (Some(want), have) if have.as_ref() != Some(want) => {
            changes.push(Change::PutPermissionsBoundary { arn: want.clone() })
        }
        (None, Some(_)) => changes.push(Change::DeletePermissionsBoundary),
        _ => {}
    }
    let keys: Vec<String> = role
        .tags
        .iter()
        .filter(|(k, v)| live.tags.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    if !keys.is_empty() {
        changes.push(Change::TagRole { keys });
    }
    let want: BTreeSet<&String> = role.managed_policy_arns.iter().collect();
    changes.extend(
        want.iter()
            .filter(|a| !live.attached.contains(**a))
            .map(|a| Change::AttachPolicy { arn: (*a).clone() }),
    );
    changes.extend(
        live.attached
            .iter()
            .filter(|a| !want.contains(a))
            .map(|a| Change::DetachPolicy { arn: a.clone() }),
    );
    match (&role.permissions_policy, &live.inline) {
        (Some(want), have) if have.as_ref() != Some(want) => changes.push(Change::PutInlinePolicy),
        (None, Some(_)) => changes.push(Change::DeleteInlinePolicy),
        _ => {}
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn planned() -> IamRolePlan {
        IamRolePlan {
            name: "r".into(),
            path: "/".into(),
            arn: "arn:aws:iam::111122223333:role/r".into(),
            trust_policy: json!({"Statement": [1]}),
            permissions_policy: Some(json!({"Statement": [2]})),
            managed_policy_arns: vec!["arn:aws:iam::aws:policy/A".into()],
            permissions_boundary: None,
            max_session_duration: 3600,
            target_role_arn: None,
            tags: BTreeMap::from([("k".into(), "v".into())]),
        }
    }

    #[test]
    fn a_new_role_is_created_with_everything() {
        let changes = role_changes(&planned(), None);
        assert_eq!(changes[0], Change::CreateRole);
        assert!(changes.contains(&Change::AttachPolicy {
            arn: "arn:aws:iam::aws:policy/A".into()
        }));
        assert!(changes.contains(&Change::PutInlinePolicy));
    }

    #[test]
    fn an_identical_role_needs_nothing_and_drift_is_found() {
        let p = planned();
        let mut live = LiveRole {
            trust: Some(p.trust_policy.clone()),
            max_session: Some(3600),
            boundary: None,
            tags: p.tags.clone(),
            attached: p.managed_policy_arns.iter().cloned().collect(),
            inline: p.permissions_policy.clone(),
        };
        assert!(role_changes(&p, Some(&live)).is_empty());
        live.trust = Some(json!({"Statement": []}));
        live.attached.insert("arn:aws:iam::aws:policy/Extra".into());
        live.boundary = Some("arn:aws:iam::111122223333:policy/b".into());
        let changes = role_changes(&p, Some(&live));
        assert!(changes.contains(&Change::UpdateTrustPolicy));
        assert!(changes.contains(&Change::DetachPolicy {
            arn: "arn:aws:iam::aws:policy/Extra".into()
        }));
        assert!(changes.contains(&Change::DeletePermissionsBoundary));
    }
}
