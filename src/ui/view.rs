//! Drawing the model with ratatui. Pure functions of the model and the
//! time: no state of their own, so view tests are snapshots of a buffer.
//!
//! Only what is visible is laid out: the message pane walks back from the
//! newest message until the pane is full, so a frame costs the same with a
//! hundred messages or ten thousand.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::model::{App, COMMANDS, Circle, Inspection, Kind, Link, Msg, Overlay, duration_label};

/// Panes appear as the terminal gets wider.
const CIRCLES_MIN_WIDTH: u16 = 50;
const MEMBERS_MIN_WIDTH: u16 = 96;
const CIRCLES_WIDTH: u16 = 18;
const MEMBERS_WIDTH: u16 = 30;
const MAX_INPUT_LINES: u16 = 5;
/// From `SHARED_MIN_WIDTH` to below `MEMBERS_MIN_WIDTH` (80 columns, say)
/// circles and members share one column of this width, circles on top, so
/// neither disappears; narrower still, only the circles are shown.
const SHARED_WIDTH: u16 = 22;
const SHARED_MIN_WIDTH: u16 = 72;

fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

fn bold() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

/// Draw the whole screen.
pub fn draw(frame: &mut Frame<'_>, app: &App, now_ms: u64) {
    let area = frame.area();
    let input_height = (app.input.line_count() as u16).clamp(1, MAX_INPUT_LINES) + 2;
    let notice_height = u16::from(app.notice.is_some());
    let [main, notice, input, status] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(notice_height),
        Constraint::Length(input_height),
        Constraint::Length(1),
    ])
    .areas(area);

    let show_circles = area.width >= CIRCLES_MIN_WIDTH;
    let shared = area.width >= SHARED_MIN_WIDTH && area.width < MEMBERS_MIN_WIDTH && !app.trainer;
    let show_members = area.width >= MEMBERS_MIN_WIDTH && !app.trainer;
    let left_width = match (show_circles, shared) {
        (false, _) => 0,
        (true, true) => SHARED_WIDTH,
        (true, false) => CIRCLES_WIDTH,
    };
    let [left, middle, members] = Layout::horizontal([
        Constraint::Length(left_width),
        Constraint::Min(20),
        Constraint::Length(if show_members { MEMBERS_WIDTH } else { 0 }),
    ])
    .areas(main);

    if shared {
        let rows = (app.circles.len().max(1) as u16 + 2).min(left.height / 2);
        let [circles, members] = Layout::vertical([Constraint::Length(rows), Constraint::Min(0)]).areas(left);
        draw_circles(frame, app, circles);
        draw_members(frame, app, members);
    } else if show_circles {
        draw_circles(frame, app, left);
    }
    if app.trainer {
        let [msgs, trainer] = Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(middle);
        draw_messages(frame, app, msgs, now_ms);
        draw_trainer(frame, app, trainer);
    } else {
        draw_messages(frame, app, middle, now_ms);
    }
    if show_members {
        draw_members(frame, app, members);
    }
    if let Some(n) = &app.notice {
        let style = if n.error {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(Color::Cyan)
        };
        frame.render_widget(Paragraph::new(Line::styled(format!(" {}", n.text), style)), notice);
    }
    draw_input(frame, app, input);
    draw_status(frame, app, status, now_ms);
    if let Some(overlay) = &app.overlay {
        draw_overlay(frame, app, overlay, area);
    }
}

