//! Text from outside (members' messages, names, circle names, announcement
//! fields, reasons given by peers) made safe to put on a terminal. The TUI
//! and every CLI output use these two functions and nothing else.
//!
//! A terminal acts on what it is sent: an escape sequence from a member
//! could retitle the window, clear the screen, move the cursor to forge a
//! line, or write the clipboard (OSC 52); bidirectional overrides and
//! isolates reorder what is shown so that one text reads as another.
//! So, before display:
//!
//! - escape sequences are removed whole: CSI (`ESC [` … final byte), OSC
//!   (`ESC ]` … BEL or ST), DCS, SOS, PM and APC strings (… ST), any other
//!   `ESC x`, and their 8-bit C1 forms (U+009B CSI, U+009D OSC, …);
//! - every other C0 and C1 control and DEL becomes U+FFFD (shown as �),
//!   except newline (kept by [`clean`], shown as `⏎` by [`clean_line`])
//!   and tab (a space);
//! - bidirectional embeddings, overrides, isolates and marks (U+202A–202E,
//!   U+2066–2069, U+200E, U+200F, U+061C) are removed.

/// Multi-line text (a message body): newlines kept.
pub fn clean(text: &str) -> String {
    sanitise(text, false)
}

/// One line (a name, a field, a reason): a newline shows as `⏎`, so no
/// text can start a line of its own and pass for another.
pub fn clean_line(text: &str) -> String {
    sanitise(text, true)
}

const REPLACEMENT: char = '\u{FFFD}';

/// A character a terminal acts on or that reorders text: every control
/// (C0, DEL, C1) and every bidirectional control.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// What comes after an introducer, up to where the sequence ends.
#[derive(Clone, Copy, PartialEq)]
enum Skip {
    /// Parameters and intermediates (0x20–0x3F), then one final byte (0x40–0x7E).
    Csi,
    /// A control string: ends at BEL, ST (`ESC \` or U+009C).
    Str,
}

fn sanitise(text: &str, one_line: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let skip = match c {
            '\u{1b}' => match chars.next() {
                Some('[') => Some(Skip::Csi),
                Some(']' | 'P' | 'X' | '^' | '_') => Some(Skip::Str),
                // Any other escape: ESC and the character after it. A few
                // (ESC ( B, ESC # 8 …) take one more, which is harmless text.
                Some(_) | None => None,
            },
            '\u{9b}' => Some(Skip::Csi),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => Some(Skip::Str),
            '\n' if one_line => {
                out.push('⏎');
                continue;
            }
            '\n' => {
                out.push('\n');
                continue;
            }
            '\t' => {
                out.push(' ');
                continue;
            }
            c if c.is_control() => {
                out.push(REPLACEMENT);
                continue;
            }
            c if is_bidi_control(c) => continue,
            c => {
                out.push(c);
                continue;
            }
        };
        match skip {
            Some(Skip::Csi) => {
                // Bounded by the text: a sequence that never ends eats the rest.
                for n in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&n) || !('\u{20}'..='\u{3f}').contains(&n) {
                        break;
                    }
                }
            }
            Some(Skip::Str) => {
                while let Some(n) = chars.next() {
                    if n == '\u{7}' || n == '\u{9c}' {
                        break;
                    }
                    if n == '\u{1b}' {
                        if chars.peek() == Some(&'\\') {
                            chars.next();
                        }
                        break;
                    }
                }
            }
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escape_sequences_go_whole() {
        // OSC 52: write "hello" to the clipboard, BEL- and ST-terminated.
        assert_eq!(clean("a\u{1b}]52;c;aGVsbG8=\u{7}b"), "ab");
        assert_eq!(clean("a\u{1b}]52;c;aGVsbG8=\u{1b}\\b"), "ab");
        // Window title, clear screen, cursor home, colours.
        assert_eq!(clean("\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[H\u{1b}[31mred\u{1b}[0m"), "red");
        // 8-bit forms.
        assert_eq!(clean("x\u{9b}2Jy\u{9d}52;c;Zm9v\u{9c}z"), "xyz");
        // DCS and other escapes.
        assert_eq!(clean("\u{1b}Pq#0\u{1b}\\ok\u{1b}c"), "ok");
    }

    #[test]
    fn controls_and_bidi_are_neutralised() {
        assert_eq!(clean("evil\u{202E}txt.exe"), "eviltxt.exe");
        assert_eq!(clean("\u{2067}abc\u{2069}\u{200F}"), "abc");
        assert_eq!(clean("a\rb\u{8}c\u{7f}"), "a\u{FFFD}b\u{FFFD}c\u{FFFD}");
        assert_eq!(clean("one\ntwo\tthree"), "one\ntwo three");
        assert_eq!(clean_line("one\nAna: forged"), "one⏎Ana: forged");
        assert_eq!(clean("Grüße ✊ 横断幕 مرحبا"), "Grüße ✊ 横断幕 مرحبا");
    }

    proptest! {
        #[test]
        fn nothing_a_terminal_acts_on_survives(s in "\\PC*|[\\x00-\\x20\\x7f-\\u{9f}\\u{202a}-\\u{202e}\\u{2066}-\\u{2069}a\\[\\]]{0,64}") {
            for out in [clean(&s), clean_line(&s)] {
                prop_assert!(!out.chars().any(|c| (c.is_control() && c != '\n') || is_bidi_control(c)), "{out:?}");
            }
            prop_assert!(!clean_line(&s).contains('\n'));
        }
    }
}
