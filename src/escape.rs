//! Untrusted text (file names, entry names, messages that quote them) made safe for a
//! terminal: control characters are shown escaped, so escape sequences cannot rewrite the
//! screen or forge lines. Pure.

/// A file name or other untrusted text for a terminal: control characters (escape sequences,
/// newlines, ...) are shown escaped, as `\u{1b}`, so they cannot rewrite the screen or forge lines.
pub fn escape(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `escape` for multi-line messages: newlines stay, every other control character is escaped.
pub fn escape_lines(s: &str) -> String {
    s.split('\n').map(escape).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters() {
        assert_eq!(escape("/usr/bin/ls"), "/usr/bin/ls");
        assert_eq!(escape("a\x1b[31mred\nx"), "a\\u{1b}[31mred\\nx");
        assert_eq!(escape_lines("a\x1b[2J\nb\r"), "a\\u{1b}[2J\nb\\r");
    }
}
