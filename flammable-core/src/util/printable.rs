//! Text from outside (file names, messages, errors, a remote's manifest) made safe to print:
//! a name holding terminal escape sequences cannot rewrite the screen.

/// `text` on one line: its runs of whitespace, line breaks included, as one space each.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` with every control character escaped as Rust writes it (`\n`, `\u{1b}`), and
/// the characters that reorder text on screen (bidirectional overrides and isolates,
/// U+202A–U+202E and U+2066–U+2069), which could make a name read as another.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_hidden_control(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A character that changes the screen rather than showing itself.
pub fn is_hidden_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}
