//! A field path of the configuration (`repositories[2].aws.tags`), parsed
//! once: problems name fields by it, `locate` finds their line by it, and the
//! loader removes and renumbers entries by it.

/// One step of a key path (`a.b[2].c`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum PathStep {
    Key(String),
    Index(usize),
}

/// `a.b[2].c` → `[Key(a), Key(b), Index(2), Key(c)]`.
pub(super) fn path_steps(field: &str) -> Vec<PathStep> {
    let mut steps = Vec::new();
    for segment in field.split('.') {
        let (name, rest) = segment.split_once('[').unwrap_or((segment, ""));
        if !name.is_empty() {
            steps.push(PathStep::Key(name.to_owned()));
        }
        for index in rest.split('[') {
            if let Ok(i) = index.trim_end_matches(']').parse::<usize>() {
                steps.push(PathStep::Index(i));
            }
        }
    }
    steps
}

/// `a.b[2].c` from its steps.
pub(super) fn field_of(steps: &[PathStep]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            PathStep::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathStep::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_round_trips_through_its_steps() {
        for field in [
            "a",
            "repositories[2].aws.tags",
            "x[0][1].y",
            "kubernetes.names.role",
        ] {
            assert_eq!(field_of(&path_steps(field)), field);
        }
        assert_eq!(
            path_steps("r[2].a"),
            vec![
                PathStep::Key("r".into()),
                PathStep::Index(2),
                PathStep::Key("a".into())
            ]
        );
    }
}
