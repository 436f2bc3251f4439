//! Where a key of a configuration file is: a field path in
//! (`kubernetes.names.role`, `repositories[2].aws.tags`), the 1-based line
//! and column of its key out. Pure, and best effort: block-style YAML is
//! followed key by key and item by item; where the path enters a flow
//! collection (`[a, b]`, `{k: v}`) or a key is absent, the deepest key found
//! on the way is returned, so a problem always points as close as the file
//! allows.

use super::path::{PathStep, path_steps};

/// What one line holds: the column of its first character, the columns of
/// the sequence dashes it starts with, and the key after them (if any).
struct Line<'a> {
    indent: usize,
    dashes: Vec<usize>,
    key: Option<(usize, &'a str)>,
}

fn parse_line(line: &str) -> Option<Line<'_>> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let mut rest = &line[indent..];
    if rest.is_empty() || rest.starts_with('#') {
        return None;
    }
    let mut col = indent;
    let mut dashes = Vec::new();
    while rest == "-" || rest.starts_with("- ") {
        dashes.push(col);
        let after = rest[1..].trim_start_matches(' ');
        col += rest.len() - after.len();
        rest = after;
    }
    let key = rest
        .split_once(':')
        .filter(|(_, v)| v.is_empty() || v.starts_with(' '))
        .filter(|(k, _)| !k.is_empty() && !k.starts_with(['{', '[', '#']))
        .map(|(k, _)| (col, k.trim_matches(['"', '\''])));
    Some(Line {
        indent,
        dashes,
        key,
    })
}

/// The 1-based `(line, column)` of the key `path` names in `text`.
pub(crate) fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let lines: Vec<Option<Line>> = text.lines().map(parse_line).collect();
    let (mut from, mut to) = (0, lines.len());
    // The column a scope's entries start at; `None` until its first line.
    let mut column: Option<usize> = None;
    let mut found = None;
    for step in path_steps(path) {
        let scope = lines
            .iter()
            .enumerate()
            .take(to)
            .skip(from)
            .filter_map(|(i, l)| l.as_ref().map(|l| (i, l)));
        let hit = match &step {
            PathStep::Key(key) => {
                let mut hit = None;
                for (i, l) in scope {
                    let Some((col, k)) = l.key else { continue };
                    let col_of_scope = *column.get_or_insert(col);
                    if col == col_of_scope && k == key.as_str() {
                        hit = Some((i, col));
                        break;
                    }
                }
                hit
            }
            PathStep::Index(n) => {
                let n = *n;
                let mut hit = None;
                let mut seen = 0;
                for (i, l) in scope {
                    // The dash that opens an item of this sequence.
                    let dash = l.dashes.first().copied().or(l.key.map(|(c, _)| c));
                    let Some(dash) = dash else { continue };
                    let col_of_scope = *column.get_or_insert(dash);
                    if l.dashes.first() == Some(&col_of_scope) {
                        if seen == n {
                            hit = Some((i, col_of_scope));
                            break;
                        }
                        seen += 1;
                    }
                }
                hit
            }
        };
        let Some((line, col)) = hit else {
            return found;
        };
        found = Some((line + 1, col + 1));
        // The entry's value: the lines after it (or, for a sequence item, from
        // its own line, where its first key stands) until one at its column
        // or less.
        let (start, next_column) = match step {
            PathStep::Key(_) => (line + 1, None),
            PathStep::Index(_) => (
                line,
                lines[line]
                    .as_ref()
                    .and_then(|l| l.dashes.get(1).copied().or(l.key.map(|(c, _)| c))),
            ),
        };
        let end = lines
            .iter()
            .enumerate()
            .take(to)
            .skip(line + 1)
            .find(|(_, l)| l.as_ref().is_some_and(|l| l.indent <= col))
            .map_or(to, |(i, _)| i);
        (from, to, column) = (start, end, next_column);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
github:
  owner: acme   # the organization
  url: https://github.com
repositories:
  - api
  - name: web
    aws:
      tags: {team: web}
      maxSessionDuration: 10
  -   name: docs
      kubernetes:
        extraRules:
          - apiGroups: ['']
            resources: [pods]
          - verbs: [get]
kubernetes:
  names:
    role: '{repo}'
  labels: {a: b}
select: {names: [x]}
";

    #[test]
    fn keys_in_nested_mappings() {
        assert_eq!(locate(TEXT, "github"), Some((1, 1)));
        assert_eq!(locate(TEXT, "github.url"), Some((3, 3)));
        assert_eq!(locate(TEXT, "kubernetes.names.role"), Some((18, 5)));
        assert_eq!(locate(TEXT, "kubernetes.labels"), Some((19, 3)));
    }

    #[test]
    fn items_of_sequences() {
        assert_eq!(locate(TEXT, "repositories[0]"), Some((5, 3)));
        assert_eq!(locate(TEXT, "repositories[1]"), Some((6, 3)));
        assert_eq!(locate(TEXT, "repositories[1].name"), Some((6, 5)));
        assert_eq!(
            locate(TEXT, "repositories[1].aws.maxSessionDuration"),
            Some((9, 7))
        );
        assert_eq!(locate(TEXT, "repositories[2].name"), Some((10, 7)));
        assert_eq!(
            locate(TEXT, "repositories[2].kubernetes.extraRules[1]"),
            Some((15, 11))
        );
    }

    #[test]
    fn flow_collections_and_absent_keys_point_at_the_deepest_key_found() {
        // `tags` is a flow mapping: its key is as deep as the file goes.
        assert_eq!(locate(TEXT, "repositories[1].aws.tags"), Some((8, 7)));
        assert_eq!(locate(TEXT, "select.names"), Some((20, 1)));
        assert_eq!(locate(TEXT, "aws.accountId"), None);
        assert_eq!(locate(TEXT, "github.auth.token"), Some((1, 1)));
        assert_eq!(locate(TEXT, "repositories[7]"), Some((4, 1)));
    }

    #[test]
    fn a_key_of_the_same_name_deeper_down_is_not_taken() {
        let text = "a:\n  b:\n    name: deep\n  name: shallow\n";
        assert_eq!(locate(text, "a.name"), Some((4, 3)));
    }
}
