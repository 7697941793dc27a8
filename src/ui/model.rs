//! The terminal client's state and its pure update functions.
//!
//! Owns: what is on screen (circles, messages, members, pinned
//! announcements, dialogs, the trainer's inspection) and how keys, node
//! events and control-socket answers change it. It performs no I/O: every
//! update returns [`Effect`]s (requests for the node, quit) that the runtime
//! carries out, so tests drive it exactly as a user and a node would.

use std::collections::HashMap;

use super::input::Input;
use super::keymap::{Action, Key, KeyCode, Keymap};
use super::safe_text::{clean, clean_line};
use crate::api::{self, Answer, PushEvent, Request, parse_duration};

/// Identifies a request so its answer finds its way back.
pub type Tag = u64;

/// Something the runtime must do for the model.
#[derive(Debug, PartialEq)]
pub enum Effect {
    Request(Tag, Request),
    /// Pause, resume or step the demo's script (`kolo demo` only).
    Demo(DemoKey),
    /// Put this text on the terminal's clipboard (OSC 52), on request.
    Copy(String),
    Quit,
    /// Destroy the profile (keys first) and quit; confirmed by the user.
    Panic,
}

/// What a trainer asks of the demo's script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DemoKey {
    TogglePause,
    NextStep,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    You,
    Direct,
    Relayed,
    /// Through Tor onion services: neither side sees the other's IP.
    Tor,
    Offline,
}

#[derive(Clone, Debug)]
pub struct Member {
    pub name: String,
    pub fingerprint: String,
    pub role: String,
    pub link: Link,
    pub verified: bool,
    /// The name looks like another member's (confusable): marked ⚠.
    pub lookalike: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Text,
    Announcement { title: String, when: String, place: String, details: String },
    System,
}

#[derive(Clone, Debug)]
pub struct Msg {
    /// Hex id, as the control socket names messages.
    pub id: String,
    pub sender: String,
    pub sender_fingerprint: String,
    pub verified: bool,
    pub kind: Kind,
    pub text: String,
    pub sent_at_ms: u64,
    pub expires_at_ms: Option<u64>,
    /// Whether this message came in an envelope (the trainer can inspect it).
    pub sealed: bool,
}

#[derive(Clone, Debug)]
pub struct Pinned {
    pub msg: Msg,
    pub acked_by: Vec<String>,
    /// Whether we acknowledged it (or posted it ourselves).
    pub acked_by_me: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Circle {
    /// Hex id.
    pub id: String,
    pub name: String,
    pub role: Option<String>,
    pub epoch: u64,
    pub disappear_secs: Option<u64>,
    pub removed: bool,
    pub members: Vec<Member>,
    /// In display order (sender's time, then id).
    pub messages: Vec<Msg>,
    pub pinned: Option<Pinned>,
    /// Members whose key changed and who the user has not accepted yet.
    pub key_changes: Vec<String>,
    pub unread: usize,
    pub peers: u64,
    /// Frames refused from the network (shown in the trainer view).
    pub refused: u64,
    /// Lines scrolled up from the newest message.
    pub scroll: usize,
    /// Index into `messages` of the message the trainer view inspects.
    pub selected: Option<usize>,
    pub catch_up_until_ms: Option<u64>,
    /// `/search`: only messages containing this (case-insensitive) show.
    pub search: Option<String>,
}

impl Circle {
    fn insert(&mut self, msg: Msg) {
        let selected_id = self.selected.and_then(|i| self.messages.get(i)).map(|m| m.id.clone());
        match self.messages.iter().position(|m| m.id == msg.id) {
            Some(i) => self.messages[i] = msg,
            None => {
                let at = self.messages.partition_point(|m| (m.sent_at_ms, &m.id) < (msg.sent_at_ms, &msg.id));
                self.messages.insert(at, msg);
            }
        }
        self.reselect(selected_id);
    }

    fn remove(&mut self, id: &str) {
        let selected_id = self.selected.and_then(|i| self.messages.get(i)).map(|m| m.id.clone());
        self.messages.retain(|m| m.id != id);
        if self.pinned.as_ref().is_some_and(|p| p.msg.id == id) {
            self.pinned = None;
        }
        self.reselect(selected_id);
    }

    fn reselect(&mut self, id: Option<String>) {
        self.selected = id.and_then(|id| self.messages.iter().position(|m| m.id == id));
    }

    fn is_verified(&self, fingerprint: &str) -> bool {
        self.members.iter().any(|m| m.fingerprint == fingerprint && m.verified)
    }

    /// The newest message that came in an envelope.
    fn newest_sealed(&self) -> Option<usize> {
        self.messages.iter().rposition(|m| m.sealed)
    }
}

/// The safety-number comparison dialog.
#[derive(Clone, Debug)]
pub struct VerifyView {
    pub circle: String,
    pub member: String,
    pub yours: String,
    pub theirs: String,
    pub verified: bool,
}

/// A dialog. Each closes only on the keys it names on screen
/// ([`Overlay::keys_hint`]); any other key is ignored while it is open, so
/// nothing typed after it lands in the message by surprise.
#[derive(Clone, Debug)]
pub enum Overlay {
    Help,
    Verify(VerifyView),
    Invite {
        circle: String,
        code: String,
        qr: Vec<String>,
    },
    ConfirmPanic,
    /// `/remove NAME`, asked first: removal cannot be undone.
    ConfirmRemove {
        circle: String,
        member: String,
    },
    /// `/leave`, asked first.
    ConfirmLeave {
        circle: String,
        name: String,
        force: bool,
    },
}

impl Overlay {
    /// How the dialog closes, as its last line says.
    pub fn keys_hint(&self) -> &'static str {
        match self {
            Overlay::Help => "esc or enter: close",
            Overlay::Invite { .. } => "c: copy to the clipboard (OSC 52) · esc or enter: close",
            Overlay::Verify(v) if !v.verified => "y: the numbers match, mark verified · n or esc: not now",
            Overlay::Verify(_) => "esc or enter: close",
            Overlay::ConfirmPanic => "y: destroy · n or esc: cancel",
            Overlay::ConfirmRemove { .. } => "y: remove · n or esc: cancel",
            Overlay::ConfirmLeave { .. } => "y: leave · n or esc: stay",
        }
    }
}