fn draw_circles(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let width = area.width.saturating_sub(2) as usize;
    let lines: Vec<Line> = app
        .circles
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let unread = if c.unread > 0 { format!(" {}", c.unread) } else { String::new() };
            let marker = if i == app.current { "▶ " } else { "  " };
            let name_width = width.saturating_sub(unread.width() + 2);
            let mut style = if i == app.current { bold().fg(Color::Yellow) } else { Style::new() };
            if c.removed {
                style = style.add_modifier(Modifier::CROSSED_OUT);
            }
            // Two circles of one name (say, a copy made by an infiltrator)
            // must not look alike: the start of the id tells them apart.
            let twin = app.circles.iter().filter(|o| o.name.to_lowercase() == c.name.to_lowercase()).count() > 1;
            let id: String = c.id.chars().take(4).collect();
            let name = if twin {
                format!("{} {id}", fit(&c.name, name_width.saturating_sub(id.len() + 1)))
            } else {
                fit(&c.name, name_width)
            };
            Line::from(vec![
                Span::styled(marker, style),
                Span::styled(name, style),
                Span::styled(unread, Style::new().fg(Color::Black).bg(Color::Yellow)),
            ])
        })
        .collect();
    let body = if lines.is_empty() { vec![Line::styled("no circles yet", dim())] } else { lines };
    frame.render_widget(Paragraph::new(body).block(Block::bordered().title(" circles ")), area);
}

fn title_of(c: &Circle) -> String {
    let members = c.members.len();
    let timer = c.disappear_secs.map(|s| format!(" · disappearing {}", duration_label(s))).unwrap_or_default();
    let removed = if c.removed { " · you were removed" } else { "" };
    format!(" {} · {} members{timer}{removed} ", c.name, members)
}

fn draw_messages(frame: &mut Frame<'_>, app: &App, area: Rect, now_ms: u64) {
    let Some(c) = app.circle() else {
        let text = vec![
            Line::raw(""),
            Line::styled("  Welcome to kolo.", bold()),
            Line::raw(""),
            Line::raw("  Create a circle:  /create NAME"),
            Line::raw("  Join one:         /join CODE   (paste the code you were given)"),
            Line::raw(""),
            Line::styled("  ? or F1 shows every key and command.", dim()),
        ];
        frame.render_widget(Paragraph::new(text).block(Block::bordered().title(" kolo ")), area);
        return;
    };
    let block = Block::bordered().title(title_of(c));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut body = inner;
    if let Some(p) = &c.pinned {
        let lines = pinned_lines(p, app, inner.width as usize);
        let h = (lines.len() as u16).min(inner.height / 2);
        let [pin, rest] = Layout::vertical([Constraint::Length(h), Constraint::Min(0)]).areas(inner);
        frame.render_widget(Paragraph::new(lines).style(Style::new().bg(Color::Rgb(40, 40, 0))), pin);
        body = rest;
    }
    if !c.key_changes.is_empty() {
        let [warn, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(body);
        let names = c.key_changes.join(", ");
        let text = format!(" ⚠ key changed: {names}. Sending is blocked: /verify, then /accept ");
        frame.render_widget(Paragraph::new(Line::styled(text, Style::new().fg(Color::White).bg(Color::Red))), warn);
        body = rest;
    }
    let lines = visible_message_lines(c, app, body.width as usize, body.height as usize, now_ms);
    frame.render_widget(Paragraph::new(lines), body);
}

fn pinned_lines(p: &super::model::Pinned, app: &App, width: usize) -> Vec<Line<'static>> {
    let Kind::Announcement { title, when, place, details } = &p.msg.kind else {
        return Vec::new();
    };
    let mut head = vec![Span::styled("📌 ", bold()), Span::styled(title.clone(), bold().fg(Color::Yellow))];
    let mut at = String::new();
    if !when.is_empty() {
        at.push_str(when);
    }
    if !place.is_empty() {
        at.push_str(&format!("{}@ {place}", if at.is_empty() { "" } else { "  " }));
    }
    let one_line = 3 + title.width() + 2 + at.width() <= width;
    let mut lines = Vec::new();
    if one_line {
        if !at.is_empty() {
            head.push(Span::raw(format!("  {at}")));
        }
        lines.push(Line::from(head));
    } else {
        // Narrow: when and where on lines of their own, whole, never cut.
        lines.push(Line::from(head));
        lines.extend(wrap(&at, width.saturating_sub(3)).into_iter().map(|l| Line::raw(format!("   {l}"))));
    }
    if !details.is_empty() {
        lines.extend(wrap(details, width.saturating_sub(3)).into_iter().map(|l| Line::raw(format!("   {l}"))));
    }
    let acks = if p.acked_by.is_empty() { "nobody yet".to_owned() } else { p.acked_by.join(", ") };
    let mut footer = format!("   from {} · acknowledged by {acks}", p.msg.sender);
    if !p.acked_by_me
        && let Some(key) = app.keymap.key_for(super::keymap::Action::Acknowledge)
    {
        footer.push_str(&format!(" · {key} to acknowledge"));
    }
    lines.push(Line::styled(fit(&footer, width), dim()));
    lines
}

