//! The input line: a small multi-line editor that moves by grapheme
//! (so accents, emoji and CJK characters are one step each), measures by
//! display width (wide characters take two cells), and remembers what was
//! sent for recall with up and down.

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// Lines kept for recall.
const HISTORY_LIMIT: usize = 200;

#[derive(Default)]
pub struct Input {
    text: String,
    /// Byte offset, always on a grapheme boundary.
    cursor: usize,
    history: Vec<String>,
    /// Position while recalling; `None` when editing a fresh line.
    recall: Option<usize>,
    /// What was being typed before recall started.
    draft: String,
}

impl Input {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub fn insert(&mut self, c: char) {
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
        self.recall = None;
    }

    pub fn insert_str(&mut self, s: &str) {
        self.text.insert_str(self.cursor, s);
        self.cursor += s.len();
        self.recall = None;
    }

    fn previous_boundary(&self) -> usize {
        self.text[..self.cursor].grapheme_indices(true).next_back().map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self) -> usize {
        self.text[self.cursor..].graphemes(true).next().map_or(self.cursor, |g| self.cursor + g.len())
    }

    /// The text before the cursor.
    pub fn before_cursor(&self) -> &str {
        &self.text[..self.cursor]
    }

    /// Replace the last `len` bytes before the cursor (a completion's
    /// prefix) with `with`.
    pub fn replace_before_cursor(&mut self, len: usize, with: &str) {
        let start = self.cursor.saturating_sub(len);
        if !self.text.is_char_boundary(start) {
            return;
        }
        self.text.replace_range(start..self.cursor, with);
        self.cursor = start + with.len();
        self.recall = None;
    }

    pub fn backspace(&mut self) {
        let start = self.previous_boundary();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    pub fn delete(&mut self) {
        let end = self.next_boundary();
        self.text.replace_range(self.cursor..end, "");
    }

    pub fn left(&mut self) {
        self.cursor = self.previous_boundary();
    }

    pub fn right(&mut self) {
        self.cursor = self.next_boundary();
    }

    /// To the start of the current line.
    pub fn home(&mut self) {
        self.cursor = self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1);
    }

    /// To the end of the current line.
    pub fn end(&mut self) {
        self.cursor = self.text[self.cursor..].find('\n').map_or(self.text.len(), |i| self.cursor + i);
    }

    /// Delete the word before the cursor and the spaces after it (ctrl-w).
    pub fn delete_word_back(&mut self) {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end_matches([' ', '\t']);
        let start = match trimmed.char_indices().rev().find(|(_, c)| c.is_whitespace()) {
            Some((i, c)) => i + c.len_utf8(),
            None => 0,
        };
        if start == self.cursor {
            // At the start of a line: join it to the one before.
            self.backspace();
            return;
        }
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
        self.recall = None;
    }

    /// Delete from the start of the current line to the cursor (ctrl-u).
    pub fn delete_to_line_start(&mut self) {
        let end = self.cursor;
        self.home();
        self.text.replace_range(self.cursor..end, "");
        self.recall = None;
    }

    /// Delete from the cursor to the end of the current line (ctrl-k).
    pub fn delete_to_line_end(&mut self) {
        let start = self.cursor;
        self.end();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
        self.recall = None;
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.cursor = 0;
        self.recall = None;
    }

    /// Take the line for sending and remember it.
    pub fn take(&mut self) -> String {
        let line = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.recall = None;
        if !line.trim().is_empty() && self.history.last() != Some(&line) {
            self.history.push(line.clone());
            if self.history.len() > HISTORY_LIMIT {
                self.history.remove(0);
            }
        }
        line
    }

    pub fn history_prev(&mut self) {
        let next = match self.recall {
            None if self.history.is_empty() => return,
            None => {
                self.draft = self.text.clone();
                self.history.len() - 1
            }
            Some(0) => 0,
            Some(i) => i - 1,
        };
        self.recall = Some(next);
        self.text = self.history[next].clone();
        self.cursor = self.text.len();
    }

    pub fn history_next(&mut self) {
        let Some(i) = self.recall else {
            return;
        };
        if i + 1 < self.history.len() {
            self.recall = Some(i + 1);
            self.text = self.history[i + 1].clone();
        } else {
            self.recall = None;
            self.text = std::mem::take(&mut self.draft);
        }
        self.cursor = self.text.len();
    }

    pub fn line_count(&self) -> usize {
        self.text.split('\n').count()
    }

    /// The cursor as (line, display column).
    pub fn cursor_position(&self) -> (usize, usize) {
        let before = &self.text[..self.cursor];
        let line = before.matches('\n').count();
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[start..].width())
    }

    /// The lines to show in a box `width` cells wide: each line scrolled
    /// horizontally so the cursor stays visible on its own line.
    pub fn visible_lines(&self, width: usize) -> Vec<String> {
        let (cursor_line, cursor_col) = self.cursor_position();
        let width = width.max(2);
        self.text
            .split('\n')
            .enumerate()
            .map(|(i, line)| {
                let skip = if i == cursor_line && cursor_col >= width { cursor_col + 1 - width } else { 0 };
                clip(line, skip, width)
            })
            .collect()
    }

    /// The cursor's column within the box after horizontal scrolling.
    pub fn visible_cursor_column(&self, width: usize) -> usize {
        let (_, col) = self.cursor_position();
        let width = width.max(2);
        if col >= width { width - 1 } else { col }
    }
}

/// The part of `line` from display column `skip`, at most `width` wide;
/// a wide character cut in half is left out.
pub fn clip(line: &str, skip: usize, width: usize) -> String {
    let mut out = String::new();
    let (mut col, mut used) = (0usize, 0usize);
    for g in line.graphemes(true) {
        let w = g.width();
        if col < skip {
            col += w;
            continue;
        }
        if used + w > width {
            break;
        }
        out.push_str(g);
        used += w;
        col += w;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn editing_moves_by_grapheme_and_measures_width() {
        let mut input = Input::default();
        for c in "né 日本".chars() {
            input.insert(c);
        }
        assert_eq!(input.cursor_position(), (0, 7), "n é space 日(2) 本(2)");
        input.left();
        input.backspace();
        assert_eq!(input.text(), "né 本");
        input.home();
        input.delete();
        assert_eq!(input.text(), "é 本");
        // A flag is two code points and one grapheme.
        input.end();
        input.insert_str("🇰🇪");
        input.backspace();
        assert_eq!(input.text(), "é 本");
    }

    #[test]
    fn newlines_history_and_recall() {
        let mut input = Input::default();
        input.insert_str("first");
        assert_eq!(input.take(), "first");
        input.insert_str("line one");
        input.insert('\n');
        input.insert_str("two");
        assert_eq!(input.line_count(), 2);
        assert_eq!(input.cursor_position(), (1, 3));
        assert_eq!(input.take(), "line one\ntwo");
        input.insert_str("draft");
        input.history_prev();
        assert_eq!(input.text(), "line one\ntwo");
        input.history_prev();
        assert_eq!(input.text(), "first");
        input.history_prev();
        assert_eq!(input.text(), "first");
        input.history_next();
        input.history_next();
        assert_eq!(input.text(), "draft");
    }

    #[test]
    fn long_lines_scroll_to_keep_the_cursor_visible() {
        let mut input = Input::default();
        input.insert_str("abcdefghij");
        assert_eq!(input.visible_lines(5), vec!["ghij".to_string()]);
        assert_eq!(input.visible_cursor_column(5), 4);
        assert_eq!(clip("日本語", 1, 4), "本語");
    }
}
