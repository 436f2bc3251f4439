//! The IAM role planned for a repository: trust policy (checked), inline
//! permissions policy, managed policies, boundary, tags.

use serde_json::{Value, json};

use crate::config::{Mode, Repository, Settings};
use crate::kvp;
use crate::names::RepoNames;
use crate::policy::{self};
use crate::templates::{self, Context, Templates};
use crate::{ConfigProblem, Error, Result};

use super::checks::check_trust_policy;
use super::{IamRolePlan, OutputChecks, context};

pub(super) fn plan_iam_role(
    settings: &Settings,
    templates: &Templates,
    repo: &Repository,
    names: &RepoNames,
    ctx: &Context,
    checks: OutputChecks,
) -> Result<IamRolePlan> {
    let cfg = &settings.config;
    let trust_policy = match checks {
        OutputChecks::Run => checked_trust_policy(settings, templates, names, ctx)?,
        OutputChecks::Passed => render_json(templates, trust_template(settings), ctx)?,
    };
    let mut permissions_policy = match &repo.inline_policy_template {
        Some(name) => Some(render_json(templates, name, ctx)?),
        None => None,
    };
    if let Some(target) = &repo.target_role_arn {
        let taken = permissions_policy.as_ref().is_some_and(|p| {
            policy::statements(p)
                .iter()
                .any(|st| st.get("Sid").and_then(Value::as_str) == Some(TARGET_STATEMENT))
        });
        if taken {
            return Err(Error::TemplateOutput {
                template: templates
                    .describe(repo.inline_policy_template.as_deref().unwrap_or_default()),
                repository: names.repository.clone(),
                message: format!(
                    "a statement has Sid `{TARGET_STATEMENT}`, which runner-identity adds for the \
                     target role: rename it"
                ),
            });
        }
        permissions_policy = Some(with_target_statement(permissions_policy, target));
    }
    let mut tags = repo.tags.clone();
    tags.insert(kvp::MANAGED_BY_LABEL.into(), kvp::MANAGED_BY.into());
    tags.insert(kvp::INSTANCE_LABEL.into(), settings.instance.clone());
    tags.insert(kvp::REPOSITORY_ANNOTATION.into(), names.repository.clone());
    Ok(IamRolePlan {
        name: names.iam_role.clone(),
        path: cfg.aws.role_path().to_owned(),
        arn: names.iam_role_arn.clone(),
        trust_policy,
        permissions_policy,
        managed_policy_arns: repo.managed_policy_arns.clone(),
        permissions_boundary: repo.permissions_boundary.clone(),
        max_session_duration: repo.max_session_duration,
        target_role_arn: repo.target_role_arn.clone(),
        tags,
    })
}

/// The `Sid` of the statement that lets a role chain to its target role.
pub const TARGET_STATEMENT: &str = "ChainToTargetRole";

/// `policy` with the statement EKS Pod Identity needs to chain from the
/// repository's role to `target`: `sts:AssumeRole` and `sts:TagSession` on
/// that one role, nothing else.
fn with_target_statement(policy: Option<Value>, target: &str) -> Value {
    let statement = json!({
        "Sid": TARGET_STATEMENT,
        "Effect": "Allow",
        "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Resource": target,
    });
    let mut policy = policy.unwrap_or_else(|| json!({"Version": "2012-10-17", "Statement": []}));
    match policy.get_mut("Statement") {
        Some(Value::Array(statements)) => statements.push(statement),
        Some(single) => *single = json!([single.take(), statement]),
        None => policy["Statement"] = json!([statement]),
    }
    policy
}

/// The trust the target role of a Pod Identity association must hold (its
/// owner writes it): the repository's role may assume it with the
/// association's `externalId` and tag the session; nobody else, nothing more.
pub fn target_trust_policy(role_arn: &str, external_id: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AssumeFromPodIdentityAssociation",
                "Effect": "Allow",
                "Principal": {"AWS": role_arn},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            },
            {
                "Sid": "TagSessionFromPodIdentityAssociation",
                "Effect": "Allow",
                "Principal": {"AWS": role_arn},
                "Action": "sts:TagSession",
            },
        ],
    })
}

/// The trust policy planned for one repository's IAM role (what `verify job`
/// shows when STS refuses the job).
pub fn trust_policy(
    settings: &Settings,
    repo: &Repository,
    names: &RepoNames,
    templates: &Templates,
) -> Result<Value> {
    checked_trust_policy(settings, templates, names, &context(settings, repo, names))
}