/// A message's envelope, as the node reported it for the trainer view.
#[derive(Clone, Debug, Default)]
pub struct Inspection {
    pub id: String,
    pub frame_len: u64,
    pub key_id: String,
    pub epoch: u64,
    pub counter: u64,
    pub header: String,
    pub ciphertext: String,
    pub padded_len: u64,
    pub signature: String,
    pub signature_ok: Option<bool>,
}

/// What the demo's non-member relay has carried so far.
#[derive(Clone, Debug, Default)]
pub struct RelayStats {
    pub bytes: u64,
    pub connections: u64,
    /// The latest bytes it saw, in hex.
    pub sample: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub text: String,
    pub error: bool,
}

/// What an answer from the node is for.
#[derive(Debug)]
enum Expect {
    Status,
    Circles,
    Messages(String),
    Members(String),
    Sent { circle: String, text: String },
    Invite(String),
    Join,
    Verify { confirm: bool, circle: String, member: String },
    Inspect,
    Done(String),
}

/// The slash commands, for the help screen.
pub const COMMANDS: &[(&str, &str)] = &[
    ("/create NAME [TIMER]", "create a circle (optional disappearing timer, e.g. 1d)"),
    ("/invite [organiser]", "make a one-time invite code (and QR) for this circle"),
    ("/join CODE", "join a circle with a code someone gave you (paste it)"),
    ("/announce TITLE | WHEN | WHERE | DETAILS", "pin an announcement (organisers); replaces the pinned one"),
    ("/once TIMER TEXT", "send one message that disappears after TIMER"),
    ("/disappear TIMER|off", "set the circle's disappearing timer (organisers)"),
    ("/verify NAME", "compare safety numbers in person, then mark verified"),
    ("/accept NAME", "accept a member's changed key (after verifying)"),
    ("/remove NAME", "remove a member (asks first); everyone's keys are replaced"),
    ("/ack", "acknowledge the pinned announcement: the circle sees you read it"),
    ("/search [TEXT]", "show only messages containing TEXT; /search alone shows all"),
    ("/leave [force]", "leave this circle (asks first); the others see you go"),
    ("/panic", "destroy this profile now (asks first)"),
    ("/quit", "close kolo (you stay in your circles)"),
];

pub struct App {
    pub keymap: Keymap,
    pub me: String,
    pub fingerprint: String,
    pub circles: Vec<Circle>,
    pub current: usize,
    pub input: Input,
    pub overlay: Option<Overlay>,
    pub trainer: bool,
    pub inspection: Option<Inspection>,
    pub notice: Option<Notice>,
    pub relay: Option<RelayStats>,
    /// In `kolo demo`: whether its script is paused (`None` elsewhere).
    pub demo_paused: Option<bool>,
    /// Seconds east of UTC for clock times on screen.
    pub utc_offset_secs: i64,
    pending: HashMap<Tag, Expect>,
    next_tag: Tag,
    /// A key that is not the open dialog's was pressed: the user is typing
    /// as if no dialog were there, so its one-letter answers (y, n) no
    /// longer count until it closes (esc or enter).
    dialog_stray: bool,
    /// Lines the help is scrolled down (it does not fit small terminals).
    pub help_scroll: usize,
}

/// Lines of the help besides the keys and the commands (headings, notes).
pub const HELP_EXTRA_LINES: usize = 6;
/// Lines moved by one page key or one mouse-wheel step.
pub const PAGE_LINES: usize = 10;
pub const WHEEL_LINES: usize = 3;
/// How long "catching up" stays on the status line after frames arrived.
const CATCH_UP_SHOWN_MS: u64 = 3_000;

impl App {
    pub fn new(keymap: Keymap) -> Self {
        Self {
            keymap,
            me: String::new(),
            fingerprint: String::new(),
            circles: Vec::new(),
            current: 0,
            input: Input::default(),
            overlay: None,
            trainer: false,
            inspection: None,
            notice: None,
            relay: None,
            demo_paused: None,
            utc_offset_secs: 0,
            pending: HashMap::new(),
            next_tag: 1,
            dialog_stray: false,
            help_scroll: 0,
        }
    }

    /// The requests that fill the screen at start.
    pub fn start(&mut self) -> Vec<Effect> {
        vec![self.request(Request::Status, Expect::Status), self.request(Request::Circles, Expect::Circles)]
    }

    fn request(&mut self, request: Request, expect: Expect) -> Effect {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.pending.insert(tag, expect);
        Effect::Request(tag, request)
    }

    pub fn circle(&self) -> Option<&Circle> {
        self.circles.get(self.current)
    }

    fn circle_mut(&mut self) -> Option<&mut Circle> {
        self.circles.get_mut(self.current)
    }

    fn circle_by_id(&mut self, id: &str) -> Option<&mut Circle> {
        self.circles.iter_mut().find(|c| c.id == id)
    }

