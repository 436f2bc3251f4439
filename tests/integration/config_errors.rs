//! Bad input gets a clear error that names the problem (and changes nothing).

use std::path::Path;

use runner_identity::config;
use runner_identity::plan;
use runner_identity::templates::Templates;

const GOOD: &str = r#"github:
  url: https://github.com
  owner: acme
repositories:
  - api
  - name: Web.Frontend
    aws: { managedPolicyArns: [arn:aws:iam::aws:policy/ReadOnlyAccess] }
cluster:
  name: prod
  oidcIssuer: https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE
aws:
  accountId: "111122223333"
  mode: irsa
kubernetes:
  hooks: kubernetes
"#;

/// The error message for `text`, which must fail to load or plan.
fn error_of(text: &str) -> String {
    let result = config::parse(text, Path::new("bad.yaml"))
        .and_then(|s| plan::plan(&s, &Templates::load(None).unwrap()).map(|_| ()));
    match result {
        Ok(()) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "fixture does not contain {from:?}");
    GOOD.replacen(from, to, 1)
}

/// The error of planning GOOD with template `name` replaced by `text`.
fn error_with_template(name: &str, text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), text).unwrap();
    let settings = config::parse(GOOD, Path::new("bad.yaml")).unwrap();
    plan::plan(&settings, &Templates::load(Some(dir.path())).unwrap())
        .unwrap_err()
        .to_string()
}

#[test]
fn the_good_fixture_plans() {
    let plan = crate::common::plan_text(GOOD);
    assert_eq!(plan.repositories.len(), 2);
}

#[test]
fn malformed_yaml_names_file_line_and_column() {
    let e = error_of(&with("  owner: acme", "  owner: [acme"));
    assert!(e.starts_with("bad.yaml:"), "{e}");
    let location = e.split(':').nth(1).unwrap();
    assert!(location.parse::<u32>().is_ok(), "line number in {e}");
}

#[test]
fn unknown_key_is_rejected_with_its_position() {
    let e = error_of(&with("  mode: irsa", "  mode: irsa\n  rolename: x"));
    assert!(e.contains("unknown field `rolename`"), "{e}");
    assert!(
        e.starts_with("bad.yaml:14:3: invalid `aws.rolename`: unknown field"),
        "{e}"
    );
    assert_eq!(
        e.matches("line 14").count(),
        0,
        "location once, as file:line:column: {e}"
    );
}

#[test]
fn unknown_key_in_a_repository_override_keeps_its_message() {
    let e = error_of(&with("aws: { managedPolicyArns", "aws: { managedPolicies"));
    assert!(e.contains("unknown field `managedPolicies`"), "{e}");
}

#[test]
fn wrong_type_is_rejected() {
    let e = error_of(&with("  hooks: kubernetes", "  hooks: [kubernetes]"));
    assert!(
        e.starts_with("bad.yaml:15:3: invalid `kubernetes.hooks`: invalid type: array"),
        "{e}"
    );
    let e = error_of(&with(
        "  mode: irsa",
        "  mode: irsa\n  maxSessionDuration: one hour",
    ));
    assert!(
        e.starts_with("bad.yaml:14:3: invalid `aws.maxSessionDuration`: invalid type: string"),
        "{e}"
    );
    let e = error_of(&with("  mode: irsa", "  mode: kiam"));
    assert!(e.contains("unknown variant `kiam`"), "{e}");
}

#[test]
fn invalid_account_id() {
    let e = error_of(&with("\"111122223333\"", "\"1111\""));
    assert!(e.contains("aws.accountId") && e.contains("12-digit"), "{e}");
}

#[test]
fn invalid_partition_and_arn() {
    let e = error_of(&with("  mode: irsa", "  mode: irsa\n  partition: aws-eu"));
    assert!(e.contains("aws-eu"), "{e}");
    let e = error_of(&with(
        "arn:aws:iam::aws:policy/ReadOnlyAccess",
        "ReadOnlyAccess",
    ));
    assert!(
        e.contains("repositories[1].aws.managedPolicyArns") && e.contains("not an ARN"),
        "{e}"
    );
    let e = error_of(&with("  mode: irsa", "  mode: irsa\n  partition: aws-cn"));
    assert!(e.contains("partition `aws`") && e.contains("aws-cn"), "{e}");
    let e = error_of(&with(
        "  mode: irsa",
        "  mode: irsa\n  permissionsBoundary: arn:aws:iam::111122223333:role/x",
    ));
    assert!(
        e.contains("aws.permissionsBoundary") && e.contains("policy"),
        "{e}"
    );
}

