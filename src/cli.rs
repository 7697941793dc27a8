//! Command-line parsing and the profile-level commands (init, passphrase,
//! duress, panic, demo). Passphrases come from `--passphrase-file`,
//! `KOLO_PASSPHRASE`, or a prompt that does not echo.

use kolo::clock::now_ms;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use zeroize::Zeroizing;

use kolo::api::{self, Request};
use kolo::engine::message::{MAX_FIELD, MAX_TEXT, MAX_TITLE, check_len};
use kolo::entropy::OsEntropy;
use kolo::store::{self, KdfParams, Profile};
use kolo::ui::safe_text::{clean, clean_line};

#[derive(Parser)]
#[command(name = "kolo", version, about = "Peer-to-peer, end-to-end encrypted group chat for activist circles")]
pub struct Cli {
    /// Profile directory (default: the XDG data directory, e.g. ~/.local/share/kolo).
    #[arg(long, global = true, env = "KOLO_HOME")]
    home: Option<PathBuf>,
    /// Read the passphrase from this file (first line) instead of prompting.
    #[arg(long, global = true)]
    passphrase_file: Option<PathBuf>,
    /// Keep everything in memory and write no file anywhere (for shared
    /// computers). `kolo --ephemeral daemon --name NAME` runs such a node;
    /// other commands with `--ephemeral` talk to it.
    #[arg(long, global = true)]
    ephemeral: bool,
    /// `kolo --listen …` is `kolo chat --listen …`.
    #[command(flatten)]
    chat: NodeArgs,
    #[command(subcommand)]
    command: Option<Cmd>,
}

/// Where a circle network listens by default: every interface, any port.
const DEFAULT_LISTEN: &str = "/ip4/0.0.0.0/tcp/0";

/// How the node runs, for `kolo chat` and `kolo daemon` alike.
#[derive(clap::Args, Clone)]
struct NodeArgs {
    /// Where circle networks listen (repeatable), e.g. /ip4/0.0.0.0/tcp/0.
    #[arg(long = "listen", default_value = DEFAULT_LISTEN)]
    listen: Vec<String>,
    /// Find members on the local network with mDNS (off by default).
    #[arg(long)]
    mdns: bool,
    /// Your display name (only with --ephemeral, which has no profile).
    #[arg(long)]
    name: Option<String>,
    /// How new circles connect: `direct` (TCP; members see your IP) or
    /// `tor` (onion services through a tor kolo starts; nobody sees your
    /// IP). A circle keeps the transport it was first started with.
    #[arg(long, value_parser = ["direct", "tor"], default_value = "direct")]
    transport: String,
}

