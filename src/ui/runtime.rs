//! The terminal runtime: puts the terminal in raw mode, feeds the model
//! terminal events, node events and answers, draws after each change, and
//! restores the terminal on every way out (quit, error, panic, SIGTERM).
//!
//! It never blocks on the node: requests go out with `try_send` on the
//! node's bounded channel and answers come back as futures polled in the
//! same `select!`. It sleeps until something happens or until the model's
//! next deadline (a countdown second), so an idle screen costs nothing.

use crate::clock::now_ms;
use std::io::Stdout;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event as TermEvent,
    EventStream, KeyCode as TermKey, KeyEvent, KeyEventKind, KeyModifiers, MouseEventKind,
};
use crossterm::execute;
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::{mpsc, oneshot};

use super::keymap::{Key, KeyCode, Keymap};
use super::model::{App, DemoKey, Effect, RelayStats, Tag};
use super::view;
use crate::api::{Pending, PushEvent, Request};
use crate::node::NodeEvent;

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("the terminal could not be used: {0}")]
    Terminal(#[from] std::io::Error),
}

/// How the terminal session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Quit,
    /// The user confirmed `/panic`: the caller destroys the profile.
    Panic,
}

/// Reads what the demo's relay has seen, for the trainer view.
pub type RelayTap = Arc<dyn Fn() -> RelayStats + Send + Sync>;

/// Pauses, resumes or steps the demo's script; returns whether it is
/// paused afterwards.
pub type DemoControl = Arc<dyn Fn(DemoKey) -> bool + Send + Sync>;

pub struct Options {
    pub keymap: Keymap,
    pub relay: Option<RelayTap>,
    /// `kolo demo`: the script's pause and step control.
    pub demo: Option<DemoControl>,
    /// Start with the trainer view open (the demo does not; one key away).
    pub trainer: bool,
}

/// Seconds east of UTC on this machine, for clock times. Asked once of
/// `date` (the crate forbids the unsafe libc call); UTC if that fails.
pub fn local_offset_secs() -> i64 {
    let out = std::process::Command::new("date").arg("+%z").stderr(std::process::Stdio::null()).output();
    out.ok().and_then(|o| parse_utc_offset(String::from_utf8_lossy(&o.stdout).trim())).unwrap_or(0)
}

/// `+0530` → 19800, `-0200` → -7200.
pub fn parse_utc_offset(text: &str) -> Option<i64> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = digits[2..].parse().ok()?;
    Some(sign * (hours * 3600 + minutes * 60))
}

/// Restores the terminal when dropped, whatever the way out.
struct TerminalGuard;

fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(std::io::stdout(), DisableBracketedPaste, DisableMouseCapture, LeaveAlternateScreen);
    let _ = execute!(std::io::stdout(), crossterm::cursor::Show);
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

fn enter() -> Result<(TerminalGuard, Terminal<CrosstermBackend<Stdout>>), UiError> {
    // A panic anywhere must leave a usable shell behind.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
    enable_raw_mode()?;
    let guard = TerminalGuard;
    execute!(std::io::stdout(), EnterAlternateScreen, EnableBracketedPaste)?;
    // Mouse capture takes the terminal's own selection away (copying an
    // invite code, a safety number): only on request, for wheel scrolling.
    if mouse_wanted(std::env::var_os(MOUSE_ENV).as_deref()) {
        execute!(std::io::stdout(), EnableMouseCapture)?;
    }
    let terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    Ok((guard, terminal))
}

/// `KOLO_MOUSE=1` turns mouse capture on (wheel scrolling); off by default
/// so the terminal's native selection and copy work.
pub const MOUSE_ENV: &str = "KOLO_MOUSE";

pub fn mouse_wanted(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("on") || v.eq_ignore_ascii_case("yes"))
}

/// Translate a terminal key into ours; `None` for releases and keys we do not use.
pub fn key_of(event: &KeyEvent) -> Option<Key> {
    if event.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
    let alt = event.modifiers.contains(KeyModifiers::ALT);
    let code = match event.code {
        TermKey::Char(c) => KeyCode::Char(if ctrl { c.to_ascii_lowercase() } else { c }),
        TermKey::Enter => KeyCode::Enter,
        TermKey::Esc => KeyCode::Esc,
        TermKey::Tab => KeyCode::Tab,
        TermKey::BackTab => KeyCode::BackTab,
        TermKey::Up => KeyCode::Up,
        TermKey::Down => KeyCode::Down,
        TermKey::PageUp => KeyCode::PageUp,
        TermKey::PageDown => KeyCode::PageDown,
        TermKey::Left => KeyCode::Left,
        TermKey::Right => KeyCode::Right,
        TermKey::Home => KeyCode::Home,
        TermKey::End => KeyCode::End,
        TermKey::Backspace => KeyCode::Backspace,
        TermKey::Delete => KeyCode::Delete,
        TermKey::F(n) => KeyCode::F(n),
        _ => return None,
    };
    Some(Key { code, ctrl, alt })
}

type Answer = (Tag, Result<crate::api::Answer, String>);

/// The OSC 52 sequence that asks the terminal to put `text` on the system
/// clipboard ("c", base64 payload). Terminals that do not allow it ignore it.
pub fn osc52(text: &str) -> String {
    format!("\x1b]52;c;{}\x07", crate::wire::text::base64(text.as_bytes()))
}