#[test]
fn invalid_repository_name() {
    let e = error_of(&with("  - api\n", "  - api/v2\n"));
    assert!(e.contains("repositories[0]") && e.contains("`/`"), "{e}");
    let e = error_of(&with("  - api\n", &format!("  - {}\n", "a".repeat(101))));
    assert!(e.contains("1 to 100"), "{e}");
}

#[test]
fn duplicate_repository_differing_only_in_case() {
    let e = error_of(&with("  - api\n", "  - api\n  - API\n"));
    assert!(
        e.contains("`API` duplicates `api`") && e.contains("case-insensitive"),
        "{e}"
    );
}

#[test]
fn name_collision_names_both_repositories() {
    // A namespace template without {repo} and a fixed ServiceAccount name make
    // every repository's runner SA the same object.
    let e = error_of(&with(
        "  hooks: kubernetes",
        "  hooks: kubernetes\n  namespace: shared-runners",
    ));
    assert!(e.contains("name collision"), "{e}");
    assert!(
        e.contains("acme/api") && e.contains("acme/Web.Frontend"),
        "{e}"
    );
}

#[test]
fn issuer_must_be_https() {
    let e = error_of(&with("https://oidc.eks", "http://oidc.eks"));
    assert!(
        e.contains("cluster.oidcIssuer") && e.contains("https"),
        "{e}"
    );
    let e = error_of(&with(
        "  oidcIssuer: https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE\n",
        "",
    ));
    assert!(
        e.contains("cluster.oidcIssuer") && e.contains("required"),
        "{e}"
    );
}

#[test]
fn wildcard_and_escalating_rules_are_rejected() {
    let rule = "  hooks: kubernetes\n  extraRules:\n    - apiGroups: [\"\"]\n      resources: [\"*\"]\n      verbs: [get]";
    let e = error_of(&with("  hooks: kubernetes", rule));
    assert!(
        e.contains("kubernetes.extraRules[0]") && e.contains("wildcard"),
        "{e}"
    );
    let rule = "  hooks: kubernetes\n  extraRules:\n    - apiGroups: [rbac.authorization.k8s.io]\n      resources: [roles]\n      verbs: [bind]";
    let text = with("  hooks: kubernetes", rule);
    let e = error_of(&text);
    // The field and its line, not only a word the input itself holds.
    let line = text
        .lines()
        .position(|l| l.contains("- apiGroups"))
        .unwrap()
        + 1;
    assert!(
        e.contains("kubernetes.extraRules[0]") && e.contains(&format!("bad.yaml:{line}:")),
        "{e}"
    );
}

#[test]
fn reserved_labels_cannot_be_configured() {
    let e = error_of(&with(
        "  hooks: kubernetes",
        "  hooks: kubernetes\n  labels:\n    app.kubernetes.io/managed-by: me",
    ));
    assert!(
        e.contains("kubernetes.labels") && e.contains("set by runner-identity"),
        "{e}"
    );
}

#[test]
fn unknown_placeholder_in_a_name_template() {
    let e = error_of(&with(
        "  hooks: kubernetes",
        "  hooks: kubernetes\n  namespace: \"ci-{repository}\"",
    ));
    assert!(
        e.contains("kubernetes.namespace") && e.contains("{repository}"),
        "{e}"
    );
}

#[test]
fn template_that_fails_to_render() {
    let e = error_with_template("values.yaml", "githubConfigUrl: {{ no_such_variable }}\n");
    assert!(
        e.contains("values.yaml") && e.contains("acme/api") && e.contains("failed to render"),
        "{e}"
    );
}

