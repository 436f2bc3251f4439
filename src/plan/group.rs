//! Grouped scale sets (docs/security.md: grouped scale sets): the hook
//! template of one member of a group, which `job-started` writes in the
//! group's runner pod when that member's job starts.

use super::checks::check_hook_template;
use super::planner::context;
use crate::config::{Group, Settings};
use crate::names::RepoNames;
use crate::templates::{self, Templates};
use crate::{Error, Result};

/// The names of `group`'s member `member` (an index into
/// `settings.repositories`) and the hook template its workflow pod must be
/// started with: its own job ServiceAccount, the fsGroup, its annotations.
pub fn member_hook_template(
    settings: &Settings,
    templates: &Templates,
    group: &Group,
    member: usize,
) -> Result<(RepoNames, String)> {
    let repo = settings
        .repositories
        .get(member)
        .filter(|_| group.members.contains(&member))
        .ok_or_else(|| Error::Internal {
            message: format!(
                "repository {member} is not a member of group {}",
                group.name
            ),
        })?;
    let names = RepoNames::group_member(settings, &group.name, repo);
    // One member's template must never name another's identity, nor the
    // runner's own ServiceAccount.
    let members: Vec<RepoNames> = group
        .members
        .iter()
        .map(|&m| RepoNames::group_member(settings, &group.name, &settings.repositories[m]))
        .collect();
    crate::names::check_group_collisions(&group.name, &members)?;
    let text = templates.render(templates::HOOK_TEMPLATE, &context(settings, repo, &names))?;
    check_hook_template(&text, &names).map_err(|message| Error::TemplateOutput {
        template: templates.describe(templates::HOOK_TEMPLATE),
        repository: names.repository.clone(),
        message,
    })?;
    Ok((names, text))
}
