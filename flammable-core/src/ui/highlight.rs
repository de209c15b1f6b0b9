//! Syntax highlighting for the code pages: syntect, its classes styled by a sheet made from
//! one of its themes.

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

#[cfg(test)]
mod tests {
    use super::*;

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