/// The lines of the newest messages that fit in `height`, after scrolling
/// up by the circle's scroll offset. Walks back only as far as needed.
pub fn visible_message_lines(c: &Circle, app: &App, width: usize, height: usize, now_ms: u64) -> Vec<Line<'static>> {
    let want = height.saturating_add(c.scroll);
    let mut blocks: Vec<Vec<Line<'static>>> = Vec::new();
    let mut total = 0usize;
    let shown = |m: &super::model::Msg| c.search.as_deref().is_none_or(|n| super::model::message_matches(m, n));
    for (i, m) in c.messages.iter().enumerate().rev().filter(|(_, m)| shown(m)) {
        let selected = app.trainer && c.selected == Some(i);
        let lines = message_lines(m, app, width, now_ms, selected);
        total += lines.len();
        blocks.push(lines);
        if total >= want {
            break;
        }
    }
    let mut lines: Vec<Line<'static>> = blocks.into_iter().rev().flatten().collect();
    // Clamp scrolling at the oldest message.
    let scroll = c.scroll.min(lines.len().saturating_sub(height));
    let end = lines.len() - scroll;
    let start = end.saturating_sub(height);
    lines.truncate(end);
    lines.drain(..start);
    if c.messages.is_empty() {
        lines.push(Line::styled("No messages yet. Type below and press enter.", dim()));
    } else if lines.is_empty() && c.search.is_some() {
        lines.push(Line::styled("No message matches the search. /search alone shows all again.", dim()));
    }
    lines
}

fn clock(ms: u64, offset_secs: i64) -> String {
    let secs = (ms / 1000) as i64 + offset_secs;
    let day = secs.rem_euclid(86_400);
    format!("{:02}:{:02}", day / 3600, (day % 3600) / 60)
}

/// `2026-11-23 09:00` at `offset_secs` east of UTC (the CLI's timestamps).
pub fn date_time(ms: u64, offset_secs: i64) -> String {
    let secs = (ms / 1000) as i64 + offset_secs;
    let (days, day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", day / 3600, (day % 3600) / 60)
}

fn message_lines(m: &Msg, app: &App, width: usize, now_ms: u64, selected: bool) -> Vec<Line<'static>> {
    let time = clock(m.sent_at_ms, app.utc_offset_secs);
    let countdown = m.expires_at_ms.map(|d| format!(" ⏳{}", duration_label(d.saturating_sub(now_ms).div_ceil(1000))));
    let mine = !app.fingerprint.is_empty() && m.sender_fingerprint == app.fingerprint;
    let highlight = if selected { Style::new().bg(Color::Blue) } else { Style::new() };
    if m.kind == Kind::System {
        let text = fit(&format!("{time} — {} —", m.text), width);
        return vec![Line::styled(text, dim().add_modifier(Modifier::ITALIC).patch(highlight))];
    }
    let name = if mine { "you".to_owned() } else { m.sender.clone() };
    let mark = if m.verified { "✓" } else { "" };
    let body = match &m.kind {
        Kind::Announcement { title, when, place, .. } => format!("📌 {title} {when} {place}").trim_end().to_owned(),
        _ => m.text.clone(),
    };
    let prefix_width = time.width() + 1 + name.width() + mark.width() + 2;
    let indent = 6usize;
    let first_width = width.saturating_sub(prefix_width).max(1);
    let mut rows = wrap_first(&body, first_width, width.saturating_sub(indent).max(1));
    if rows.is_empty() {
        rows.push(String::new());
    }
    let name_style = if mine { bold().fg(Color::Cyan) } else { bold().fg(Color::Green) };
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        let mut spans = Vec::new();
        if i == 0 {
            spans.push(Span::styled(format!("{time} "), dim()));
            spans.push(Span::styled(name.clone(), name_style));
            spans.push(Span::styled(mark.to_owned(), Style::new().fg(Color::Green)));
            spans.push(Span::raw(": "));
        } else {
            spans.push(Span::raw(" ".repeat(indent)));
        }
        spans.push(Span::raw(row));
        out.push(Line::from(spans).style(highlight));
    }
    if let (Some(cd), Some(last)) = (countdown, out.last_mut()) {
        last.spans.push(Span::styled(cd, Style::new().fg(Color::Magenta)));
    }
    out
}

