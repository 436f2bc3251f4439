//! The repository a GitHub Actions OIDC token's `sub` names, in either of
//! GitHub's subject forms. A leaf: `verify` reads tokens with it, and
//! `bootstrap` and `github` write and check trusts with it.

/// The repository a GitHub Actions `sub` names: `repo:OWNER/REPO:…`, or the
/// immutable form `repo:OWNER@OWNER_ID/REPO@REPO_ID:…` (repositories created
/// or renamed after 2026-07-15). `None` for other subjects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRepository {
    pub owner: String,
    pub owner_id: Option<u64>,
    pub repo: String,
    pub repo_id: Option<u64>,
}

impl SubjectRepository {
    /// Parses a token's `sub`.
    pub fn parse(sub: &str) -> Option<SubjectRepository> {
        let rest = sub.strip_prefix("repo:")?;
        let (path, _context) = rest.split_once(':')?;
        let (owner, repo) = path.split_once('/')?;
        let with_id = |part: &str| -> Option<(String, Option<u64>)> {
            match part.rsplit_once('@') {
                Some((name, id)) => Some((name.to_owned(), Some(id.parse().ok()?))),
                None => Some((part.to_owned(), None)),
            }
        };
        let ((owner, owner_id), (repo, repo_id)) = (with_id(owner)?, with_id(repo)?);
        (!owner.is_empty() && !repo.is_empty()).then_some(SubjectRepository {
            owner,
            owner_id,
            repo,
            repo_id,
        })
    }

    /// `owner/repo`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }
}
