//! Amazon Resource Names, parsed once: `arn:<partition>:<service>:<region>:
//! <account>:<resource>`, with the partition a [`Partition`]. A leaf: the
//! configuration, `verify` and `doctor` all read ARNs through it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// AWS partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
pub enum Partition {
    /// Commercial regions.
    #[default]
    #[serde(rename = "aws")]
    Aws,
    /// China regions.
    #[serde(rename = "aws-cn")]
    AwsCn,
    /// GovCloud (US).
    #[serde(rename = "aws-us-gov")]
    AwsUsGov,
}

impl Partition {
    /// The partition as it appears in ARNs.
    pub fn as_str(self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::AwsCn => "aws-cn",
            Partition::AwsUsGov => "aws-us-gov",
        }
    }

    /// The region IAM (a global service) is reached in when none is
    /// configured: each partition's own.
    pub fn default_region(self) -> &'static str {
        match self {
            Partition::Aws => "us-east-1",
            Partition::AwsCn => "cn-north-1",
            Partition::AwsUsGov => "us-gov-west-1",
        }
    }

    /// The partition of its ARN spelling (`aws`, `aws-cn`, `aws-us-gov`).
    pub fn named(name: &str) -> Option<Partition> {
        [Partition::Aws, Partition::AwsCn, Partition::AwsUsGov]
            .into_iter()
            .find(|p| p.as_str() == name)
    }

    /// The partition a region belongs to.
    pub fn of_region(region: &str) -> Partition {
        if region.starts_with("cn-") {
            Partition::AwsCn
        } else if region.starts_with("us-gov-") {
            Partition::AwsUsGov
        } else {
            Partition::Aws
        }
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn {
    pub partition: Partition,
    pub service: String,
    pub region: String,
    /// 12 digits, `aws` (AWS managed policies) or empty (S3).
    pub account: String,
    pub resource: String,
}

impl Arn {
    /// Parses `text`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Arn, String> {
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let [prefix, partition, service, region, account, resource] = parts.as_slice() else {
            return Err(format!(
                "`{text}` is not an ARN (arn:<partition>:<service>:…)"
            ));
        };
        if *prefix != "arn" {
            return Err(format!(
                "`{text}` is not an ARN (it does not start with arn:)"
            ));
        }
        let partition = Partition::named(partition).ok_or_else(|| {
            format!("`{text}`: `{partition}` is not a partition (aws, aws-cn, aws-us-gov)")
        })?;
        Ok(Arn {
            partition,
            service: (*service).to_owned(),
            region: (*region).to_owned(),
            account: (*account).to_owned(),
            resource: (*resource).to_owned(),
        })
    }

    /// Whether the account is a 12-digit account id.
    pub fn has_account_id(&self) -> bool {
        self.account.len() == 12 && self.account.bytes().all(|b| b.is_ascii_digit())
    }

    /// The role's name (the last segment after `role/<path>`) of an IAM
    /// role ARN.
    pub fn role_name(&self) -> Option<&str> {
        if self.service != "iam" {
            return None;
        }
        self.resource
            .strip_prefix("role/")?
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
    }

    /// `(role, session)` of an STS `assumed-role` ARN.
    pub fn assumed_role(&self) -> Option<(&str, Option<&str>)> {
        if self.service != "sts" {
            return None;
        }
        let rest = self.resource.strip_prefix("assumed-role/")?;
        Some(match rest.split_once('/') {
            Some((role, session)) => (role, Some(session)),
            None => (rest, None),
        })
    }
}

/// An IAM role's ARN: `arn:<partition>:iam::<12 digits>:role/<path/>name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleArn {
    pub partition: Partition,
    pub account: String,
    /// The name, without the path.
    pub name: String,
}

impl RoleArn {
    /// Parses `text`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<RoleArn, String> {
        let arn = Arn::parse(text)?;
        let Some(name) = arn.role_name() else {
            return Err(format!(
                "`{text}` is not an IAM role's ARN (arn:<partition>:iam::<account>:role/<name>)"
            ));
        };
        if !arn.region.is_empty() || !arn.has_account_id() {
            return Err(format!(
                "`{text}`: an IAM role's ARN has no region and a 12-digit account"
            ));
        }
        Ok(RoleArn {
            partition: arn.partition,
            account: arn.account.clone(),
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_are_split_or_refused() {
        let r = RoleArn::parse("arn:aws:iam::111122223333:role/ci/gha-app").unwrap();
        assert_eq!(
            (r.partition, r.account.as_str(), r.name.as_str()),
            (Partition::Aws, "111122223333", "gha-app")
        );
        for bad in [
            "arn:aws:iam::1111:role/x",
            "arn:aws:sts::111122223333:assumed-role/x/y",
            "arn:aws:iam::111122223333:user/x",
            "gha-app",
            "arn:aws-xx:iam::111122223333:role/x",
        ] {
            assert_eq!(RoleArn::parse(bad).ok(), None, "{bad}");
        }
    }

    #[test]
    fn arns_are_split_once_with_their_partition() {
        let role = Arn::parse("arn:aws-cn:iam::111122223333:role/ci/gha-app").unwrap();
        assert_eq!(role.partition, Partition::AwsCn);
        assert_eq!(role.role_name(), Some("gha-app"));
        assert!(role.has_account_id());
        let session = Arn::parse("arn:aws:sts::111122223333:assumed-role/gha-app/s1").unwrap();
        assert_eq!(session.assumed_role(), Some(("gha-app", Some("s1"))));
        assert_eq!(session.role_name(), None);
        let managed = Arn::parse("arn:aws:iam::aws:policy/ReadOnlyAccess").unwrap();
        assert!(!managed.has_account_id());
        assert_eq!(managed.role_name(), None);
        for bad in [
            "arn:aws:iam::1",
            "aws:iam::111122223333:role/x",
            "arn:aws-mars:iam::111122223333:role/x",
        ] {
            assert!(Arn::parse(bad).is_err(), "{bad}");
        }
    }
}