fn draw_members(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let Some(c) = app.circle() else {
        frame.render_widget(Block::bordered().title(" members "), area);
        return;
    };
    let width = area.width.saturating_sub(2) as usize;
    let mut lines: Vec<Line> = Vec::new();
    for m in &c.members {
        let (dot, link, color) = match m.link {
            Link::You => ("●", "you", Color::Cyan),
            Link::Direct => ("●", "direct", Color::Green),
            Link::Relayed => ("●", "relayed", Color::Yellow),
            Link::Tor => ("●", "via tor", Color::Green),
            Link::Offline => ("○", "offline", Color::DarkGray),
        };
        let role = if m.role == "organiser" { " org" } else { "" };
        let mark = match (m.lookalike, m.verified) {
            (true, _) => "⚠",
            (false, true) => "✓",
            (false, false) => "",
        };
        // The name gets whatever the dot, marks and link leave.
        let room = width.saturating_sub(2 + mark.width() + role.width() + 1 + link.width());
        let name = fit(&m.name, room);
        let left = format!("{dot} {name}{mark}{role}");
        let pad = width.saturating_sub(left.width() + link.width());
        lines.push(Line::from(vec![
            Span::styled(format!("{dot} "), Style::new().fg(color)),
            Span::raw(name),
            Span::styled(mark, Style::new().fg(if m.lookalike { Color::Red } else { Color::Green })),
            Span::styled(role, dim()),
            Span::raw(" ".repeat(pad)),
            Span::styled(link, Style::new().fg(color)),
        ]));
    }
    lines.push(Line::raw(""));
    let legends = if width >= 28 {
        ["direct: they see your IP", "relayed: only the relay does", "✓ safety number verified"]
    } else {
        ["direct: sees your IP", "relayed: via a relay", "✓ verified"]
    };
    for legend in legends {
        lines.push(Line::styled(fit(legend, width), dim()));
    }
    if c.members.iter().any(|m| m.lookalike) {
        lines.push(Line::styled(fit("⚠ name looks like another's", width), Style::new().fg(Color::Red)));
    }
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(" members ")), area);
}

fn draw_trainer(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let key = |a| app.keymap.key_for(a).map(|k| k.to_string()).unwrap_or_default();
    let title = format!(
        " trainer view · {}/{} choose a message · {} closes ",
        key(super::keymap::Action::SelectOlder),
        key(super::keymap::Action::SelectNewer),
        key(super::keymap::Action::ToggleTrainer)
    );
    let block = Block::bordered().title(title).border_style(Style::new().fg(Color::Magenta));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let c = app.circle();
    let msg = c.and_then(|c| c.selected.and_then(|i| c.messages.get(i)));
    let (Some(c), Some(m)) = (c, msg) else {
        frame.render_widget(Paragraph::new("No message to inspect yet: send one, or wait for one to arrive."), inner);
        return;
    };
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).spacing(2).areas(inner);
    let inspection = app.inspection.as_ref().filter(|i| i.id == m.id);
    frame.render_widget(Paragraph::new(member_side(m, c, inspection, app)).wrap(Wrap { trim: false }), left);
    frame.render_widget(Paragraph::new(relay_side(inspection, app, right.width as usize)), right);
}

