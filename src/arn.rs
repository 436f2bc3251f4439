//! Amazon Resource Names, parsed once: `arn:<partition>:<service>:<region>:
//! <account>:<resource>`, with the partition a [`Partition`]. A leaf: the
//! configuration, `verify` and `doctor` all read ARNs through it.

use crate::config::Partition;

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

#[cfg(test)]
mod tests {
    use super::*;

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