/// Run the terminal client until the user quits, the node goes away, or
/// SIGTERM arrives. `node` takes requests and `events` brings the node's
/// events as the control socket pushes them, from a node in this process
/// ([`run_beside`]) or a running one ([`run_attached`]).
pub async fn run(
    node: mpsc::Sender<Pending>,
    mut events: mpsc::Receiver<PushEvent>,
    options: Options,
) -> Result<Outcome, UiError> {
    let mut app = App::new(options.keymap);
    app.trainer = options.trainer;
    app.demo_paused = options.demo.as_ref().map(|_| false);
    app.utc_offset_secs = local_offset_secs();
    let (_guard, mut terminal) = enter()?;
    let mut input = EventStream::new();
    let mut answers: FuturesUnordered<futures::future::BoxFuture<'static, Answer>> = FuturesUnordered::new();
    let mut term_signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut effects = app.start();
    let mut outcome = Outcome::Quit;
    'outer: loop {
        for effect in effects.drain(..) {
            match effect {
                Effect::Quit => break 'outer,
                Effect::Panic => {
                    outcome = Outcome::Panic;
                    break 'outer;
                }
                Effect::Request(tag, request) => send(&node, tag, request, &mut app, &mut answers),
                Effect::Copy(text) => {
                    use std::io::Write;
                    let backend = terminal.backend_mut();
                    let _ = backend.write_all(osc52(&text).as_bytes()).and_then(|()| backend.flush());
                }
                Effect::Demo(key) => {
                    if let Some(control) = &options.demo {
                        let paused = control(key);
                        app.demo_paced(key, paused);
                    }
                }
            }
        }
        let now = now_ms();
        app.tick(now);
        if let Some(tap) = &options.relay {
            app.relay = Some(tap());
        }
        terminal.draw(|f| view::draw(f, &app, now))?;
        let wake = app.next_wake(now).map(|t| Duration::from_millis(t.saturating_sub(now)));
        let sleep = tokio::time::sleep(wake.unwrap_or(Duration::from_secs(3600)));
        tokio::pin!(sleep);
        tokio::select! {
            event = input.next() => match event {
                Some(Ok(TermEvent::Key(k))) => {
                    if let Some(key) = key_of(&k) {
                        effects = app.key(key);
                    }
                }
                Some(Ok(TermEvent::Paste(text))) => app.paste(&text),
                Some(Ok(TermEvent::Mouse(m))) => match m.kind {
                    MouseEventKind::ScrollUp => app.wheel(true),
                    MouseEventKind::ScrollDown => app.wheel(false),
                    _ => {}
                },
                Some(Ok(_)) => {} // Resize and focus: the redraw below handles them.
                Some(Err(e)) => return Err(e.into()),
                None => break,
            },
            event = events.recv() => match event {
                Some(event) => effects = app.event(&event, now_ms()),
                None => break, // The node stopped (`kolo stop`).
            },
            Some((tag, result)) = answers.next(), if !answers.is_empty() => effects = app.reply(tag, result),
            _ = &mut sleep, if wake.is_some() => {}
            _ = async { match term_signal.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending::<()>().await } } => break,
        }
    }
    Ok(outcome)
}

/// Hand a request to the node without waiting; a full queue is an answer too.
fn send(
    node: &mpsc::Sender<Pending>,
    tag: Tag,
    request: Request,
    app: &mut App,
    answers: &mut FuturesUnordered<futures::future::BoxFuture<'static, Answer>>,
) {
    let (tx, rx) = oneshot::channel();
    match node.try_send((request, tx)) {
        Ok(()) => answers.push(Box::pin(async move {
            (
                tag,
                rx.await.unwrap_or_else(|_| Err(crate::api::Failure::unavailable("no answer"))).map_err(|f| f.message),
            )
        })),
        Err(_) => {
            let _ = app.reply(tag, Err("kolo is busy; try again in a moment".into()));
        }
    }
}

/// Run the terminal client beside `node` in this process; when it ends,
/// stop the node cleanly (its last writes reach the profile).
pub async fn run_beside(
    node: crate::node::Node,
    api_tx: mpsc::Sender<Pending>,
    api_rx: mpsc::Receiver<Pending>,
    events: mpsc::Receiver<NodeEvent>,
    options: Options,
) -> Result<Outcome, UiError> {
    let node_task = node.run(api_rx);
    tokio::pin!(node_task);
    let ui = run(api_tx.clone(), pushed(events), options);
    tokio::select! {
        _ = &mut node_task => Ok(Outcome::Quit),
        ended = ui => {
            let (tx, _rx) = oneshot::channel();
            let _ = api_tx.send((Request::Shutdown, tx)).await;
            node_task.await;
            ended
        }
    }
}

/// The node's events as a subscriber of the control socket would get
/// them, so the model knows one kind of event only.
fn pushed(mut events: mpsc::Receiver<NodeEvent>) -> mpsc::Receiver<PushEvent> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Some(push) = crate::api::convert::node_event(&event)
                && tx.send(push).await.is_err()
            {
                break;
            }
        }
    });
    rx
}

/// Run the terminal client attached to a node already running for the
/// profile (`kolo chat` beside `kolo daemon`); quitting leaves it running.
pub async fn run_attached(attached: crate::api::Attached, options: Options) -> Result<Outcome, UiError> {
    run(attached.requests, attached.events, options).await
}