fn member_side(m: &Msg, c: &Circle, i: Option<&Inspection>, app: &App) -> Vec<Line<'static>> {
    let mut lines = vec![Line::styled("What a member sees", bold().fg(Color::Green))];
    let verified = if m.verified { " ✓ verified in person" } else { " (not verified in person)" };
    lines.push(Line::raw(format!("from  {}{verified}", m.sender)));
    lines.push(Line::raw(format!("key   {}", m.sender_fingerprint)));
    lines.push(Line::raw(format!("sent  {}", clock(m.sent_at_ms, app.utc_offset_secs))));
    let text = match &m.kind {
        Kind::Announcement { title, when, place, details } => format!("📌 {title} | {when} | {place} | {details}"),
        _ => m.text.clone(),
    };
    lines.push(Line::raw(format!("text  {text}")));
    if let Some(i) = i {
        let sig = match i.signature_ok {
            Some(true) => Span::styled("signature valid ✓", Style::new().fg(Color::Green)),
            Some(false) => Span::styled("signature INVALID ✗", Style::new().fg(Color::Red)),
            None => Span::styled("signing key already erased", dim()),
        };
        lines.push(Line::raw(format!(
            "opened with {}'s sending key, epoch {}, message #{}",
            m.sender, i.epoch, i.counter
        )));
        lines.push(Line::from(vec![Span::raw("checked: "), sig]));
    }
    lines.push(Line::styled(format!("circle {} is at epoch {}; {} frames refused", c.name, c.epoch, c.refused), dim()));
    lines
}

fn relay_side(i: Option<&Inspection>, app: &App, width: usize) -> Vec<Line<'static>> {
    let mut lines = vec![Line::styled("What a non-member relay sees", bold().fg(Color::Red))];
    let Some(i) = i else {
        lines.push(Line::styled("(asking the node for the envelope…)", dim()));
        return lines;
    };
    lines.push(Line::raw(format!("one frame of {} bytes (text padded to {} bytes)", i.frame_len, i.padded_len)));
    lines.push(Line::raw(format!("key id {} (a sending chain, not a person)", i.key_id)));
    lines.push(Line::raw(format!("epoch {} · counter {}", i.epoch, i.counter)));
    let hex_width = width.saturating_sub(12).max(8);
    let ct_rows = 3;
    lines.push(Line::from(vec![Span::styled("ciphertext ", bold()), Span::raw(fit(&i.ciphertext, hex_width))]));
    for k in 1..ct_rows {
        let from = k * hex_width;
        if from < i.ciphertext.len() {
            lines.push(Line::raw(format!("           {}", fit(&i.ciphertext[from..], hex_width))));
        }
    }
    lines.push(Line::from(vec![Span::styled("signature  ", bold()), Span::raw(fit(&i.signature, hex_width))]));
    lines.push(Line::styled("no sender name, no identity key, no text, no time;", Style::new().fg(Color::Yellow)));
    lines.push(Line::styled("on the wire it is encrypted again (network key, Noise)", Style::new().fg(Color::Yellow)));
    if let Some(r) = &app.relay {
        lines.push(Line::raw(format!("the demo relay carried {} bytes on {} connections:", r.bytes, r.connections)));
        lines.push(Line::styled(fit(&r.sample, width), dim()));
    }
    lines
}

fn draw_input(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let send = app.keymap.key_for(super::keymap::Action::Send).map(|k| k.to_string()).unwrap_or_default();
    let newline = app.keymap.key_for(super::keymap::Action::NewLine).map(|k| k.to_string()).unwrap_or_default();
    let title = match app.circle() {
        Some(c) => format!(" message {} · {send} sends · {newline} new line ", c.name),
        None => " /create NAME or /join CODE ".to_owned(),
    };
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let lines = app.input.visible_lines(width);
    let (cursor_line, _) = app.input.cursor_position();
    let first = (cursor_line + 1).saturating_sub(inner.height as usize);
    let shown: Vec<Line> = lines.into_iter().skip(first).take(inner.height as usize).map(Line::raw).collect();
    frame.render_widget(Paragraph::new(shown), inner);
    if app.overlay.is_none() {
        let x = inner.x + app.input.visible_cursor_column(width) as u16;
        let y = inner.y + (cursor_line - first) as u16;
        frame.set_cursor_position(Position { x, y });
    }
}