#[test]
fn hook_template_without_service_account_is_refused() {
    // Regression guard for the most common outage: the workflow pod running
    // as `default` because the template does not name the job ServiceAccount.
    let e = error_with_template(
        "hook-template.yaml",
        "spec:\n  securityContext:\n    fsGroup: 1001\n",
    );
    assert!(
        e.contains("serviceAccountName") && e.contains("default"),
        "{e}"
    );

    let e = error_with_template(
        "hook-template.yaml",
        "spec:\n  serviceAccountName: gha-job\n",
    );
    assert!(e.contains("fsGroup"), "{e}");
}

#[test]
fn trust_policy_template_that_is_not_pinned_is_refused() {
    let loose = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
      "Principal": {"Federated": {{ oidc_provider_arn | tojson }}},
      "Action": "sts:AssumeRoleWithWebIdentity",
      "Condition": {"StringLike": {{ {(issuer ~ ":sub"): "system:serviceaccount:*"} | tojson }}}}]}"#;
    let e = error_with_template("trust-policy-irsa.json", loose);
    assert!(e.contains("also lets") && e.contains(":default"), "{e}");

    let e = error_with_template("trust-policy-irsa.json", "{ not json");
    assert!(e.contains("not valid JSON"), "{e}");
}

#[test]
fn template_with_a_syntax_error_names_the_template() {
    let e = error_with_template("hook-template.yaml", "spec: {{ unclosed\n");
    assert!(
        e.contains("hook-template.yaml") && e.contains("line 1"),
        "{e}"
    );
}

#[test]
fn missing_inline_policy_template_lists_the_templates() {
    let text = with(
        "  mode: irsa",
        "  mode: irsa\n  inlinePolicyTemplate: s3.json",
    );
    let e = error_of(&text);
    assert!(
        e.contains("s3.json") && e.contains("permissions-policy.json"),
        "{e}"
    );
}

#[test]
fn discovery_and_credentials_settings_are_checked() {
    let e = error_of(&with(
        "repositories:\n  - api\n  - name: Web.Frontend\n    aws: { managedPolicyArns: [arn:aws:iam::aws:policy/ReadOnlyAccess] }\n",
        "",
    ));
    assert!(e.contains("repositories") && e.contains("select:"), "{e}");
    let e = error_of(&with(
        "kubernetes:\n",
        "select:\n  visibility: [secret]\nkubernetes:\n",
    ));
    assert!(
        e.contains("select.visibility") && e.contains("`secret`"),
        "{e}"
    );
    let e = error_of(&with(
        "kubernetes:\n",
        "select:\n  names: [\"acme/api\"]\nkubernetes:\n",
    ));
    assert!(
        e.contains("select.names") && e.contains("without the owner"),
        "{e}"
    );
    let e = error_of(&with(
        "  owner: acme\n",
        "  owner: acme\n  auth:\n    token: {env: T}\n    app: {id: 1, privateKey: {file: k.pem}}\n",
    ));
    assert!(
        e.contains("github.auth") && e.contains("exactly one of `token` and `app`"),
        "{e}"
    );
    let e = error_of(&with(
        "  owner: acme\n",
        "  owner: acme\n  auth:\n    token: {env: T, file: t}\n",
    ));
    assert!(
        e.contains("github.auth.token") && e.contains("exactly one of `env`"),
        "{e}"
    );
    let e = error_of(&with(
        "  hooks: kubernetes\n",
        "  hooks: kubernetes\n  githubCredentials:\n    token: {env: T}\n    fromSecret: {namespace: a, name: b}\n",
    ));
    assert!(
        e.contains("kubernetes.githubCredentials") && e.contains("both kinds"),
        "{e}"
    );
    // `select:` alone is a complete configuration.
    let text = with(
        "repositories:\n  - api\n  - name: Web.Frontend\n    aws: { managedPolicyArns: [arn:aws:iam::aws:policy/ReadOnlyAccess] }\n",
        "select:\n  topics: [arc-runner]\n",
    );
    assert!(config::parse(&text, Path::new("ok.yaml")).is_ok());
}

