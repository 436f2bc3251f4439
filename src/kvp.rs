//! The shared vocabulary of Kubernetes metadata: the label and annotation
//! keys runner-identity writes, and the checks and derivations of names and
//! label values (DNS-1123 labels and subdomains, qualified keys). A leaf:
//! it depends on no other module of the crate, so `config` and `names` both
//! use it without depending on each other.

use sha2::{Digest, Sha256};

/// Prefix of the tool's own labels and annotations.
pub const PREFIX: &str = "runner-identity.dev/";
/// Standard label marking what the tool manages.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "runner-identity";
/// Label holding the configuration instance.
pub const INSTANCE_LABEL: &str = "runner-identity.dev/instance";
/// Label holding the repository in label-value form (for selection).
pub const REPOSITORY_LABEL: &str = "runner-identity.dev/repository";
/// Annotation holding the exact `owner/repo`.
pub const REPOSITORY_ANNOTATION: &str = "runner-identity.dev/repository";
/// Label of what a group's members share: the group's name.
pub const GROUP_LABEL: &str = "runner-identity.dev/group";
/// Annotation of what a group's members share: the group's name.
pub const GROUP_ANNOTATION: &str = "runner-identity.dev/group";

/// Kubernetes name limit (DNS-1123 label).
pub(crate) const DNS_LABEL_MAX: usize = 63;
/// Hex digits of the disambiguating hash.
pub(crate) const HASH_LEN: usize = 8;

/// A DNS-1123 label of at most `max` characters derived from `input`.
pub fn dns_label(input: &str, max: usize) -> String {
    let folded = input.to_lowercase();
    let mut slug = String::with_capacity(folded.len());
    for c in folded.chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (slug.is_empty() || slug.ends_with('-'))) {
            slug.push(c);
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug == folded && slug.len() <= max {
        return slug.to_owned();
    }
    with_hash(slug, &folded, max)
}

/// A label value (`[A-Za-z0-9._-]`, at most 63, alphanumeric at both ends).
pub fn label_value(input: &str) -> String {
    let folded = input.to_lowercase();
    let slug: String = folded
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = slug.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed == folded && trimmed.len() <= DNS_LABEL_MAX {
        return trimmed.to_owned();
    }
    with_hash(trimmed, &folded, DNS_LABEL_MAX)
}

/// `<slug truncated>-<hash of original>`, at most `max` characters.
pub(crate) fn with_hash(slug: &str, original: &str, max: usize) -> String {
    let digest = Sha256::digest(original.as_bytes());
    let hash: String = digest
        .iter()
        .take(HASH_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    let keep = max.saturating_sub(HASH_LEN + 1);
    let base: String = slug.chars().take(keep).collect();
    let base = base.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if base.is_empty() {
        hash
    } else {
        format!("{base}-{hash}")
    }
}

/// Checks a label value.
pub fn check_label_value(v: &str) -> std::result::Result<(), String> {
    let ok = v.is_empty()
        || (v.len() <= DNS_LABEL_MAX
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not a valid label value (at most 63 letters, digits, `-`, `_`, `.`, alphanumeric at both ends)"
        ))
    }
}

/// Checks a DNS-1123 subdomain (the names of Secrets, ConfigMaps and most
/// objects): at most 253 characters, dot-separated parts of lower-case
/// letters, digits and `-`, each starting and ending alphanumeric.
pub fn check_dns_subdomain(name: &str) -> std::result::Result<(), String> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !p.starts_with('-')
            && !p.ends_with('-')
    };
    if name.len() <= 253 && name.split('.').all(part_ok) {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid Kubernetes name (a DNS subdomain: at most 253 lower-case \
             letters, digits, `-` and `.`, alphanumeric at both ends of each part)"
        ))
    }
}

/// Checks a DNS-1123 label (namespace names): at most 63 lower-case letters,
/// digits and `-`, alphanumeric at both ends.
pub fn check_dns_label(name: &str) -> std::result::Result<(), String> {
    if name.len() <= DNS_LABEL_MAX && !name.contains('.') && check_dns_subdomain(name).is_ok() {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid namespace name (a DNS label: at most 63 lower-case \
             letters, digits and `-`, alphanumeric at both ends)"
        ))
    }
}

/// Checks a label or annotation key (`[prefix/]name`).
pub fn check_qualified_name(key: &str) -> std::result::Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    if prefix_ok && !name.is_empty() && check_label_value(name).is_ok() {
        Ok(())
    } else {
        Err(format!("`{key}` is not a valid label or annotation key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_dns_subdomains() {
        // Rejected before: `github.app` was checked as a DNS label.
        for ok in ["github.app", "a", "arc-github-secret", "x.y-z.0"] {
            assert_eq!(check_dns_subdomain(ok), Ok(()), "{ok}");
        }
        let long = format!("{}.{}", "a".repeat(63), "b".repeat(190));
        assert_eq!(long.len(), 254);
        for bad in [
            "",
            "Github.app",
            "a..b",
            "-a",
            "a-.b",
            "a_b",
            ".a",
            long.as_str(),
        ] {
            assert!(check_dns_subdomain(bad).is_err(), "{bad}");
        }
        assert!(check_dns_label("arc-runners").is_ok());
        assert!(check_dns_label("a.b").is_err());
        assert!(check_dns_label(&"a".repeat(64)).is_err());
    }

    #[test]
    fn label_values() {
        assert_eq!(label_value("acme.api"), "acme.api");
        assert!(check_label_value(&label_value(&"r".repeat(120))).is_ok());
        assert!(check_label_value("-a").is_err());
        assert!(check_qualified_name("example.com/team").is_ok());
        assert!(check_qualified_name("team").is_ok());
        assert!(check_qualified_name("Example.com/team").is_err());
        assert!(check_qualified_name("a/b/c").is_err());
    }
}