fn draw_status(frame: &mut Frame<'_>, app: &App, area: Rect, now_ms: u64) {
    let help = app.keymap.key_for(super::keymap::Action::Help).map(|k| k.to_string()).unwrap_or_default();
    let quit = app.keymap.key_for(super::keymap::Action::Quit).map(|k| k.to_string()).unwrap_or_default();
    let trainer = app.keymap.key_for(super::keymap::Action::ToggleTrainer).map(|k| k.to_string()).unwrap_or_default();
    // Wide, then the same facts shorter, so an 80-column status line is whole.
    let build = |short: bool| {
        let mut spans = Vec::new();
        match app.circle() {
            Some(c) => {
                let color = if c.peers > 0 { Color::Green } else { Color::Red };
                spans.push(Span::styled(format!(" ● {} peers ", c.peers), Style::new().fg(color)));
                let lock = if short { "🔒 encrypted" } else { "🔒 end-to-end encrypted" };
                spans.push(Span::styled(format!("│ {lock} · epoch {} ", c.epoch), Style::new()));
                if let Some(s) = c.disappear_secs {
                    spans.push(Span::raw(format!("│ ⏳ {} ", duration_label(s))));
                }
                if c.catch_up_until_ms.is_some_and(|t| t > now_ms) {
                    spans.push(Span::styled("│ catching up… ", Style::new().fg(Color::Yellow)));
                }
            }
            None => spans.push(Span::raw(" no circle ")),
        }
        if app.demo_paused == Some(true) {
            let text = if short { "│ ⏸ paused " } else { "│ ⏸ demo paused: space resumes · n next step " };
            spans.push(Span::styled(text, Style::new().fg(Color::Yellow)));
        }
        let keys = if short {
            format!("│ {help} help · {quit} quit")
        } else {
            format!("│ {help} help · {trainer} trainer · {quit} quit")
        };
        spans.push(Span::styled(keys, dim()));
        Line::from(spans)
    };
    let wide = build(false);
    let line = if wide.width() <= area.width as usize { wide } else { build(true) };
    frame.render_widget(Paragraph::new(line).style(Style::new().bg(Color::Rgb(30, 30, 30))), area);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

fn draw_overlay(frame: &mut Frame<'_>, app: &App, overlay: &Overlay, area: Rect) {
    let (title, lines): (String, Vec<Line>) = match overlay {
        Overlay::Help => {
            let all = help_lines(app, area.width as usize);
            // What does not fit scrolls (up, down, page keys); the title says so.
            let room = area.height.saturating_sub(2) as usize;
            if all.len() <= room {
                (" help · esc closes ".into(), all)
            } else {
                let skip = app.help_scroll.min(all.len() - room);
                let more = if skip + room < all.len() { "↓ more" } else { "end" };
                let title = format!(" help · ↑↓ pgup pgdn scroll ({more}) · esc closes ");
                (title, all.into_iter().skip(skip).take(room).collect())
            }
        }
        Overlay::Verify(v) => {
            let state = if v.verified {
                Line::styled(format!("{} is verified ✓", v.member), Style::new().fg(Color::Green))
            } else {
                Line::raw("")
            };
            (
                format!(" verify {} ", v.member),
                vec![
                    Line::raw("Compare these numbers with them in person (or on a call you trust)."),
                    Line::raw("Both of you must see the same two numbers."),
                    Line::raw(""),
                    Line::from(vec![Span::styled("your number        ", bold()), Span::raw(v.yours.clone())]),
                    Line::from(vec![
                        Span::styled(format!("{:<19}", format!("{}'s number", v.member)), bold()),
                        Span::raw(v.theirs.clone()),
                    ]),
                    Line::from(vec![
                        Span::styled(format!("{:<19}", format!("{}'s fingerprint", v.member)), dim()),
                        Span::styled(fingerprint_of(app, &v.member), dim()),
                    ]),
                    Line::raw(""),
                    state,
                    Line::styled(overlay.keys_hint(), bold()),
                ],
            )
        }
        Overlay::Invite { circle, code, qr } => (" invite · esc closes ".into(), invite_lines(circle, code, qr, area)),
        Overlay::ConfirmPanic => (
            " panic ".into(),
            vec![
                Line::styled("Destroy this profile now?", bold().fg(Color::Red)),
                Line::raw("Keys first, then every message and circle. This cannot be undone."),
                Line::raw(""),
                Line::styled(overlay.keys_hint(), bold()),
            ],
        ),
        Overlay::ConfirmRemove { member, .. } => (
            " remove ".into(),
            vec![
                Line::styled(format!("Remove {member} from this circle?"), bold().fg(Color::Red)),
                Line::raw("Every remaining member replaces its keys; they cannot read anything new."),
                Line::raw("This cannot be undone: only a new invite brings them back."),
                Line::raw(""),
                Line::styled(overlay.keys_hint(), bold()),
            ],
        ),
        Overlay::ConfirmLeave { name, force, .. } => {
            let mut lines = vec![
                Line::styled(format!("Leave {name}?"), bold().fg(Color::Red)),
                Line::raw("The other members see that you left and replace their keys."),
                Line::raw("You keep what you already read; only a new invite brings you back."),
            ];
            if *force {
                lines.push(Line::styled("Even if you are its only organiser: nobody could manage it.", bold()));
            }
            lines.push(Line::raw(""));
            lines.push(Line::styled(overlay.keys_hint(), bold()));
            (" leave ".into(), lines)
        }
    };
    let width = lines.iter().map(Line::width).max().unwrap_or(20).max(title.width()) as u16 + 4;
    let rect = centered(area, width, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(title)), rect);
}