    /// Notices often quote outside text (names, peers' reasons): cleaned.
    fn info(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice { text: clean_line(&text.into()), error: false });
    }

    fn error(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice { text: clean_line(&text.into()), error: true });
    }

    // ---- keys -------------------------------------------------------------

    pub fn key(&mut self, key: Key) -> Vec<Effect> {
        if let Some(overlay) = self.overlay.take() {
            if key.alt && self.keymap.action(&key).is_none() {
                // A terminal reads esc and the key right after it as one
                // alt-key: esc closes the dialog, then the key counts alone.
                self.dialog_stray = false;
                let _ = self.dialog_key(overlay, Key::plain(KeyCode::Esc));
                if self.overlay.is_none() {
                    return self.key(Key { alt: false, ..key });
                }
                return Vec::new();
            }
            let effects = self.dialog_key(overlay, key);
            if self.overlay.is_none() {
                self.dialog_stray = false;
            }
            return effects;
        }
        if let Some(action) = self.keymap.action(&key) {
            return self.act(action);
        }
        if key.ctrl || key.alt {
            return Vec::new();
        }
        self.notice = None;
        match key.code {
            KeyCode::Char('?') if self.input.is_empty() => self.open_help(),
            // The demo's pause and step keys, only where they cannot be
            // typing: space on an empty line, n on an empty line while paused.
            KeyCode::Char(' ') if self.input.is_empty() && self.demo_paused.is_some() => {
                return vec![Effect::Demo(DemoKey::TogglePause)];
            }
            KeyCode::Char('n') if self.input.is_empty() && self.demo_paused == Some(true) => {
                return vec![Effect::Demo(DemoKey::NextStep)];
            }
            KeyCode::Char(c) => self.input.insert(c),
            KeyCode::Backspace => self.input.backspace(),
            KeyCode::Delete => self.input.delete(),
            KeyCode::Left => self.input.left(),
            KeyCode::Right => self.input.right(),
            KeyCode::Home => self.input.home(),
            KeyCode::End => self.input.end(),
            _ => {}
        }
        Vec::new()
    }

    /// Pasted text goes into the input as typed (a code, a long message).
    pub fn paste(&mut self, text: &str) {
        if self.overlay.is_none() {
            self.input.insert_str(&text.replace("\r\n", "\n").replace('\r', "\n"));
        }
    }

    pub fn wheel(&mut self, up: bool) {
        self.scroll(up, WHEEL_LINES);
    }

    fn scroll(&mut self, up: bool, lines: usize) {
        if let Some(c) = self.circle_mut() {
            c.scroll = if up { c.scroll.saturating_add(lines) } else { c.scroll.saturating_sub(lines) };
        }
    }

    fn dialog_key(&mut self, overlay: Overlay, key: Key) -> Vec<Effect> {
        let stray = self.dialog_stray;
        let plain =
            |c: char| !key.ctrl && !key.alt && matches!(key.code, KeyCode::Char(k) if k.eq_ignore_ascii_case(&c));
        // After a stray key, letters are typing, not answers.
        let letter = |c: char| !stray && plain(c);
        let action = self.keymap.action(&key);
        let cancel = key.code == KeyCode::Esc || action == Some(Action::Cancel) || letter('n');
        let close = cancel || key.code == KeyCode::Enter || action == Some(Action::Send);
        let yes = letter('y');
        if action == Some(Action::Quit) {
            return vec![Effect::Quit];
        }
        match overlay {
            Overlay::Help if close || letter('q') || letter('?') || action == Some(Action::Help) => Vec::new(),
            Overlay::Help if matches!(key.code, KeyCode::Up | KeyCode::Down | KeyCode::PageUp | KeyCode::PageDown) => {
                let step = if matches!(key.code, KeyCode::PageUp | KeyCode::PageDown) { PAGE_LINES } else { 1 };
                self.help_scroll = if matches!(key.code, KeyCode::Up | KeyCode::PageUp) {
                    self.help_scroll.saturating_sub(step)
                } else {
                    (self.help_scroll + step).min(self.keymap.help().len() + 2 * COMMANDS.len() + HELP_EXTRA_LINES)
                };
                self.overlay = Some(Overlay::Help);
                Vec::new()
            }
            Overlay::Invite { .. } if close => Vec::new(),
            Overlay::Invite { code, circle, qr } if letter('c') => {
                // Only on request: a clipboard may be kept by other programs.
                self.info("invite copied to the clipboard (if your terminal allows OSC 52); it is one-time");
                let copy = Effect::Copy(code.clone());
                self.overlay = Some(Overlay::Invite { code, circle, qr });
                vec![copy]
            }
            Overlay::Verify(v) if yes && !v.verified => {
                let request =
                    Request::Verify { circle: v.circle.clone(), member: v.member.clone(), confirm: Some(true) };
                let expect = Expect::Verify { confirm: true, circle: v.circle.clone(), member: v.member.clone() };
                self.overlay = Some(Overlay::Verify(v));
                vec![self.request(request, expect)]
            }
            Overlay::Verify(_) if close => Vec::new(),
            Overlay::ConfirmPanic if yes => vec![Effect::Panic],
            Overlay::ConfirmPanic if cancel => {
                self.info("nothing destroyed");
                Vec::new()
            }
            Overlay::ConfirmRemove { circle, member } if yes => {
                let label = format!("{member} removed; keys are being replaced");
                vec![self.request(Request::Remove { circle, member }, Expect::Done(label))]
            }
            Overlay::ConfirmLeave { circle, name, force } if yes => {
                let label = format!("you left {name}; the others are told");
                vec![self.request(Request::Leave { circle, force: Some(force) }, Expect::Done(label))]
            }
            Overlay::ConfirmRemove { .. } | Overlay::ConfirmLeave { .. } if cancel => {
                self.info("nothing changed");
                Vec::new()
            }
            other => {
                // Not one of its keys: the dialog stays and says how it
                // closes; what is typed now goes nowhere, answers included.
                self.dialog_stray = true;
                self.info("a dialog is open: esc or enter closes it (what you type now is not kept)");
                self.overlay = Some(other);
                Vec::new()
            }
        }
    }

    fn act(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Quit => return vec![Effect::Quit],
            Action::Help => self.open_help(),
            Action::Acknowledge => return self.acknowledge(),
            Action::LineStart => self.input.home(),
            Action::LineEnd => self.input.end(),
            Action::DeleteWord => self.input.delete_word_back(),
            Action::DeleteToStart => self.input.delete_to_line_start(),
            Action::DeleteToEnd => self.input.delete_to_line_end(),
            Action::Send => return self.submit(),
            Action::NewLine => self.input.insert('\n'),
            // Tab completes what is being typed; on an empty line (or with
            // nothing to complete) it switches circles.
            Action::NextCircle if !self.input.is_empty() => {
                // Never switch with text typed: it would go to another circle.
                if !self.complete() {
                    self.info("nothing to complete; tab on an empty line switches circles");
                }
            }
            Action::NextCircle | Action::PrevCircle => return self.switch(action == Action::NextCircle),
            Action::ScrollUp => self.scroll(true, PAGE_LINES),
            Action::ScrollDown => self.scroll(false, PAGE_LINES),
            Action::HistoryPrev => self.input.history_prev(),
            Action::HistoryNext => self.input.history_next(),
            Action::ToggleTrainer => {
                self.trainer = !self.trainer;
                if self.trainer {
                    if let Some(c) = self.circle_mut()
                        && c.selected.is_none()
                    {
                        c.selected = c.newest_sealed();
                    }
                    return self.inspect_selected();
                }
                self.inspection = None;
            }
            Action::SelectOlder | Action::SelectNewer => {
                if !self.trainer {
                    self.trainer = true;
                }
                let older = action == Action::SelectOlder;
                if let Some(c) = self.circle_mut() {
                    c.selected = step_sealed(&c.messages, c.selected, older);
                }
                return self.inspect_selected();
            }
            Action::DemoPause | Action::DemoNext if self.demo_paused.is_none() => {
                self.info("pausing and stepping are for the script of `kolo demo`");
            }
            Action::DemoPause => return vec![Effect::Demo(DemoKey::TogglePause)],
            Action::DemoNext => return vec![Effect::Demo(DemoKey::NextStep)],
            Action::Cancel => {
                if self.input.is_empty() {
                    self.trainer = false;
                    self.inspection = None;
                }
                self.input.clear();
                self.notice = None;
            }
        }
        Vec::new()
    }

    /// The demo's script answered a pause or step key.
    pub fn demo_paced(&mut self, key: DemoKey, paused: bool) {
        self.demo_paused = Some(paused);
        match (key, paused) {
            (DemoKey::NextStep, _) => self.info("demo: next step (still paused: space resumes, n steps again)"),
            (DemoKey::TogglePause, true) => self.info("demo paused: space resumes, n runs the next step"),
            (DemoKey::TogglePause, false) => self.info("demo resumed"),
        }
    }

    fn open_help(&mut self) {
        self.help_scroll = 0;
        self.overlay = Some(Overlay::Help);
    }

    /// Acknowledge the pinned announcement (a person's act, never automatic).
    fn acknowledge(&mut self) -> Vec<Effect> {
        let Some(c) = self.circle() else {
            self.error("open a circle first");
            return Vec::new();
        };
        match &c.pinned {
            None => {
                self.error("there is no pinned announcement to acknowledge");
                Vec::new()
            }
            Some(p) if p.acked_by_me => {
                self.info("you already acknowledged it");
                Vec::new()
            }
            Some(p) => {
                let title = match &p.msg.kind {
                    Kind::Announcement { title, .. } => title.clone(),
                    _ => p.msg.text.clone(),
                };
                let label = format!("acknowledged \"{title}\": the circle sees that you read it");
                let request = Request::Ack { circle: c.id.clone(), message: Some(p.msg.id.clone()) };
                vec![self.request(request, Expect::Done(label))]
            }
        }
    }

    fn inspect_selected(&mut self) -> Vec<Effect> {
        let Some(c) = self.circle() else {
            return Vec::new();
        };
        let Some(m) = c.selected.and_then(|i| c.messages.get(i)) else {
            self.inspection = None;
            return Vec::new();
        };
        if self.inspection.as_ref().is_some_and(|i| i.id == m.id) {
            return Vec::new();
        }
        let request = Request::Inspect { circle: c.id.clone(), message: m.id.clone() };
        vec![self.request(request, Expect::Inspect)]
    }

    fn switch(&mut self, forward: bool) -> Vec<Effect> {
        let n = self.circles.len();
        if n == 0 {
            return Vec::new();
        }
        self.current = if forward { (self.current + 1) % n } else { (self.current + n - 1) % n };
        self.inspection = None;
        let Some(c) = self.circle_mut() else {
            return Vec::new();
        };
        c.unread = 0;
        if self.trainer {
            if let Some(c) = self.circle_mut()
                && c.selected.is_none()
            {
                c.selected = c.newest_sealed();
            }
            return self.inspect_selected();
        }
        Vec::new()
    }

    fn submit(&mut self) -> Vec<Effect> {
        let text = self.input.take();
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Vec::new();
        }
        self.notice = None;
        if let Some(command) = trimmed.strip_prefix('/') {
            return self.command(command);
        }
        self.send(text, None)
    }

    fn send(&mut self, text: String, timer: Option<u32>) -> Vec<Effect> {
        let Some(c) = self.circle() else {
            self.error("you are in no circle yet: /create NAME, or /join CODE");
            self.input.insert_str(&text);
            return Vec::new();
        };
        if c.removed {
            self.error("you are no longer a member of this circle");
            return Vec::new();
        }
        if let Some(name) = c.key_changes.first() {
            let reason = format!(
                "sending is blocked: {name}'s key changed. Compare safety numbers with /verify {name}, then /accept {name}"
            );
            self.error(reason);
            self.input.insert_str(&text);
            return Vec::new();
        }
        let circle = c.id.clone();
        let request = Request::Send { circle: circle.clone(), text: text.clone(), disappear_secs: timer };
        if let Some(c) = self.circle_mut() {
            c.scroll = 0;
        }
        vec![self.request(request, Expect::Sent { circle, text })]
    }

    /// Complete the command or member name before the cursor: one match is
    /// filled in, several are extended to their common prefix and listed.
    /// Whether there was anything to complete.
    fn complete(&mut self) -> bool {
        let before = self.input.before_cursor().to_owned();
        let names: Vec<String> =
            self.circle().map(|c| c.members.iter().map(|m| m.name.clone()).collect()).unwrap_or_default();
        let (prefix, candidates, suffix): (String, Vec<String>, &str) = if let Some(typed) = before.strip_prefix('/')
            && !typed.contains(char::is_whitespace)
        {
            // The help list's names ("/create NAME [TIMER]" gives "create").
            let commands = COMMANDS
                .iter()
                .filter_map(|(usage, _)| usage.split(' ').next()?.strip_prefix('/'))
                .map(str::to_owned)
                .collect();
            (typed.to_owned(), commands, " ")
        } else if let Some((command, arg)) = before.split_once(' ')
            && ["/verify", "/accept", "/remove"].contains(&command.to_lowercase().as_str())
        {
            // Names may hold spaces: the whole argument is the prefix.
            (arg.to_owned(), names, "")
        } else {
            let word = before.rsplit(char::is_whitespace).next().unwrap_or("");
            (word.to_owned(), names, " ")
        };
        if prefix.is_empty() && suffix == " " && !before.starts_with('/') {
            return false;
        }
        let lower = prefix.to_lowercase();
        let matches: Vec<&String> = candidates.iter().filter(|c| c.to_lowercase().starts_with(&lower)).collect();
        match matches.as_slice() {
            [] => false,
            [one] => {
                self.input.replace_before_cursor(prefix.len(), &format!("{one}{suffix}"));
                true
            }
            many => {
                let common = common_prefix(many);
                if common.chars().count() > prefix.chars().count() {
                    self.input.replace_before_cursor(prefix.len(), &common);
                }
                let list: Vec<&str> = many.iter().map(|m| m.as_str()).collect();
                self.info(format!("tab: {}", list.join(", ")));
                true
            }
        }
    }

    fn command(&mut self, line: &str) -> Vec<Effect> {
        let (name, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        let circle = self.circle().map(|c| c.id.clone());
        let needs_circle = |me: &mut Self| {
            me.error("open a circle first (tab switches circles; /create or /join makes one)");
            Vec::new()
        };
        let needs_arg = |me: &mut Self, usage: &str| {
            me.error(format!("usage: {usage}"));
            Vec::new()
        };
        match name.to_lowercase().as_str() {
            "help" | "?" => {
                self.open_help();
                Vec::new()
            }
            "quit" | "exit" => vec![Effect::Quit],
            "panic" => {
                self.overlay = Some(Overlay::ConfirmPanic);
                Vec::new()
            }
            "ack" => self.acknowledge(),
            "search" => {
                let Some(c) = self.circle_mut() else { return needs_circle(self) };
                if rest.is_empty() {
                    c.search = None;
                    self.info("search cleared: every message shows");
                } else {
                    let needle = rest.to_lowercase();
                    let found = c.messages.iter().filter(|m| message_matches(m, &needle)).count();
                    c.search = Some(needle);
                    c.scroll = 0;
                    self.info(format!("{found} messages contain \"{rest}\"; /search alone shows all again"));
                }
                Vec::new()
            }
            "leave" => {
                let Some(c) = self.circle() else { return needs_circle(self) };
                let force = rest.eq_ignore_ascii_case("force") || rest == "--force";
                if !rest.is_empty() && !force {
                    return needs_arg(self, "/leave [force]");
                }
                self.overlay = Some(Overlay::ConfirmLeave { circle: c.id.clone(), name: c.name.clone(), force });
                Vec::new()
            }
            "create" => {
                let mut words: Vec<&str> = rest.split_whitespace().collect();
                let timer = match words.last().map(|w| parse_duration(w)) {
                    Some(Ok(secs)) if words.len() > 1 => {
                        words.pop();
                        Some(secs)
                    }
                    _ => None,
                };
                if words.is_empty() {
                    return needs_arg(self, "/create NAME [TIMER]");
                }
                let disappear_secs = match timer.map(u32::try_from) {
                    Some(Err(_)) => return needs_arg(self, "/create NAME [TIMER] (a shorter timer)"),
                    other => other.and_then(Result::ok),
                };
                let request = Request::CircleCreate { name: words.join(" "), disappear_secs };
                vec![self.request(request, Expect::Done("circle created".into()))]
            }
            "join" => {
                if rest.is_empty() {
                    return needs_arg(self, "/join CODE");
                }
                self.info("joining: waiting for a member to let you in…");
                vec![self.request(Request::Join { code: rest.to_owned() }, Expect::Join)]
            }
            "invite" => {
                let Some(circle) = circle else { return needs_circle(self) };
                let organiser = rest.eq_ignore_ascii_case("organiser") || rest.eq_ignore_ascii_case("organizer");
                let request =
                    Request::Invite { circle: circle.clone(), expires_secs: None, organiser: Some(organiser) };
                vec![self.request(request, Expect::Invite(circle))]
            }
            "announce" => {
                let Some(circle) = circle else { return needs_circle(self) };
                let parts: Vec<&str> = rest.split('|').map(str::trim).collect();
                let Some(title) = parts.first().filter(|t| !t.is_empty()) else {
                    return needs_arg(self, "/announce TITLE | WHEN | WHERE | DETAILS");
                };
                let part = |i: usize| parts.get(i).filter(|p| !p.is_empty()).map(|p| (*p).to_owned());
                let supersedes = self.circle().and_then(|c| c.pinned.as_ref()).map(|p| p.msg.id.clone());
                let request = Request::Announce {
                    circle,
                    title: (*title).to_owned(),
                    when: part(1),
                    place: part(2),
                    details: part(3),
                    supersedes,
                    disappear_secs: None,
                };
                vec![self.request(request, Expect::Done("announcement pinned".into()))]
            }
            "once" => {
                let (timer, text) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                match parse_duration(timer).map(u32::try_from) {
                    Ok(Ok(secs)) if secs > 0 && !text.trim().is_empty() => {
                        self.send(text.trim().to_owned(), Some(secs))
                    }
                    _ => needs_arg(self, "/once TIMER TEXT (e.g. /once 30s the door code is 4471)"),
                }
            }
            "disappear" => {
                let Some(circle) = circle else { return needs_circle(self) };
                let secs = if rest.eq_ignore_ascii_case("off") { Ok(0) } else { parse_duration(rest) };
                match secs.map(u32::try_from) {
                    Ok(Ok(secs)) if !rest.is_empty() => {
                        let label = if secs == 0 {
                            "messages no longer disappear by default".to_owned()
                        } else {
                            format!("messages now disappear after {}", duration_label(u64::from(secs)))
                        };
                        vec![self.request(Request::SetDisappear { circle, secs }, Expect::Done(label))]
                    }
                    _ => needs_arg(self, "/disappear TIMER|off (e.g. /disappear 1d)"),
                }
            }
            "verify" | "accept" | "remove" => {
                let Some(circle) = circle else { return needs_circle(self) };
                if rest.is_empty() {
                    return needs_arg(self, &format!("/{name} NAME"));
                }
                let member = rest.to_owned();
                match name {
                    "verify" => {
                        let request =
                            Request::Verify { circle: circle.clone(), member: member.clone(), confirm: Some(false) };
                        vec![self.request(request, Expect::Verify { confirm: false, circle, member })]
                    }
                    "accept" => {
                        let label = format!("accepted {member}'s new key");
                        vec![self.request(Request::AcknowledgeKey { circle, member }, Expect::Done(label))]
                    }
                    _ => {
                        self.overlay = Some(Overlay::ConfirmRemove { circle, member: clean_line(&member) });
                        Vec::new()
                    }
                }
            }
            other => {
                self.error(format!("unknown command /{other}; ? or F1 lists them"));
                Vec::new()
            }
        }
    }

    // ---- answers from the node ---------------------------------------------

    pub fn reply(&mut self, tag: Tag, result: Result<Answer, String>) -> Vec<Effect> {
        let Some(expect) = self.pending.remove(&tag) else {
            return Vec::new();
        };
        let value = match (result, &expect) {
            (Ok(v), _) => v,
            (Err(e), Expect::Sent { circle, text }) => {
                let same_circle = self.circle().is_some_and(|c| &c.id == circle);
                if same_circle && self.input.is_empty() {
                    self.input.insert_str(text); // Nothing typed is lost.
                }
                self.error(format!("not sent: {e}"));
                return Vec::new();
            }
            (Err(e), Expect::Verify { .. }) => {
                self.overlay = None;
                self.error(e);
                return Vec::new();
            }
            (Err(e), _) => {
                self.error(e);
                return Vec::new();
            }
        };
        match (expect, value) {
            (Expect::Status, Answer::Status(status)) => {
                self.me = clean_line(&status.name);
                self.fingerprint = clean_line(&status.fingerprint);
                for c in &status.circles {
                    if let Some(circle) = self.circle_by_id(&c.id) {
                        circle.peers = c.peers;
                    }
                }
                Vec::new()
            }
            (Expect::Circles, Answer::Circles(circles)) => self.circles_answer(&circles),
            (Expect::Messages(id), Answer::Messages(messages)) => {
                if let Some(c) = self.circle_by_id(&id) {
                    let selected_id = c.selected.and_then(|i| c.messages.get(i)).map(|m| m.id.clone());
                    c.messages = messages.iter().map(msg_from_api).collect();
                    c.reselect(selected_id);
                }
                Vec::new()
            }
            (Expect::Members(id), Answer::Members(members)) => {
                if let Some(c) = self.circle_by_id(&id) {
                    c.members = members.iter().map(member_from_api).collect();
                    let verified: Vec<(String, bool)> =
                        c.members.iter().map(|m| (m.fingerprint.clone(), m.verified)).collect();
                    for m in &mut c.messages {
                        m.verified = verified.iter().any(|(f, v)| *v && *f == m.sender_fingerprint);
                    }
                }
                Vec::new()
            }
            (Expect::Sent { .. }, Answer::Sent(sent)) => {
                if let Some(reason) = sent.queued {
                    self.info(format!("queued: {reason}"));
                }
                Vec::new()
            }
            (Expect::Invite(circle), Answer::Invite(invite)) => {
                let code = clean_line(&invite.code);
                let name = self.circles.iter().find(|c| c.id == circle).map(|c| c.name.clone()).unwrap_or_default();
                self.overlay = Some(Overlay::Invite { circle: name, qr: qr_lines(&code), code });
                Vec::new()
            }
            (Expect::Join, Answer::Joined(joined)) => {
                self.info(format!("joined {}", clean_line(&joined.name)));
                vec![self.request(Request::Circles, Expect::Circles)]
            }
            (Expect::Verify { confirm, circle, member }, Answer::Verification(answer)) => {
                let v = VerifyView {
                    circle: circle.clone(),
                    member,
                    yours: clean_line(&answer.you),
                    theirs: clean_line(&answer.them),
                    verified: answer.verified,
                };
                // The confirmation's answer updates the dialog if it is still
                // open; it never reopens one the user closed meanwhile.
                let still_open = matches!(&self.overlay, Some(Overlay::Verify(o)) if o.member == v.member);
                if !confirm || still_open {
                    self.overlay = Some(Overlay::Verify(v));
                }
                if confirm {
                    self.info("marked verified");
                    return vec![self.request(Request::Members { circle: circle.clone() }, Expect::Members(circle))];
                }
                Vec::new()
            }
            (Expect::Inspect, Answer::Envelope(e)) => {
                self.inspection = Some(Inspection {
                    id: clean_line(&e.id),
                    frame_len: e.frame_len,
                    key_id: clean_line(&e.key_id),
                    epoch: e.epoch,
                    counter: e.counter,
                    header: clean_line(&e.header),
                    ciphertext: clean_line(&e.ciphertext),
                    padded_len: e.padded_len,
                    signature: clean_line(&e.signature),
                    signature_ok: e.signature_ok,
                });
                Vec::new()
            }
            (Expect::Done(label), _) => {
                self.info(label);
                self.refresh_current()
            }
            (_, other) => {
                // A node answering one request with another's answer is a bug there.
                self.error(format!("kolo gave an answer of the wrong kind ({})", answer_kind(&other)));
                Vec::new()
            }
        }
    }

    fn refresh_current(&mut self) -> Vec<Effect> {
        let mut out = vec![self.request(Request::Circles, Expect::Circles)];
        if let Some(id) = self.circle().map(|c| c.id.clone()) {
            out.push(self.request(Request::Members { circle: id.clone() }, Expect::Members(id)));
        }
        out
    }

    fn circles_answer(&mut self, circles: &[api::CircleInfo]) -> Vec<Effect> {
        let current_id = self.circle().map(|c| c.id.clone());
        let mut effects = Vec::new();
        let mut next = Vec::new();
        for c in circles {
            let id = clean_line(&c.id);
            let mut circle = match self.circles.iter().position(|x| x.id == id) {
                Some(i) => std::mem::take(&mut self.circles[i]),
                None => {
                    effects.push(self.request(Request::Messages { circle: id.clone() }, Expect::Messages(id.clone())));
                    effects.push(self.request(Request::Members { circle: id.clone() }, Expect::Members(id.clone())));
                    Circle { id: id.clone(), ..Circle::default() }
                }
            };
            circle.name = clean_line(&c.name);
            circle.role = c.role.map(|r| r.label().to_owned());
            circle.epoch = c.epoch;
            circle.disappear_secs = c.disappear_secs.map(u64::from);
            circle.removed = c.removed;
            circle.key_changes = c.key_changes.iter().map(|n| clean_line(n)).collect();
            circle.pinned = c.pinned.as_ref().map(|p| Pinned {
                msg: msg_from_api(&p.message),
                acked_by: p.acked_by.iter().map(|n| clean_line(n)).collect(),
                acked_by_me: p.acked_by_me
                    || (!self.fingerprint.is_empty() && p.message.sender_fingerprint == self.fingerprint),
            });
            next.push(circle);
        }
        if !effects.is_empty() {
            // New circles: their connection counts come with the status.
            effects.push(self.request(Request::Status, Expect::Status));
        }
        self.circles = next;
        self.current = current_id.and_then(|id| self.circles.iter().position(|c| c.id == id)).unwrap_or(0);
        effects
    }

    // ---- events from the node ----------------------------------------------

    /// An event from the node, as the control socket pushes it: the same
    /// whether the node runs in this process or the TUI attached to a
    /// running one (`api::convert::node_event` makes these in process).
    pub fn event(&mut self, event: &PushEvent, now_ms: u64) -> Vec<Effect> {
        match event {
            PushEvent::Links { circle } => {
                let id = circle.clone();
                vec![
                    self.request(Request::Status, Expect::Status),
                    self.request(Request::Members { circle: id.clone() }, Expect::Members(id)),
                ]
            }
            PushEvent::CatchUp { circle } => {
                if let Some(c) = self.circle_by_id(circle) {
                    c.catch_up_until_ms = Some(now_ms + CATCH_UP_SHOWN_MS);
                }
                Vec::new()
            }
            PushEvent::Message { message: m } => {
                let me = self.fingerprint.clone();
                let current = self.circle().map(|c| c.id.clone());
                let is_current = current.as_deref() == Some(m.circle.as_str());
                let trainer = self.trainer;
                let Some(c) = self.circle_by_id(&m.circle) else {
                    return vec![self.request(Request::Circles, Expect::Circles)];
                };
                let mut msg = msg_from_api(m);
                msg.verified = c.is_verified(&msg.sender_fingerprint);
                let announcement = matches!(msg.kind, Kind::Announcement { .. });
                let counts = msg.sender_fingerprint != me && msg.kind != Kind::System;
                c.insert(msg);
                if !is_current && counts {
                    c.unread += 1;
                }
                let mut out = Vec::new();
                if trainer && is_current && c.selected.is_none() {
                    c.selected = c.newest_sealed();
                    out.extend(self.inspect_selected());
                }
                if announcement {
                    out.push(self.request(Request::Circles, Expect::Circles));
                }
                out
            }
            PushEvent::MessageExpired { circle, id } => {
                if let Some(c) = self.circle_by_id(circle) {
                    c.remove(id);
                }
                if self.inspection.as_ref().is_some_and(|i| &i.id == id) {
                    self.inspection = None;
                }
                Vec::new()
            }
            PushEvent::Membership { circle, .. }
            | PushEvent::Verified { circle, .. }
            | PushEvent::Presence { circle, .. } => {
                let id = circle.clone();
                vec![
                    self.request(Request::Circles, Expect::Circles),
                    self.request(Request::Members { circle: id.clone() }, Expect::Members(id)),
                ]
            }
            PushEvent::AnnouncementAcked { .. } | PushEvent::CircleCreated { .. } | PushEvent::Joined { .. } => {
                vec![self.request(Request::Circles, Expect::Circles)]
            }
            PushEvent::KeyChanged { name, .. } => {
                self.error(format!(
                    "{name}'s key changed: this can mean a new device, or someone posing as {name}. \
                     Sending is blocked until you /verify {name} and /accept {name}"
                ));
                vec![self.request(Request::Circles, Expect::Circles)]
            }
            PushEvent::SplitView { name, .. } => {
                self.error(format!(
                    "{name} sees a different list of members than you: compare the member list with {name} in person"
                ));
                Vec::new()
            }
            PushEvent::Equivocation { name, .. } => {
                self.error(format!(
                    "{name} signed two different messages as the same one: their client or keys are compromised"
                ));
                Vec::new()
            }
            PushEvent::JoinFailed { reason, .. } | PushEvent::Error { reason } => {
                self.error(reason.clone());
                Vec::new()
            }
            PushEvent::Queued { reason, .. } => {
                self.info(reason.clone());
                Vec::new()
            }
            PushEvent::Rejected { circle, .. } => {
                if let Some(c) = self.circle_by_id(circle) {
                    c.refused += 1;
                }
                Vec::new()
            }
            // Events were dropped (an attached TUI read too slowly): ask
            // again for what the screen shows.
            PushEvent::Lagged { .. } => self.start(),
        }
    }

    /// Time passed: messages whose deadline is reached leave the screen
    /// now, even before the node's own expiry event arrives.
    pub fn tick(&mut self, now_ms: u64) {
        let mut gone = Vec::new();
        for c in &mut self.circles {
            let expired: Vec<String> = c
                .messages
                .iter()
                .filter(|m| m.expires_at_ms.is_some_and(|d| d <= now_ms))
                .map(|m| m.id.clone())
                .collect();
            for id in expired {
                c.remove(&id);
                gone.push(id);
            }
            if c.catch_up_until_ms.is_some_and(|t| t <= now_ms) {
                c.catch_up_until_ms = None;
            }
        }
        if self.inspection.as_ref().is_some_and(|i| gone.contains(&i.id)) {
            self.inspection = None;
        }
    }

    /// When the screen next changes by itself: a countdown's next second,
    /// a deadline, or the end of the catch-up note. The runtime sleeps until
    /// then (or until an event), so nothing polls.
    pub fn next_wake(&self, now_ms: u64) -> Option<u64> {
        let c = self.circle()?;
        let countdown = c.messages.iter().any(|m| m.expires_at_ms.is_some()).then(|| now_ms - now_ms % 1000 + 1000);
        let deadlines = self.circles.iter().flat_map(|c| c.messages.iter().filter_map(|m| m.expires_at_ms));
        let catch_up = self.circles.iter().filter_map(|c| c.catch_up_until_ms);
        countdown.into_iter().chain(deadlines).chain(catch_up).filter(|t| *t > now_ms).min()
    }
}

