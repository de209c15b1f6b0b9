//! Reading a unified diff, as `snapshot::diff` writes it, for the pages: each line told apart
//! by where it stands — a hunk's header says how many old and new lines follow, so a deleted
//! line `-- a comment` (written `--- a comment`) is a deletion, not a file header — and laid
//! out side by side.

/// What a line of a unified diff is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Outside any hunk: `--- a/path`, `+++ b/path`, `Binary file … differs`.
    Header,
    /// A hunk's header: `@@ -1,3 +1,4 @@ fn main`.
    Hunk,
    /// In both versions (` text`).
    Context,
    /// In the old version only (`-text`).
    Deleted,
    /// In the new version only (`+text`).
    Added,
    /// `\ No newline at end of file`.
    Note,
}

/// A hunk header's old and new first lines and counts (`-a,b +c,d`; a count left out is 1).
fn hunk_ranges(line: &str) -> Option<((usize, usize), (usize, usize))> {
    let mut parts = line.strip_prefix("@@")?.split_whitespace();
    let range = |text: &str| -> Option<(usize, usize)> {
        match text.split_once(',') {
            Some((start, count)) => Some((start.parse().ok()?, count.parse().ok()?)),
            None => Some((text.parse().ok()?, 1)),
        }
    };
    let old = range(parts.next()?.strip_prefix('-')?)?;
    let new = range(parts.next()?.strip_prefix('+')?)?;
    Some((old, new))
}

/// Every line of `patch` with its kind.
pub fn lines(patch: &str) -> Vec<(Kind, &str)> {
    let (mut old_left, mut new_left) = (0usize, 0usize);
    patch
        .lines()
        .map(|line| {
            let kind = if old_left > 0 || new_left > 0 {
                match line.as_bytes().first() {
                    Some(b'-') if old_left > 0 => {
                        old_left -= 1;
                        Kind::Deleted
                    }
                    Some(b'+') if new_left > 0 => {
                        new_left -= 1;
                        Kind::Added
                    }
                    Some(b'\\') => Kind::Note,
                    // ` text`, or an empty context line whose space was lost.
                    _ => {
                        old_left = old_left.saturating_sub(1);
                        new_left = new_left.saturating_sub(1);
                        Kind::Context
                    }
                }
            } else if line.starts_with("@@") {
                if let Some(((_, old), (_, new))) = hunk_ranges(line) {
                    (old_left, new_left) = (old, new);
                }
                Kind::Hunk
            } else if line.starts_with('\\') {
                Kind::Note
            } else {
                Kind::Header
            };
            (kind, line)
        })
        .collect()
}

/// One row of a side-by-side diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Row {
    /// A hunk header (`@@ -1,3 +1,4 @@ fn main`), or a note on the file (`Binary file …`).
    Hunk(String),
    /// A line on the left (old), the right (new) or both.
    Line {
        /// Old line number and text.
        left: Option<(usize, String)>,
        /// New line number and text.
        right: Option<(usize, String)>,
        /// The same on both sides.
        same: bool,
    },
}

/// `patch` as side-by-side rows: deleted and added lines of a block are paired, context
/// lines sit on both sides, each with its line number.
pub fn side_by_side(patch: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let (mut old_no, mut new_no) = (0usize, 0usize);
    let mut dels: Vec<(usize, String)> = Vec::new();
    let mut adds: Vec<(usize, String)> = Vec::new();
    let flush =
        |rows: &mut Vec<Row>, dels: &mut Vec<(usize, String)>, adds: &mut Vec<(usize, String)>| {
            let n = dels.len().max(adds.len());
            let mut d = dels.drain(..);
            let mut a = adds.drain(..);
            for _ in 0..n {
                rows.push(Row::Line {
                    left: d.next(),
                    right: a.next(),
                    same: false,
                });
            }
        };
    let text = |line: &str| line.get(1..).unwrap_or("").to_string();
    for (kind, line) in lines(patch) {
        match kind {
            Kind::Header => {
                if !(line.is_empty() || line.starts_with("--- ") || line.starts_with("+++ ")) {
                    flush(&mut rows, &mut dels, &mut adds);
                    rows.push(Row::Hunk(line.to_string()));
                }
            }
            Kind::Hunk => {
                flush(&mut rows, &mut dels, &mut adds);
                let ((old, _), (new, _)) = hunk_ranges(line).unwrap_or(((1, 0), (1, 0)));
                (old_no, new_no) = (old, new);
                rows.push(Row::Hunk(line.to_string()));
            }
            Kind::Deleted => {
                dels.push((old_no, text(line)));
                old_no += 1;
            }
            Kind::Added => {
                adds.push((new_no, text(line)));
                new_no += 1;
            }
            Kind::Context => {
                flush(&mut rows, &mut dels, &mut adds);
                rows.push(Row::Line {
                    left: Some((old_no, text(line))),
                    right: Some((new_no, text(line))),
                    same: true,
                });
                old_no += 1;
                new_no += 1;
            }
            Kind::Note => {}
        }
    }
    flush(&mut rows, &mut dels, &mut adds);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(l: Option<(usize, &str)>, r: Option<(usize, &str)>, same: bool) -> Row {
        Row::Line {
            left: l.map(|(n, t)| (n, t.to_string())),
            right: r.map(|(n, t)| (n, t.to_string())),
            same,
        }
    }

    #[test]
    fn pairs_deleted_and_added_lines() {
        let patch = "--- a/x.rs\n+++ b/x.rs\n@@ -1,3 +1,4 @@\n fn main() {\n-    a();\n+    b();\n+    c();\n }\n";
        assert_eq!(
            side_by_side(patch),
            vec![
                Row::Hunk("@@ -1,3 +1,4 @@".into()),
                line(Some((1, "fn main() {")), Some((1, "fn main() {")), true),
                line(Some((2, "    a();")), Some((2, "    b();")), false),
                line(None, Some((3, "    c();")), false),
                line(Some((3, "}")), Some((4, "}")), true),
            ]
        );
    }

    #[test]
    fn lines_that_start_like_file_headers_are_changes() {
        // SQL, Lua and Haskell comments: deleted `-- …` reads `--- …`, added `++ …` `+++ …`,
        // in the diff the snapshot writes.
        let old = "select 1;\n-- the old way\nselect 2;\nselect 3;\n";
        let new = "select 1;\n++ counter\n-- the new way\nselect 2;\nselect 3;\n";
        let patch = similar::TextDiff::from_lines(old, new)
            .unified_diff()
            .header("a/q.sql", "b/q.sql")
            .to_string();
        let kinds: Vec<Kind> = lines(&patch).into_iter().map(|(k, _)| k).collect();
        use Kind::*;
        assert_eq!(
            kinds,
            [Header, Header, Hunk, Context, Deleted, Added, Added, Context, Context],
            "{patch}"
        );
        assert_eq!(
            side_by_side(&patch)[1..],
            [
                line(Some((1, "select 1;")), Some((1, "select 1;")), true),
                line(Some((2, "-- the old way")), Some((2, "++ counter")), false),
                line(None, Some((3, "-- the new way")), false),
                line(Some((3, "select 2;")), Some((4, "select 2;")), true),
                line(Some((4, "select 3;")), Some((5, "select 3;")), true),
            ]
        );
    }

    #[test]
    fn notes_binary_files_and_one_line_hunks() {
        let patch = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+b\n";
        assert_eq!(
            side_by_side(patch)[1..],
            [line(Some((1, "a")), Some((1, "b")), false)]
        );
        assert_eq!(
            side_by_side("Binary file x.bin differs\n"),
            [Row::Hunk("Binary file x.bin differs".into())]
        );
    }
}