/// The invite dialog: the code wrapped to the window (whole, never cut at
/// its edge), and the QR code only where it fits whole; otherwise how large
/// the terminal must be for it.
fn invite_lines(circle: &str, code: &str, qr: &[String], area: Rect) -> Vec<Line<'static>> {
    // Borders and the dialog's own margin.
    let room = (area.width as usize).saturating_sub(4).clamp(16, 72);
    let chars: Vec<char> = code.chars().collect();
    let pieces: Vec<String> = chars.chunks(room).map(|c| c.iter().collect()).collect();
    let mut lines = vec![
        Line::raw(format!("A one-time invite to {circle}; it expires in 24 hours.")),
        Line::raw("Give it in person, or over a channel you trust:"),
    ];
    lines.extend(pieces.iter().map(|p| Line::styled(p.clone(), bold().fg(Color::Yellow))));
    if pieces.len() > 1 {
        lines.push(Line::styled(
            format!("(one code of {} characters; line breaks and spaces in it are ignored)", chars.len()),
            dim(),
        ));
    }
    let qr_width = qr.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    // The QR, the lines above, the hint below and the borders.
    let needed_height = lines.len() + qr.len() + 3;
    if qr_width + 4 <= area.width as usize && needed_height <= area.height as usize {
        lines.extend(qr.iter().map(|l| Line::raw(l.clone())));
    } else if !qr.is_empty() {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            format!(
                "The QR code needs a {}x{} terminal (this is {}x{}): enlarge it to scan",
                qr_width + 4,
                needed_height,
                area.width,
                area.height
            ),
            bold(),
        ));
    }
    lines.push(Line::styled("c: copy to the clipboard (OSC 52) · esc or enter: close", bold()));
    lines
}

/// A member's fingerprint (what `/verify` and `/remove` accept when two
/// members share a name), from the members pane's data.
fn fingerprint_of(app: &App, name: &str) -> String {
    let members = app.circle().map(|c| c.members.as_slice()).unwrap_or_default();
    let mut hits = members.iter().filter(|m| m.name.eq_ignore_ascii_case(name) || m.fingerprint.starts_with(name));
    match (hits.next(), hits.next()) {
        (Some(m), None) => m.fingerprint.clone(),
        _ => "(several members match; use the fingerprint)".into(),
    }
}

