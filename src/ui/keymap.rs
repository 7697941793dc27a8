//! Key bindings as data: the defaults are a table, a user's `keys.conf`
//! (lines like `ctrl-q = quit`) overrides them, and the help screen is
//! generated from whatever is in force.

use std::collections::BTreeMap;
use std::fmt;

/// Everything a key can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Quit,
    Help,
    Send,
    NewLine,
    NextCircle,
    PrevCircle,
    ScrollUp,
    ScrollDown,
    HistoryPrev,
    HistoryNext,
    ToggleTrainer,
    SelectOlder,
    SelectNewer,
    Acknowledge,
    LineStart,
    LineEnd,
    DeleteWord,
    DeleteToStart,
    DeleteToEnd,
    Cancel,
    DemoPause,
    DemoNext,
}

impl Action {
    pub const ALL: [Action; 22] = [
        Action::Quit,
        Action::Help,
        Action::Send,
        Action::NewLine,
        Action::NextCircle,
        Action::PrevCircle,
        Action::ScrollUp,
        Action::ScrollDown,
        Action::HistoryPrev,
        Action::HistoryNext,
        Action::ToggleTrainer,
        Action::SelectOlder,
        Action::SelectNewer,
        Action::Acknowledge,
        Action::LineStart,
        Action::LineEnd,
        Action::DeleteWord,
        Action::DeleteToStart,
        Action::DeleteToEnd,
        Action::Cancel,
        Action::DemoPause,
        Action::DemoNext,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Quit => "quit",
            Action::Help => "help",
            Action::Send => "send",
            Action::NewLine => "newline",
            Action::NextCircle => "next-circle",
            Action::PrevCircle => "prev-circle",
            Action::ScrollUp => "scroll-up",
            Action::ScrollDown => "scroll-down",
            Action::HistoryPrev => "history-prev",
            Action::HistoryNext => "history-next",
            Action::ToggleTrainer => "trainer-view",
            Action::SelectOlder => "select-older",
            Action::SelectNewer => "select-newer",
            Action::Acknowledge => "acknowledge",
            Action::LineStart => "line-start",
            Action::LineEnd => "line-end",
            Action::DeleteWord => "delete-word",
            Action::DeleteToStart => "delete-to-start",
            Action::DeleteToEnd => "delete-to-end",
            Action::Cancel => "cancel",
            Action::DemoPause => "demo-pause",
            Action::DemoNext => "demo-next",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Action::Quit => "quit kolo",
            Action::Help => "show or hide this help",
            Action::Send => "send the message (or run a /command)",
            Action::NewLine => "start a new line in the message",
            Action::NextCircle => "complete a command or name; on an empty line, next circle",
            Action::PrevCircle => "previous circle",
            Action::ScrollUp => "scroll messages up",
            Action::ScrollDown => "scroll messages down",
            Action::HistoryPrev => "previous sent line",
            Action::HistoryNext => "next sent line",
            Action::ToggleTrainer => "trainer view: what members and the network see",
            Action::SelectOlder => "select an older message (trainer view)",
            Action::SelectNewer => "select a newer message (trainer view)",
            Action::Acknowledge => "acknowledge the pinned announcement (the circle sees it)",
            Action::LineStart => "cursor to the start of the line",
            Action::LineEnd => "cursor to the end of the line",
            Action::DeleteWord => "delete the word before the cursor",
            Action::DeleteToStart => "delete to the start of the line",
            Action::DeleteToEnd => "delete to the end of the line",
            Action::Cancel => "close a dialog, clear the input",
            Action::DemoPause => "kolo demo: pause or resume the script (also space, input empty)",
            Action::DemoNext => "kolo demo: run the script's next step now (also n, paused, input empty)",
        }
    }

    fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// A key with modifiers, independent of the terminal library.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
    pub alt: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyCode {
    Char(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Up,
    Down,
    PageUp,
    PageDown,
    Left,
    Right,
    Home,
    End,
    Backspace,
    Delete,
    F(u8),
}

impl Key {
    /// A key without modifiers.
    pub fn plain(code: KeyCode) -> Key {
        Key { code, ctrl: false, alt: false }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        match self.code {
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::BackTab => f.write_str("shift-tab"),
            KeyCode::Up => f.write_str("up"),
            KeyCode::Down => f.write_str("down"),
            KeyCode::PageUp => f.write_str("pageup"),
            KeyCode::PageDown => f.write_str("pagedown"),
            KeyCode::Left => f.write_str("left"),
            KeyCode::Right => f.write_str("right"),
            KeyCode::Home => f.write_str("home"),
            KeyCode::End => f.write_str("end"),
            KeyCode::Backspace => f.write_str("backspace"),
            KeyCode::Delete => f.write_str("delete"),
            KeyCode::F(n) => write!(f, "f{n}"),
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeymapError {
    #[error("line {0}: expected `key = action`")]
    Syntax(usize),
    #[error("line {0}: unknown key {1:?}")]
    UnknownKey(usize, String),
    #[error("line {0}: unknown action {1:?}")]
    UnknownAction(usize, String),
}

pub fn parse_key(text: &str) -> Option<Key> {
    let mut ctrl = false;
    let mut alt = false;
    let mut rest = text.trim().to_lowercase();
    loop {
        if let Some(r) = rest.strip_prefix("ctrl-") {
            ctrl = true;
            rest = r.to_owned();
        } else if let Some(r) = rest.strip_prefix("alt-") {
            alt = true;
            rest = r.to_owned();
        } else {
            break;
        }
    }
    let code = match rest.as_str() {
        "enter" => KeyCode::Enter,
        "esc" => KeyCode::Esc,
        "tab" => KeyCode::Tab,
        "shift-tab" => KeyCode::BackTab,
        "up" => KeyCode::Up,
        "down" => KeyCode::Down,
        "pageup" => KeyCode::PageUp,
        "pagedown" => KeyCode::PageDown,
        "left" => KeyCode::Left,
        "right" => KeyCode::Right,
        "home" => KeyCode::Home,
        "end" => KeyCode::End,
        "backspace" => KeyCode::Backspace,
        "delete" => KeyCode::Delete,
        f if f.len() >= 2 && f.starts_with('f') && f[1..].parse::<u8>().is_ok() => KeyCode::F(f[1..].parse().ok()?),
        c if c.chars().count() == 1 => KeyCode::Char(c.chars().next()?),
        _ => return None,
    };
    Some(Key { code, ctrl, alt })
}

/// The defaults, as data.
pub const DEFAULTS: &str = "\
ctrl-q = quit
ctrl-c = quit
f1 = help
enter = send
ctrl-n = newline
alt-enter = newline
tab = next-circle
shift-tab = prev-circle
pageup = scroll-up
pagedown = scroll-down
up = history-prev
down = history-next
f2 = trainer-view
ctrl-t = trainer-view
alt-up = select-older
alt-down = select-newer
f3 = acknowledge
ctrl-a = line-start
ctrl-e = line-end
ctrl-w = delete-word
ctrl-u = delete-to-start
ctrl-k = delete-to-end
esc = cancel
f5 = demo-pause
f6 = demo-next
";

#[derive(Clone, Debug)]
pub struct Keymap {
    bindings: BTreeMap<Key, Action>,
    /// Keys in the order they were given (user overrides first), so hints
    /// on screen name the key the user chose, or the first default.
    order: Vec<Key>,
}

impl Keymap {
    pub fn parse(text: &str) -> Result<Keymap, KeymapError> {
        let mut bindings = BTreeMap::new();
        let mut order = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (k, a) = line.split_once('=').ok_or(KeymapError::Syntax(i + 1))?;
            let key = parse_key(k).ok_or_else(|| KeymapError::UnknownKey(i + 1, k.trim().to_owned()))?;
            let action =
                Action::from_name(a.trim()).ok_or_else(|| KeymapError::UnknownAction(i + 1, a.trim().to_owned()))?;
            bindings.insert(key, action);
            order.push(key);
        }
        Ok(Keymap { bindings, order })
    }

    /// The defaults with a user's overrides on top.
    pub fn with_overrides(user: &str) -> Result<Keymap, KeymapError> {
        let mut map = Keymap::default();
        let user = Keymap::parse(user)?;
        map.bindings.extend(user.bindings);
        map.order.splice(0..0, user.order);
        Ok(map)
    }

    pub fn action(&self, key: &Key) -> Option<Action> {
        self.bindings.get(key).copied()
    }

    /// Help lines generated from the bindings in force: keys, then what they do.
    pub fn help(&self) -> Vec<(String, &'static str)> {
        Action::ALL
            .into_iter()
            .filter_map(|a| {
                let keys: Vec<String> = self
                    .order
                    .iter()
                    .filter(|k| self.bindings.get(k) == Some(&a))
                    .map(ToString::to_string)
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                (!keys.is_empty()).then(|| (keys.join(", "), a.describe()))
            })
            .collect()
    }

    /// The key bound to `action`, for hints on screen.
    pub fn key_for(&self, action: Action) -> Option<Key> {
        self.order.iter().find(|k| self.bindings.get(k) == Some(&action)).copied()
    }
}

impl Default for Keymap {
    fn default() -> Self {
        // The defaults are a constant checked by a test.
        Keymap::parse(DEFAULTS).unwrap_or(Keymap { bindings: BTreeMap::new(), order: Vec::new() })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_cover_every_action() {
        let map = Keymap::parse(DEFAULTS).unwrap();
        for a in Action::ALL {
            assert!(map.key_for(a).is_some(), "{a:?} has no default key");
        }
        assert_eq!(map.action(&parse_key("ctrl-q").unwrap()), Some(Action::Quit));
        assert!(map.help().iter().any(|(k, d)| k.contains("ctrl-q") && d.contains("quit")));
    }

    #[test]
    fn overrides_and_errors() {
        let map = Keymap::with_overrides("ctrl-x = quit # my habit\n").unwrap();
        assert_eq!(map.action(&parse_key("ctrl-x").unwrap()), Some(Action::Quit));
        assert_eq!(map.action(&parse_key("ctrl-q").unwrap()), Some(Action::Quit));
        assert_eq!(Keymap::parse("nonsense").unwrap_err(), KeymapError::Syntax(1));
        assert!(matches!(Keymap::parse("ctrl-ß-x = quit"), Err(KeymapError::UnknownKey(1, _))));
        assert!(matches!(Keymap::parse("f3 = fly"), Err(KeymapError::UnknownAction(1, _))));
    }
}