#[test]
fn every_invalid_value_is_reported_at_once_with_its_location() {
    // Three independent mistakes: one run names all three, each with
    // file:line:column of its key (only the first was reported before).
    let text = with("\"111122223333\"", "\"1111\"")
        .replacen("  name: prod", "  name: prod.cluster", 1)
        .replacen("  - api\n", "  - api/v2\n", 1);
    let e = error_of(&text);
    assert!(e.starts_with("3 problems in bad.yaml"), "{e}");
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap()
    };
    assert!(
        e.contains(&format!(
            "bad.yaml:{}:3: invalid `aws.accountId`",
            line_of("accountId")
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "bad.yaml:{}:3: invalid `cluster.name`",
            line_of("prod.cluster")
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "bad.yaml:{}:3: invalid `repositories[0]`",
            line_of("api/v2")
        )),
        "{e}"
    );
}

#[test]
fn every_unknown_key_and_wrong_type_is_reported_at_once() {
    let text = with("  mode: irsa", "  mode: kiam\n  rolename: x").replacen(
        "  hooks: kubernetes",
        "  hooks: [kubernetes]\n  nmespace: x",
        1,
    );
    let e = error_of(&text);
    assert!(e.starts_with("4 problems in bad.yaml"), "{e}");
    for want in [
        "bad.yaml:13:3: invalid `aws.mode`: unknown variant `kiam`",
        "bad.yaml:14:3: invalid `aws.rolename`: unknown field `rolename`",
        "bad.yaml:16:3: invalid `kubernetes.hooks`: ",
        "bad.yaml:17:3: invalid `kubernetes.nmespace`: unknown field `nmespace`",
    ] {
        assert!(e.contains(want), "{want} in {e}");
    }
}

#[test]
fn a_secret_name_with_dots_is_valid() {
    // `github.app` is a DNS subdomain, as Secret names are; it was rejected.
    let text = with(
        "  hooks: kubernetes",
        "  hooks: kubernetes\n  githubConfigSecret: github.app\n  githubCredentials:\n    fromSecret: {namespace: arc-system, name: github.app}",
    );
    let settings = config::parse(&text, Path::new("good.yaml")).unwrap();
    assert_eq!(
        settings.config.kubernetes.github_config_secret,
        "github.app"
    );
    let e = error_of(&text.replace("name: github.app}", "name: GitHub_App}"));
    assert!(
        e.contains("kubernetes.githubCredentials.fromSecret.name") && e.contains("DNS subdomain"),
        "{e}"
    );
}

#[test]
fn structural_and_value_problems_are_reported_in_one_run() {
    // An unknown key and a wrong type (structure) and a bad account id and a
    // chart that ignores novolume (values): all four at once, none twice.
    let text = with("  accountId: \"111122223333\"", "  accountId: \"12\"").replace(
        "  hooks: kubernetes\n",
        "  hooks: kubernetes-novolume\n  chart: {version: 0.12.1}\n  runnerImages: [x]\n  fsGroup: lots\n",
    );
    let e = error_of(&text);
    for needle in [
        "`kubernetes.runnerImages`",
        "`kubernetes.fsGroup`",
        "`aws.accountId`",
        "`kubernetes.chart.version`",
    ] {
        assert_eq!(e.matches(needle).count(), 1, "{needle} in:\n{e}");
    }
    assert!(e.contains("4 problems"), "{e}");
    // Before, the structural problems hid the values' (two, not four).
}

#[test]
fn a_region_outside_the_partition_is_named_with_the_fix() {
    let e = error_of(&with(
        "  name: prod\n",
        "  name: prod\n  region: cn-north-1\n",
    ));
    assert!(e.contains("cluster.region"), "{e}");
    assert!(e.contains("aws.partition: aws-cn"), "{e}");
    // The line of the key, not only its name.
    assert!(e.contains("bad.yaml:"), "{e}");
}

