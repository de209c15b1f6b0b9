//! Code for the pages: syntax highlighting (syntect, classes styled by a sheet made from one
//! of its themes at start) and a unified diff laid out side by side.

use syntect::html::{css_for_theme_with_class_style, ClassStyle, ClassedHTMLGenerator};
use syntect::parsing::SyntaxSet;
use syntect::util::LinesWithEndings;

/// Files larger than this are shown without highlighting (it would take too long).
const HIGHLIGHT_LIMIT: usize = 512 * 1024;

const STYLE: ClassStyle = ClassStyle::SpacedPrefixed { prefix: "hl-" };

/// Highlights source files as HTML.
pub struct Highlighter {
    syntaxes: SyntaxSet,
    css: String,
}

impl Highlighter {
    /// Loads the grammars and makes the style sheet.
    pub fn new() -> Self {
        let themes = syntect::highlighting::ThemeSet::load_defaults();
        let css = themes
            .themes
            .get("InspiredGitHub")
            .and_then(|t| css_for_theme_with_class_style(t, STYLE).ok())
            .unwrap_or_default();
        Highlighter {
            syntaxes: SyntaxSet::load_defaults_newlines(),
            css,
        }
    }

    /// The style sheet of the classes [`Highlighter::html`] emits.
    pub fn css(&self) -> &str {
        &self.css
    }

    /// `text` (the file at `path`) as escaped HTML with highlighting spans; plain escaped
    /// text for unknown or very large files.
    pub fn html(&self, path: &str, text: &str) -> String {
        let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or(path);
        let name = path.rsplit('/').next().unwrap_or(path);
        let syntax = self
            .syntaxes
            .find_syntax_by_extension(ext)
            .or_else(|| self.syntaxes.find_syntax_by_extension(name))
            .or_else(|| {
                text.lines()
                    .next()
                    .and_then(|l| self.syntaxes.find_syntax_by_first_line(l))
            });
        let Some(syntax) = syntax.filter(|_| text.len() <= HIGHLIGHT_LIMIT) else {
            return super::chart::escape(text);
        };
        let mut generator =
            ClassedHTMLGenerator::new_with_class_style(syntax, &self.syntaxes, STYLE);
        for line in LinesWithEndings::from(text) {
            if generator
                .parse_html_for_line_which_includes_newline(line)
                .is_err()
            {
                return super::chart::escape(text);
            }
        }
        generator.finalize()
    }
}

/// One row of a side-by-side diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Row {
    /// A hunk header (`@@ -1,3 +1,4 @@ fn main`).
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

/// A unified diff (as `snapshot::diff` writes it) as side-by-side rows: deleted and added
/// lines of a block are paired, context lines sit on both sides.
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
    for line in patch.lines() {
        if line.starts_with("--- ") || line.starts_with("+++ ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("@@") {
            flush(&mut rows, &mut dels, &mut adds);
            // "@@ -a,b +c,d @@ …"
            let mut nums = rest.split_whitespace();
            let start = |t: Option<&str>| {
                t.and_then(|t| t.get(1..))
                    .and_then(|t| t.split(',').next())
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(1)
            };
            old_no = start(nums.next());
            new_no = start(nums.next());
            rows.push(Row::Hunk(line.to_string()));
        } else if let Some(text) = line.strip_prefix('-') {
            dels.push((old_no, text.to_string()));
            old_no += 1;
        } else if let Some(text) = line.strip_prefix('+') {
            adds.push((new_no, text.to_string()));
            new_no += 1;
        } else if let Some(text) = line.strip_prefix(' ') {
            flush(&mut rows, &mut dels, &mut adds);
            rows.push(Row::Line {
                left: Some((old_no, text.to_string())),
                right: Some((new_no, text.to_string())),
                same: true,
            });
            old_no += 1;
            new_no += 1;
        } else if line.starts_with('\\') {
            // "\ No newline at end of file"
        } else if !line.is_empty() {
            // "Binary file … differs"
            flush(&mut rows, &mut dels, &mut adds);
            rows.push(Row::Hunk(line.to_string()));
        }
    }
    flush(&mut rows, &mut dels, &mut adds);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_deleted_and_added_lines() {
        let patch = "--- a/x.rs\n+++ b/x.rs\n@@ -1,3 +1,4 @@\n fn main() {\n-    a();\n+    b();\n+    c();\n }\n";
        let rows = side_by_side(patch);
        let line = |l: Option<(usize, &str)>, r: Option<(usize, &str)>, same| Row::Line {
            left: l.map(|(n, t)| (n, t.to_string())),
            right: r.map(|(n, t)| (n, t.to_string())),
            same,
        };
        assert_eq!(
            rows,
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
    fn highlights_rust_and_escapes_everything() {
        let h = Highlighter::new();
        let html = h.html("src/main.rs", "fn main() { let s = \"<b>\"; }\n");
        assert!(html.contains("hl-"), "{html}");
        assert!(
            html.contains("&lt;b&gt;") && !html.contains("<b>"),
            "{html}"
        );
        let plain = h.html("notes.unknownext", "<script>alert(1)</script>\n");
        assert!(!plain.contains("<script>"), "{plain}");
        assert!(h.css().contains(".hl-"));
    }
}