fn help_lines(app: &App, width: usize) -> Vec<Line<'static>> {
    let mut lines = vec![Line::styled("Keys", bold())];
    for (keys, what) in app.keymap.help() {
        lines.push(Line::from(vec![
            Span::styled(format!("{keys:<22}"), Style::new().fg(Color::Yellow)),
            Span::raw(what),
        ]));
    }
    lines.push(Line::from(vec![
        Span::styled(format!("{:<22}", "?"), Style::new().fg(Color::Yellow)),
        Span::raw("this help, when the input is empty"),
    ]));
    lines.push(Line::raw(""));
    lines.push(Line::styled("Commands", bold()));
    let side_by_side = COMMANDS.iter().all(|(_, w)| 42 + w.width() + 4 <= width);
    for (cmd, what) in COMMANDS {
        if side_by_side {
            lines.push(Line::from(vec![
                Span::styled(format!("{cmd:<42}"), Style::new().fg(Color::Yellow)),
                Span::raw(*what),
            ]));
        } else {
            // Narrow terminals (80 columns): the command, then what it does.
            lines.push(Line::styled((*cmd).to_owned(), Style::new().fg(Color::Yellow)));
            lines.push(Line::raw(format!("    {what}")));
        }
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("Keys can be changed in keys.conf in the profile directory.", dim()));
    lines
}

/// Cut `s` to at most `width` display cells, marking the cut with "…".
pub fn fit(s: &str, width: usize) -> String {
    if s.width() <= width {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for g in s.graphemes(true) {
        let w = g.width();
        if used + w + 1 > width {
            break;
        }
        out.push_str(g);
        used += w;
    }
    if width > 0 {
        out.push('…');
    }
    out
}

/// Wrap text to `width` cells, breaking at spaces where possible.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    wrap_first(text, width, width)
}

/// Wrap with a different width for the first row (after a prefix).
fn wrap_first(text: &str, first: usize, rest: usize) -> Vec<String> {
    let mut rows = Vec::new();
    for paragraph in text.split('\n') {
        let mut row = String::new();
        let mut used = 0usize;
        for word in paragraph.split_word_bounds() {
            let limit = if rows.is_empty() { first } else { rest }.max(1);
            let w = word.width();
            if used + w > limit && used > 0 {
                rows.push(std::mem::take(&mut row).trim_end().to_owned());
                used = 0;
                if word.trim().is_empty() {
                    continue;
                }
            }
            if w > limit {
                // A word longer than the row: break it by grapheme.
                for g in word.graphemes(true) {
                    let limit = if rows.is_empty() { first } else { rest }.max(1);
                    let gw = g.width();
                    if used + gw > limit && used > 0 {
                        rows.push(std::mem::take(&mut row));
                        used = 0;
                    }
                    row.push_str(g);
                    used += gw;
                }
                continue;
            }
            row.push_str(word);
            used += w;
        }
        rows.push(row.trim_end().to_owned());
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_dates() {
        assert_eq!(date_time(0, 0), "1970-01-01 00:00");
        assert_eq!(date_time(1_795_424_400_000, 0), "2026-11-23 09:00");
        assert_eq!(date_time(1_795_424_400_000, -10 * 3600), "2026-11-22 23:00");
        assert_eq!(date_time(951_782_400_000, 0), "2000-02-29 00:00");
    }

    #[test]
    fn wrapping_respects_width_and_wide_characters() {
        assert_eq!(wrap("the quick brown fox", 10), vec!["the quick", "brown fox"]);
        let cjk = wrap("日本語のテキスト", 6);
        assert!(cjk.iter().all(|r| r.width() <= 6), "{cjk:?}");
        assert_eq!(cjk.concat(), "日本語のテキスト");
        assert_eq!(wrap("a\nb", 10), vec!["a", "b"]);
        for row in wrap("abcdefghijklmnopqrstuvwxyz", 7) {
            assert!(row.width() <= 7);
        }
        assert_eq!(fit("riverside", 6), "river…");
        assert_eq!(clock(3_600_000 + 120_000, 0), "01:02");
        assert_eq!(clock(0, -3600), "23:00");
    }
}