impl Default for NodeArgs {
    fn default() -> Self {
        NodeArgs { listen: vec![DEFAULT_LISTEN.into()], mdns: false, name: None, transport: "direct".into() }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scripted circle and show what members and the network see.
    Demo {
        /// Print the transcript instead of opening the terminal UI.
        #[arg(long)]
        headless: bool,
    },
    /// Create a new encrypted profile with a fresh identity.
    Init {
        /// The name other members will see.
        #[arg(long)]
        name: String,
    },
    /// Change the profile's passphrase (new one from KOLO_NEW_PASSPHRASE or a prompt).
    Passphrase,
    /// Set a duress passphrase: entering it instead of the real one destroys
    /// the profile and opens an empty one (from KOLO_DURESS_PASSPHRASE or a prompt).
    Duress,
    /// Destroy the profile now: keys first, then everything else.
    Panic {
        /// Do not ask for confirmation (for scripts).
        #[arg(long)]
        yes: bool,
    },
    /// Open the terminal client (the default when no command is given).
    Chat(NodeArgs),
    /// Run the node headless: join circles' networks and serve the control socket.
    Daemon(NodeArgs),
    /// Circles: create.
    Circle {
        #[command(subcommand)]
        action: CircleCmd,
    },
    /// List your circles.
    Circles {
        #[arg(long)]
        json: bool,
    },
    /// Make a one-time invite code for a circle.
    Invite {
        circle: String,
        /// How long the code stays valid (e.g. 30m, 24h, 7d).
        #[arg(long, default_value = "24h")]
        expires: String,
        /// Invite as an organiser.
        #[arg(long)]
        organiser: bool,
        /// Also draw the code as a QR code in the terminal.
        #[arg(long)]
        qr: bool,
        /// Revoke this unused invite code instead of making a new one.
        #[arg(long, value_name = "CODE")]
        revoke: Option<String>,
    },
    /// Join a circle with an invite code.
    Join { code: String },
    /// Send a message.
    Send {
        circle: String,
        text: String,
        /// Disappear after this long (e.g. 10m, 1h).
        #[arg(long)]
        disappear: Option<String>,
    },
    /// Post an announcement (organisers).
    Announce {
        circle: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        when: Option<String>,
        #[arg(long = "where")]
        place: Option<String>,
        #[arg(long)]
        details: Option<String>,
        /// Id (or prefix) of the announcement this one replaces.
        #[arg(long)]
        supersedes: Option<String>,
        #[arg(long)]
        disappear: Option<String>,
    },
    /// Show a circle's messages.
    Messages {
        circle: String,
        #[arg(long)]
        json: bool,
    },
    /// Show a circle's members.
    Members {
        circle: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a member (organisers); every remaining member rekeys.
    Remove { circle: String, member: String },
    /// Change your display name in a circle (every member sees the change).
    Rename { circle: String, name: String },
    /// Leave a circle: the other members see you go and replace their keys.
    Leave {
        circle: String,
        /// Leave even as the circle's only organiser (nobody could manage it).
        #[arg(long)]
        force: bool,
    },
    /// Acknowledge the circle's pinned announcement: its organisers and
    /// members see that you read it.
    Ack {
        circle: String,
        /// Id (or prefix) of another announcement than the pinned one.
        #[arg(long)]
        message: Option<String>,
    },
    /// Set how long messages in the circle live at most (organisers), e.g.
    /// 7d; `off` lets messages stay until their sender's own timer, if any.
    Disappear { circle: String, timer: String },
    /// Compare safety numbers with a member; --confirm marks them verified.
    Verify {
        circle: String,
        member: String,
        #[arg(long)]
        confirm: bool,
    },
    /// Show the running node's state.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Stop the running node; returns once it has exited.
    Stop,
}

#[derive(Subcommand)]
enum CircleCmd {
    /// Create a circle; you are its first organiser.
    Create {
        name: String,
        /// Maximum lifetime of every message in the circle (e.g. 7d).
        #[arg(long)]
        disappear: Option<String>,
    },
}

/// `30s`, `10m`, `2h`, `7d`, or plain seconds.
pub fn parse_duration(text: &str) -> anyhow::Result<u64> {
    kolo::api::parse_duration(text).map_err(anyhow::Error::msg)
}

/// A timer that must be longer than nothing (`--disappear`, `--expires`):
/// `0s` would otherwise mean "no timer" or an already dead code.
fn positive_secs(text: &str, what: &str) -> anyhow::Result<u64> {
    match parse_duration(text)? {
        0 => bail!("{what} must be longer than 0s"),
        n => Ok(n),
    }
}

fn secs32(text: &Option<String>) -> anyhow::Result<Option<u32>> {
    match text {
        None => Ok(None),
        Some(t) => Ok(Some(u32::try_from(positive_secs(t, "--disappear")?).context("duration too long")?)),
    }
}

fn home(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(h) = &cli.home {
        return Ok(h.clone());
    }
    dirs::data_dir().map(|d| d.join("kolo")).context("no data directory on this system; pass --home DIR")
}

/// The passphrase: file, then environment (as taken and wiped at start by
/// [`crate::hardening`]), then a prompt on the terminal.
fn passphrase(cli: &Cli, prompt: &str, env: &str, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
    if let Some(f) = &cli.passphrase_file
        && env == "KOLO_PASSPHRASE"
    {
        let text = Zeroizing::new(
            std::fs::read_to_string(f).with_context(|| format!("cannot read passphrase file {}", f.display()))?,
        );
        return Ok(Zeroizing::new(text.lines().next().unwrap_or_default().to_owned()));
    }
    if let Some(p) = crate::hardening::env_secret(env) {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: set {env} or use --passphrase-file (stdin is not a terminal)");
    }
    let first = Zeroizing::new(rpassword::prompt_password(prompt)?);
    if confirm {
        let again = Zeroizing::new(rpassword::prompt_password("Repeat: ")?);
        if *again != *first {
            bail!("the two passphrases differ; nothing changed");
        }
    }
    Ok(first)
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let node_args_given = cli.chat.listen != [DEFAULT_LISTEN] || cli.chat.mdns || cli.chat.name.is_some();
    if cli.command.is_some() && node_args_given {
        bail!("--listen, --mdns and --name before a command are for the chat; put them after `chat` or `daemon`");
    }
    let chat = Cmd::Chat(cli.chat.clone());
    let command = cli.command.as_ref().unwrap_or(&chat);
    let mut rng = OsEntropy;
    match command {
        Cmd::Demo { headless } => {
            if !headless && !std::io::stdout().is_terminal() {
                bail!("the demo needs a terminal; `kolo demo --headless` prints a transcript instead");
            }
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            runtime
                .block_on(async {
                    if *headless {
                        let mut out = std::io::stdout();
                        kolo::demo::headless(&mut out).await
                    } else {
                        kolo::demo::interactive(kolo::ui::keymap::Keymap::default()).await
                    }
                })
                .map_err(anyhow::Error::msg)?;
        }
        Cmd::Init { name } => {
            // The name members will see, checked now rather than at the first join.
            kolo::circle::check_name(name, "name").map_err(|e| anyhow::anyhow!(clean_line(&e.to_string())))?;
            let dir = home(&cli)?;
            let pass = passphrase(&cli, "New passphrase: ", "KOLO_PASSPHRASE", true)?;
            if pass.is_empty() {
                bail!("an empty passphrase would leave the profile unprotected");
            }
            let opened = Profile::create(&dir, &pass, name, KdfParams::DEFAULT, &mut rng)?;
            let id = opened.identity.member_id();
            println!("created profile in {}", dir.display());
            println!("your fingerprint: {}", id.fingerprint());
            println!("your safety number: {}", kolo::identity::safety_number(&id));
        }
        Cmd::Passphrase => {
            let dir = home(&cli)?;
            let pass = passphrase(&cli, "Current passphrase: ", "KOLO_PASSPHRASE", false)?;
            let (_lock, mut opened) = open_offline(&dir, pass, &mut rng)?;
            let new = passphrase(&cli, "New passphrase: ", "KOLO_NEW_PASSPHRASE", true)?;
            if new.is_empty() {
                bail!("an empty passphrase would leave the profile unprotected");
            }
            opened.profile.change_passphrase(&new, &mut rng)?;
            println!("passphrase changed");
        }
        Cmd::Duress => {
            let dir = home(&cli)?;
            let pass = passphrase(&cli, "Passphrase: ", "KOLO_PASSPHRASE", false)?;
            let same = {
                let pass = pass.clone();
                move |other: &str| other == pass.as_str()
            };
            let (_lock, mut opened) = open_offline(&dir, pass, &mut rng)?;
            let duress = passphrase(&cli, "Duress passphrase: ", "KOLO_DURESS_PASSPHRASE", true)?;
            if duress.is_empty() || same(&duress) {
                bail!("the duress passphrase must be non-empty and differ from the real one");
            }
            let name = opened.display_name.clone();
            opened.profile.set_duress(&duress, &name, &mut rng)?;
            println!("duress passphrase set; entering it will destroy this profile and open an empty one");
        }
        Cmd::Panic { yes } => {
            let dir = home(&cli)?;
            if !dir.join(store::HEADER_FILE).exists() {
                bail!("no kolo profile in {}", dir.display());
            }
            if !yes {
                if !std::io::stdin().is_terminal() {
                    bail!("refusing to destroy the profile without --yes (stdin is not a terminal)");
                }
                print!("Destroy the profile in {} for good? Type yes: ", dir.display());
                std::io::stdout().flush()?;
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if answer.trim() != "yes" {
                    bail!("not confirmed; nothing destroyed");
                }
            }
            crate::daemon::stop_and_destroy(&dir)?;
        }
        Cmd::Daemon(NodeArgs { listen, mdns, name, transport })
        | Cmd::Chat(NodeArgs { listen, mdns, name, transport }) => {
            let dir = home(&cli)?;
            // A node already runs for this profile (`kolo daemon`): the
            // chat attaches to it instead of refusing.
            if matches!(command, Cmd::Chat(_)) {
                let endpoint = api::Endpoint::for_profile(&dir, cli.ephemeral);
                if api::Client::connect(&endpoint, &dir).is_ok() {
                    if !std::io::stdout().is_terminal() {
                        bail!("the chat needs a terminal; use the subcommands in scripts");
                    }
                    let attached =
                        api::attach(&endpoint, &dir).map_err(|e| anyhow::anyhow!(clean_line(&e.to_string())))?;
                    return crate::daemon::attach(&dir, attached, cli.ephemeral);
                }
            }
            // Say so before asking for a passphrase that cannot open anything.
            if !cli.ephemeral && !dir.join(store::HEADER_FILE).exists() {
                bail!(
                    "no kolo profile in {}; create one with `kolo init --name NAME` (or try `kolo demo`)",
                    dir.display()
                );
            }
            let frontend = if matches!(command, Cmd::Chat(_)) {
                if !std::io::stdout().is_terminal() {
                    bail!("the chat needs a terminal; use `kolo daemon` and the subcommands in scripts");
                }
                crate::daemon::Frontend::Terminal
            } else {
                crate::daemon::Frontend::Headless
            };
            if cli.ephemeral {
                let name = name.as_deref().context("--ephemeral needs --name NAME (there is no profile)")?;
                kolo::circle::check_name(name, "name").map_err(|e| anyhow::anyhow!(clean_line(&e.to_string())))?;
                crate::daemon::run(
                    &dir,
                    crate::daemon::Source::Ephemeral { name },
                    listen,
                    *mdns,
                    transport,
                    frontend,
                )?;
            } else {
                let pass = passphrase(&cli, "Passphrase: ", "KOLO_PASSPHRASE", false)?;
                crate::daemon::run(
                    &dir,
                    crate::daemon::Source::Disk { passphrase: pass },
                    listen,
                    *mdns,
                    transport,
                    frontend,
                )?;
            }
        }
        other => client(&cli, other)?,
    }
    Ok(())
}

/// Open the profile for a command that changes its header (`passphrase`,
/// `duress`): the passphrase is verified first (nothing touched before),
/// a running node makes it refuse (it would keep the old header in
/// memory), and the lock is held until the command is done. The duress
/// passphrase here does what it does everywhere.
fn open_offline(
    dir: &std::path::Path,
    pass: Zeroizing<String>,
    rng: &mut OsEntropy,
) -> anyhow::Result<(std::fs::File, store::Opened)> {
    let access = store::unlock(dir, &pass)?;
    if let store::Access::Real(_) = access
        && crate::daemon::try_lock(dir)?.is_none()
    {
        bail!("a kolo node is running for the profile in {}; stop it first with `kolo stop`", dir.display());
    }
    crate::daemon::open_access(dir, access, pass, rng)
}

/// Where a subcommand's requests go: the running node's control socket,
/// or, for the commands that only read, the profile opened here when no
/// node runs (no network starts; the lock is held until the answer).
enum Backend {
    Socket(api::Client),
    ReadOnly { node: Box<kolo::node::Node>, _lock: std::fs::File },
}

impl Backend {
    fn call_as<T: serde::de::DeserializeOwned>(&mut self, request: &Request) -> Result<T, api::ApiError> {
        match self {
            Backend::Socket(client) => client.call_as(request),
            Backend::ReadOnly { node, .. } => {
                let answer = node
                    .answer_read_only(request.clone())
                    .map_err(|f| api::ApiError::Rpc { code: f.code.code(), message: f.message })?;
                let value = serde_json::to_value(&answer).map_err(|e| api::ApiError::Protocol(e.to_string()))?;
                serde_json::from_value(value).map_err(|e| api::ApiError::Protocol(e.to_string()))
            }
        }
    }
}

/// `kolo circles`, `messages`, `members` and `status` read the profile
/// themselves when no node runs (they used to ask for a daemon, which
/// would listen on the network just to answer).
fn reads_only(command: &Cmd) -> bool {
    matches!(command, Cmd::Circles { .. } | Cmd::Messages { .. } | Cmd::Members { .. } | Cmd::Status { .. })
}

fn open_read_only(cli: &Cli, dir: &std::path::Path) -> anyhow::Result<Backend> {
    if !dir.join(store::HEADER_FILE).exists() {
        bail!("no kolo profile in {}; create one with `kolo init --name NAME`", dir.display());
    }
    let pass = passphrase(cli, "Passphrase: ", "KOLO_PASSPHRASE", false)?;
    let (lock, opened) = open_offline(dir, pass, &mut OsEntropy)?;
    let config = kolo::node::NodeConfig {
        listen: Vec::new(),
        mdns: false,
        announce: Vec::new(),
        engine: kolo::engine::EngineConfig::default(),
        transport: kolo::node::Transport::Direct,
    };
    let engine =
        kolo::engine::Engine::restore(opened.identity, opened.display_name, config.engine.clone(), opened.circles)?;
    Ok(Backend::ReadOnly { node: Box::new(kolo::node::Node::new(engine, opened.profile, config)), _lock: lock })
}

/// Subcommands that talk to the running node over the control socket.
/// Everything they print that came from outside (texts, names, circle
/// names, announcement fields, reasons) goes through `safe_text` first.
fn client(cli: &Cli, command: &Cmd) -> anyhow::Result<()> {
    let dir = home(cli)?;
    let endpoint = api::Endpoint::for_profile(&dir, cli.ephemeral);
    let fail = |e: api::ApiError| anyhow::anyhow!(clean_line(&e.to_string()));
    let mut client = match api::Client::open(&endpoint, &dir) {
        Ok(client) => Backend::Socket(client),
        Err(api::ApiError::NotRunning(_)) if reads_only(command) && !cli.ephemeral => open_read_only(cli, &dir)?,
        Err(e) => return Err(fail(e)),
    };
    // Each request's answer, as the type that request gives.
    macro_rules! call {
        ($t:ty, $request:expr) => {
            client.call_as::<$t>(&$request).map_err(fail)
        };
    }
    let offset = kolo::ui::runtime::local_offset_secs();
    match command {
        Cmd::Circle { action: CircleCmd::Create { name, disappear } } => {
            let v = call!(
                api::CircleCreated,
                Request::CircleCreate { name: name.clone(), disappear_secs: secs32(disappear)? }
            )?;
            println!("created circle {} ({})", clean_line(&v.name), short(&v.id));
        }
        Cmd::Circles { json } => {
            for c in call!(Vec<api::CircleInfo>, Request::Circles)? {
                if *json {
                    println!("{}", json_line(&c));
                } else {
                    let timer = match c.disappear_secs {
                        Some(s) => {
                            format!("  messages disappear after {}", kolo::ui::model::duration_label(u64::from(s)))
                        }
                        None => String::new(),
                    };
                    println!(
                        "{}  {}  {} members  {}{timer}",
                        short(&c.id),
                        clean_line(&c.name),
                        c.members,
                        c.role.map_or("removed", api::Role::label)
                    );
                }
            }
        }
        Cmd::Invite { circle, revoke: Some(code), .. } => {
            call!(api::Revoked, Request::RevokeInvite { circle: circle.clone(), code: code.clone() })?;
            println!("invite revoked: nobody can join with that code");
        }
        Cmd::Invite { circle, expires, organiser, qr, revoke: None } => {
            let v = call!(
                api::InviteCreated,
                Request::Invite {
                    circle: circle.clone(),
                    expires_secs: Some(positive_secs(expires, "--expires")?),
                    organiser: Some(*organiser),
                }
            )?;
            let code = v.code.as_str();
            // The code alone on stdout, for scripts; the note for people.
            println!("{code}");
            {
                let at = v.expires_at;
                let left = at.saturating_sub(now_ms()) / 1000;
                eprintln!(
                    "valid once, until {} ({} from now)",
                    kolo::ui::view::date_time(at, offset),
                    kolo::ui::model::duration_label(left)
                );
            }
            if *qr {
                // The smaller upper-case symbol the TUI shows (codes ignore case).
                for line in kolo::ui::model::qr_lines(code) {
                    println!("{line}");
                }
            }
        }
        Cmd::Join { code } => {
            let v = call!(api::Joined, Request::Join { code: code.clone() })?;
            println!("joined {}", clean_line(&v.name));
        }
        Cmd::Send { circle, text, disappear } => {
            // The engine checks again; checking here also covers texts too
            // long for a control-socket request.
            check_len("the message", text, MAX_TEXT).map_err(anyhow::Error::msg)?;
            let request =
                Request::Send { circle: circle.clone(), text: text.clone(), disappear_secs: secs32(disappear)? };
            report_sent(&call!(api::Sent, request)?);
        }
        Cmd::Announce { circle, title, when, place, details, supersedes, disappear } => {
            check_len("the title", title, MAX_TITLE).map_err(anyhow::Error::msg)?;
            for (what, f) in [("\"--when\"", when), ("\"--where\"", place)] {
                check_len(what, f.as_deref().unwrap_or(""), MAX_FIELD).map_err(anyhow::Error::msg)?;
            }
            check_len("the details", details.as_deref().unwrap_or(""), MAX_TEXT).map_err(anyhow::Error::msg)?;
            let request = Request::Announce {
                circle: circle.clone(),
                title: title.clone(),
                when: when.clone(),
                place: place.clone(),
                details: details.clone(),
                supersedes: supersedes.clone(),
                disappear_secs: secs32(disappear)?,
            };
            report_sent(&call!(api::Sent, request)?);
        }
        Cmd::Messages { circle, json } => {
            for m in call!(Vec<api::Message>, Request::Messages { circle: circle.clone() })? {
                if *json {
                    println!("{}", json_line(&m));
                } else {
                    println!("{}", message_line(&m, offset));
                }
            }
        }
        Cmd::Members { circle, json } => {
            for m in call!(Vec<api::Member>, Request::Members { circle: circle.clone() })? {
                if *json {
                    println!("{}", json_line(&m));
                } else {
                    let link = if m.you { "(you)" } else { link_label(m.link) };
                    println!(
                        "{}  {}  {}  {}{}",
                        clean_line(&m.fingerprint),
                        clean_line(&m.name),
                        m.role.label(),
                        link,
                        match (m.verified, m.looks_like.as_deref()) {
                            (_, Some(other)) => format!("  ⚠ name looks like {}'s", clean_line(other)),
                            (true, None) => "  verified".to_owned(),
                            (false, None) => String::new(),
                        }
                    );
                }
            }
        }
        Cmd::Rename { circle, name } => {
            call!(api::Renamed, Request::Rename { circle: circle.clone(), name: name.clone() })?;
            println!("renamed; every member will see the change");
        }
        Cmd::Remove { circle, member } => {
            let v = call!(api::Removed, Request::Remove { circle: circle.clone(), member: member.clone() })?;
            println!("removed {}; every remaining member is replacing its keys", clean_line(&v.removed));
        }
        Cmd::Leave { circle, force } => {
            let v = call!(api::Left, Request::Leave { circle: circle.clone(), force: Some(*force) })?;
            let left = clean_line(v.left.as_deref().unwrap_or_default());
            println!("you left {left}; the other members are told and replace their keys");
        }
        Cmd::Ack { circle, message } => {
            let v = call!(api::Acknowledged, Request::Ack { circle: circle.clone(), message: message.clone() })?;
            let title = clean_line(v.title.as_deref().unwrap_or_default());
            println!("acknowledged \"{title}\": the circle sees that you read it");
        }
        Cmd::Disappear { circle, timer } => {
            let secs = if timer.eq_ignore_ascii_case("off") { 0 } else { positive_secs(timer, "the timer")? };
            let secs = u32::try_from(secs).context("duration too long")?;
            call!(api::DisappearSet, Request::SetDisappear { circle: circle.clone(), secs })?;
            if secs == 0 {
                println!("messages in {} no longer disappear by default", clean_line(circle));
            } else {
                println!(
                    "messages in {} now disappear after {} at most",
                    clean_line(circle),
                    kolo::ui::model::duration_label(u64::from(secs))
                );
            }
        }
        Cmd::Verify { circle, member, confirm } => {
            let request = Request::Verify { circle: circle.clone(), member: member.clone(), confirm: Some(*confirm) };
            let v = call!(api::Verification, request)?;
            println!("your safety number:  {}", clean_line(&v.you));
            println!("their safety number: {}", clean_line(&v.them));
            if *confirm {
                println!("marked verified");
            } else {
                println!("compare both in person; if they match, run again with --confirm");
            }
        }
        Cmd::Status { json } => {
            let v = call!(api::Status, Request::Status)?;
            if *json {
                println!("{}", json_line(&v));
            } else {
                println!("{} ({})", clean_line(&v.name), clean_line(&v.fingerprint));
                for c in &v.circles {
                    let name = clean_line(c.name.as_deref().unwrap_or_default());
                    println!("  {}  {name}  {} peers", short(&c.id), c.peers);
                }
            }
        }
        Cmd::Stop => {
            call!(api::Stopping, Request::Shutdown)?;
            drop(client);
            wait_for_exit(&dir, &endpoint)?;
            println!("stopped");
        }
        Cmd::Demo { .. }
        | Cmd::Init { .. }
        | Cmd::Passphrase
        | Cmd::Duress
        | Cmd::Panic { .. }
        | Cmd::Chat(_)
        | Cmd::Daemon(_) => {}
    }
    Ok(())
}

/// How long `kolo stop` waits for the node to exit.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// After `shutdown` was answered: wait until the node has exited, that is
/// released the profile lock (an ephemeral node: closed its socket).
fn wait_for_exit(dir: &std::path::Path, endpoint: &api::Endpoint) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + STOP_WAIT;
    loop {
        let gone = match endpoint {
            api::Endpoint::File(_) => {
                match std::fs::OpenOptions::new().write(true).open(dir.join(crate::daemon::LOCK_FILE)) {
                    // Taken and released at once: nobody holds the profile now.
                    Ok(file) => file.try_lock().is_ok(),
                    Err(_) => true,
                }
            }
            api::Endpoint::Abstract(_) => {
                matches!(api::call_endpoint(endpoint, dir, &Request::Status), Err(api::ApiError::NotRunning(_)))
            }
        };
        if gone {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("kolo was asked to stop but is still running after {} s", STOP_WAIT.as_secs());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn short(id: &str) -> String {
    clean_line(id).chars().take(8).collect()
}

fn link_label(link: api::Link) -> &'static str {
    match link {
        api::Link::You => "you",
        api::Link::Direct => "direct",
        api::Link::Relayed => "relayed",
        api::Link::Tor => "tor",
        api::Link::Offline => "offline",
    }
}

/// One `--json` record: a line of JSON (one object per line, see
/// docs/api.md) in which every character a terminal could act on (C1
/// controls, DEL, bidirectional controls; JSON escapes C0 already) is
/// written as a `\uXXXX` escape: the same data for a parser, inert on a screen.
fn json_line<T: serde::Serialize>(v: &T) -> String {
    let text = api::to_json(v);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if kolo::ui::safe_text::is_unsafe(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// `2026-11-23 09:00  3f9c1a2b  Ana✓: text  ⏳ until 2026-11-23 10:00`;
/// lines after the first of a multi-line text are indented, so no text
/// can begin a line of its own and pass for another message.
fn message_line(m: &api::Message, offset: i64) -> String {
    let mark = if m.verified == Some(true) { "✓" } else { "" };
    let text = match &m.body {
        api::Body::Announcement { title, when, place, details, .. } => {
            let parts: Vec<String> =
                [title, when, place].iter().map(|p| clean_line(p)).filter(|p| !p.is_empty()).collect();
            let details = clean(details);
            if details.is_empty() {
                format!("📌 {}", parts.join(" | "))
            } else {
                format!("📌 {} | {details}", parts.join(" | "))
            }
        }
        api::Body::System => format!("— {}", clean(&m.text)),
        api::Body::Text => clean(&m.text),
    };
    let at = kolo::ui::view::date_time(m.sent_at, offset);
    let timer = match m.expires_at {
        Some(e) => format!("  ⏳ until {}", kolo::ui::view::date_time(e, offset)),
        None => String::new(),
    };
    let head = if m.body == api::Body::System {
        format!("{at}  {}  ", short(&m.id))
    } else {
        format!("{at}  {}  {}{mark}: ", short(&m.id), clean_line(&m.sender))
    };
    let body = text.replace('\n', "\n    ");
    format!("{head}{body}{timer}")
}

fn report_sent(v: &api::Sent) {
    match &v.queued {
        Some(reason) => println!("queued: {}", clean_line(reason)),
        None => println!("sent {}", short(v.id.as_deref().unwrap_or_default())),
    }
}