/// The next (older or newer) message with an envelope.
fn step_sealed(messages: &[Msg], from: Option<usize>, older: bool) -> Option<usize> {
    let start = from.unwrap_or(messages.len());
    let found = if older {
        messages[..start.min(messages.len())].iter().rposition(|m| m.sealed)
    } else {
        messages.iter().enumerate().skip(start + 1).find(|(_, m)| m.sealed).map(|(i, _)| i)
    };
    found.or(from)
}

fn msg_from_api(m: &api::Message) -> Msg {
    let kind = match &m.body {
        api::Body::Announcement { title, when, place, details, .. } => Kind::Announcement {
            title: clean_line(title),
            when: clean_line(when),
            place: clean_line(place),
            details: clean(details),
        },
        api::Body::System => Kind::System,
        api::Body::Text => Kind::Text,
    };
    Msg {
        id: clean_line(&m.id),
        sender: clean_line(&m.sender),
        sender_fingerprint: clean_line(&m.sender_fingerprint),
        verified: m.verified.unwrap_or(false),
        sealed: kind != Kind::System,
        kind,
        text: clean(&m.text),
        sent_at_ms: m.sent_at,
        expires_at_ms: m.expires_at,
    }
}

/// Which answer this is, for the rare error that names it.
fn answer_kind(a: &Answer) -> &'static str {
    match a {
        Answer::Hello(_) => "hello",
        Answer::Status(_) => "status",
        Answer::Circles(_) => "circles",
        Answer::CircleCreated(_) => "circle_create",
        Answer::Invite(_) => "invite",
        Answer::Joined(_) => "join",
        Answer::Sent(_) => "send",
        Answer::Messages(_) => "messages",
        Answer::Members(_) => "members",
        Answer::Removed(_) => "remove",
        Answer::Left(_) => "leave",
        Answer::Acknowledged(_) => "ack",
        Answer::KeyAccepted(_) => "acknowledge_key",
        Answer::DisappearSet(_) => "set_disappear",
        Answer::Renamed(_) => "rename",
        Answer::Revoked(_) => "revoke_invite",
        Answer::Verification(_) => "verify",
        Answer::Envelope(_) => "inspect",
        Answer::Stopping(_) => "shutdown",
        Answer::Subscribed(_) => "subscribe",
    }
}