pub(super) fn checked_trust_policy(
    settings: &Settings,
    templates: &Templates,
    names: &RepoNames,
    ctx: &Context,
) -> Result<Value> {
    let trust_name = trust_template(settings);
    let trust_policy = render_json(templates, trust_name, ctx)?;
    check_trust_policy(&trust_policy, settings, names, ctx).map_err(|message| {
        Error::TemplateOutput {
            template: templates.describe(trust_name),
            repository: names.repository.clone(),
            message,
        }
    })?;
    Ok(trust_policy)
}

/// The trust policy template of the configured mode.
fn trust_template(settings: &Settings) -> &'static str {
    match settings.config.aws.mode {
        Mode::Irsa => templates::TRUST_IRSA,
        Mode::PodIdentity => templates::TRUST_POD_IDENTITY,
    }
}

pub(super) fn render_json(templates: &Templates, name: &str, ctx: &Context) -> Result<Value> {
    let text = templates.render(name, ctx)?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| Error::TemplateOutput {
        template: templates.describe(name),
        repository: ctx.repository.clone(),
        message: format!(
            "not valid JSON at line {} column {}: {e}",
            e.line(),
            e.column()
        ),
    })?;
    if policy::statements(&doc).is_empty() {
        return Err(Error::TemplateOutput {
            template: templates.describe(name),
            repository: ctx.repository.clone(),
            message: "the policy has no `Statement`".into(),
        });
    }
    Ok(doc)
}

/// What makes the apply identity's IAM rights safe, checked before
/// `bootstrap` prints them and before `apply` writes to IAM: a path only this
/// instance uses and a permissions boundary on every role. Every missing
/// piece is reported at once.
pub fn apply_identity_requirements(settings: &Settings) -> Result<()> {
    let aws = &settings.config.aws;
    let mut problems = Vec::new();
    if aws.role_path() == "/" {
        problems.push(ConfigProblem {
            field: "aws.rolePath".into(),
            location: None,
            message: "`/` would let the identity that runs apply write every role of the account \
                      (its own included); leave aws.rolePath unset (`/runner-identity/<instance>/`) \
                      or name a path only this configuration uses"
                .into(),
        });
    }
    let unbounded: Vec<String> = settings
        .repositories
        .iter()
        .filter(|r| r.permissions_boundary.is_none())
        .map(|r| r.full_name())
        .collect();
    if aws.permissions_boundary.is_none()
        && (settings.repositories.is_empty() || !unbounded.is_empty())
    {
        let whose = if unbounded.is_empty() {
            String::new()
        } else {
            format!(" (repositories without one: {})", unbounded.join(", "))
        };
        problems.push(ConfigProblem {
            field: "aws.permissionsBoundary".into(),
            location: None,
            message: format!(
                "a permissions boundary is required{whose}: without one, the right to write a \
                 role's inline policy alone lets the identity that runs apply give a role `*:*` \
                 and assume it. Create a managed policy with the most any job may do and set its \
                 ARN here"
            ),
        });
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::ConfigProblems {
            path: settings.source.clone(),
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> Result<Settings> {
        let text = format!(
            "github: {{owner: acme}}\nrepositories: [api]\ncluster: {{name: prod, region: eu-west-1, oidcIssuer: https://o.example/id/1}}\n\
             aws:\n  accountId: '111122223333'\n{extra}"
        );
        crate::config::parse(&text, std::path::Path::new("t.yaml"))
    }

    #[test]
    fn a_configuration_without_a_boundary_or_on_the_root_path_is_refused_with_every_reason() {
        let s = settings("  mode: irsa\n  rolePath: /\n").unwrap();
        let text = apply_identity_requirements(&s).unwrap_err().to_string();
        assert!(text.contains("aws.rolePath"), "{text}");
        assert!(text.contains("aws.permissionsBoundary"), "{text}");
        assert!(text.contains("acme/api"), "{text}");
        let fine =
            settings("  mode: irsa\n  permissionsBoundary: arn:aws:iam::111122223333:policy/b\n")
                .unwrap();
        assert!(apply_identity_requirements(&fine).is_ok());
        // The default path is the instance's own.
        assert_eq!(fine.config.aws.role_path(), "/runner-identity/prod-acme/");
    }
}