#[test]
fn a_namespace_of_the_cluster_or_of_arcs_controller_is_refused() {
    // Before, `kube-system` was planned, and bootstrap bound the hooks'
    // rights (pods, Secrets) there to the identity that runs apply.
    for namespace in ["kube-system", "kube-node-lease"] {
        let e = error_of(&with(
            "  hooks: kubernetes\n",
            &format!("  hooks: kubernetes\n  namespace: {namespace}\n  sharedNamespace: true\n"),
        ));
        assert!(
            e.contains("kubernetes.namespace") && e.contains(namespace),
            "{e}"
        );
    }
    let e = error_of(&with(
        "  hooks: kubernetes\n",
        "  hooks: kubernetes\n  namespace: arc-systems\n  sharedNamespace: true\n  chart:\n    controllerServiceAccount: {name: arc-gha-rs-controller, namespace: arc-systems}\n",
    ));
    assert!(e.contains("ARC's"), "{e}");
}

#[test]
fn a_wildcard_boundary_or_the_default_namespace_is_refused() {
    // IAM matches `*` in ArnEquals: `policy/*` would admit AdministratorAccess.
    let e = error_of(&with(
        "  mode: irsa\n",
        "  mode: irsa\n  permissionsBoundary: arn:aws:iam::aws:policy/*\n",
    ));
    assert!(
        e.contains("aws.permissionsBoundary") && e.contains("wildcard"),
        "{e}"
    );
    let e = error_of(&with(
        "  hooks: kubernetes\n",
        "  hooks: kubernetes\n  namespace: default\n  sharedNamespace: true\n",
    ));
    assert!(
        e.contains("kubernetes.namespace") && e.contains("`default`"),
        "{e}"
    );
    let e = error_of(&with(
        "  hooks: kubernetes\n",
        "  hooks: kubernetes\n  names: {role: runner-identity-apply-hooks}\n",
    ));
    assert!(e.contains("kubernetes.names.role"), "{e}");
}

#[test]
fn problems_after_a_refused_list_entry_keep_their_own_index_and_line() {
    // Before: `web`'s maxSessionDuration was never reported, and `bad name!`
    // was called repositories[1] at web's line.
    let text = with(
        "repositories:\n  - api\n  - name: Web.Frontend\n    aws: { managedPolicyArns: [arn:aws:iam::aws:policy/ReadOnlyAccess] }\n",
        "repositories:\n  - nmae: api\n  - name: web\n    aws: {maxSessionDuration: 100}\n  - \"bad name!\"\n",
    );
    let e = error_of(&text);
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(e.contains("repositories[0]"), "{e}");
    let session = e
        .lines()
        .find(|l| l.contains("maxSessionDuration"))
        .unwrap_or_else(|| panic!("web's maxSessionDuration is not reported: {e}"));
    assert!(
        session.contains("repositories[1].aws.maxSessionDuration"),
        "{session}"
    );
    assert!(
        session.contains(&format!("bad.yaml:{}:", line_of("maxSessionDuration"))),
        "{session}"
    );
    let bad = e
        .lines()
        .find(|l| l.contains("bad name"))
        .unwrap_or_else(|| panic!("{e}"));
    assert!(bad.contains("repositories[2]"), "{bad}");
    assert!(
        bad.contains(&format!("bad.yaml:{}:", line_of("bad name!"))),
        "{bad}"
    );
}

#[test]
fn a_wrong_visibility_is_reported_with_every_other_problem() {
    // A schema enum without per-variant docs let a wrong value past the
    // structural pass: serde then reported it alone.
    let e = error_of(
        &with(
            "kubernetes:\n",
            "select:\n  visibility: [secret]\nkubernetes:\n",
        )
        .replace("\"111122223333\"", "\"1\""),
    );
    assert!(
        e.contains("select.visibility") && e.contains("`secret`"),
        "{e}"
    );
    assert!(e.contains("aws.accountId"), "both problems at once: {e}");
}

#[test]
fn every_broken_credential_source_is_reported_with_the_one_kind_rule() {
    let e = error_of(&with(
        "kubernetes:\n",
        "kubernetes:\n  githubCredentials:\n    token: {env: ''}\n    app: {id: 1, installationId: 2, privateKey: {}}\n",
    ));
    for field in [
        "`kubernetes.githubCredentials`",
        "kubernetes.githubCredentials.token",
        "kubernetes.githubCredentials.app.privateKey",
    ] {
        assert!(e.contains(field), "{field}: {e}");
    }
}