fn member_from_api(m: &api::Member) -> Member {
    Member {
        name: clean_line(&m.name),
        fingerprint: clean_line(&m.fingerprint),
        role: m.role.label().to_owned(),
        link: match m.link {
            _ if m.you => Link::You,
            api::Link::You => Link::You,
            api::Link::Direct => Link::Direct,
            api::Link::Relayed => Link::Relayed,
            api::Link::Tor => Link::Tor,
            api::Link::Offline => Link::Offline,
        },
        verified: m.verified,
        lookalike: m.looks_like.is_some(),
    }
}

/// A QR code as terminal lines (two modules per character cell).
pub fn qr_lines(code: &str) -> Vec<String> {
    // Upper case: codes ignore case, and the QR's alphanumeric mode holds
    // upper-case base32 in 5.5 bits a character instead of 8, so a 326-
    // character invite needs a smaller symbol (fewer rows on screen).
    match qrcode::QrCode::new(code.to_ascii_uppercase().as_bytes()) {
        Ok(qr) => qr
            .render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build()
            .lines()
            .map(str::to_owned)
            .collect(),
        Err(_) => vec!["(code too long for a QR code)".into()],
    }
}

/// `90` → "1m 30s", `86400` → "1d".
pub fn duration_label(secs: u64) -> String {
    let parts = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let mut rest = secs;
    let mut out = Vec::new();
    for (size, unit) in parts {
        if rest >= size {
            out.push(format!("{}{unit}", rest / size));
            rest %= size;
        }
        if out.len() == 2 {
            break;
        }
    }
    if out.is_empty() { "0s".into() } else { out.join(" ") }
}

/// The longest prefix all of `words` share (compared without case, taken
/// from the first).
fn common_prefix(words: &[&String]) -> String {
    let Some(first) = words.first() else {
        return String::new();
    };
    let mut end = first.len();
    for w in &words[1..] {
        let shared = first
            .char_indices()
            .zip(w.chars())
            .take_while(|((_, a), b)| a.to_lowercase().eq(b.to_lowercase()))
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8());
        end = end.min(shared);
    }
    first[..end].to_owned()
}

/// Whether a message shows under `/search` (`needle` in lower case):
/// its text, its sender, or an announcement's fields.
pub fn message_matches(m: &Msg, needle: &str) -> bool {
    let mut fields = vec![m.text.as_str(), m.sender.as_str()];
    if let Kind::Announcement { title, when, place, details } = &m.kind {
        fields.extend([title.as_str(), when.as_str(), place.as_str(), details.as_str()]);
    }
    fields.iter().any(|f| f.to_lowercase().contains(needle))
}
