//! Command-line parsing and the profile-level commands (init, passphrase,
//! duress, panic, demo). Passphrases come from `--passphrase-file`,
//! `KOLO_PASSPHRASE`, or a prompt that does not echo.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use zeroize::Zeroizing;

use kolo::api::{self, Request};
use kolo::entropy::OsEntropy;
use kolo::store::{self, KdfParams, Profile};

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
    #[command(subcommand)]
    command: Option<Cmd>,
}

/// Where a circle network listens by default: every interface, any port.
const DEFAULT_LISTEN: &str = "/ip4/0.0.0.0/tcp/0";

/// How the node runs, for `kolo chat` and `kolo daemon` alike.
#[derive(clap::Args)]
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
    /// Stop the running node.
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

fn secs32(text: &Option<String>) -> anyhow::Result<Option<u32>> {
    match text {
        None => Ok(None),
        Some(t) => Ok(Some(u32::try_from(parse_duration(t)?).context("duration too long")?)),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn home(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(h) = &cli.home {
        return Ok(h.clone());
    }
    dirs::data_dir().map(|d| d.join("kolo")).context("no data directory on this system; pass --home DIR")
}

/// The passphrase: file, then environment, then a prompt on the terminal.
fn passphrase(cli: &Cli, prompt: &str, env: &str, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
    if let Some(f) = &cli.passphrase_file
        && env == "KOLO_PASSPHRASE"
    {
        let text = Zeroizing::new(
            std::fs::read_to_string(f).with_context(|| format!("cannot read passphrase file {}", f.display()))?,
        );
        return Ok(Zeroizing::new(text.lines().next().unwrap_or_default().to_owned()));
    }
    if let Ok(p) = std::env::var(env) {
        return Ok(Zeroizing::new(p));
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
    let chat = Cmd::Chat(NodeArgs::default());
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
            let mut opened = Profile::open(&dir, &pass, now_ms(), &mut rng)?;
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
            let mut opened = Profile::open(&dir, &pass, now_ms(), &mut rng)?;
            let duress = passphrase(&cli, "Duress passphrase: ", "KOLO_DURESS_PASSPHRASE", true)?;
            if duress.is_empty() || *duress == *pass {
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
            store::destroy(&dir)?;
            println!("profile destroyed");
        }
        Cmd::Daemon(NodeArgs { listen, mdns, name, transport })
        | Cmd::Chat(NodeArgs { listen, mdns, name, transport }) => {
            let dir = home(&cli)?;
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
                    crate::daemon::Source::Disk { passphrase: &pass },
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

/// Subcommands that talk to the running node over the control socket.
fn client(cli: &Cli, command: &Cmd) -> anyhow::Result<()> {
    let dir = home(cli)?;
    let endpoint = api::Endpoint::for_profile(&dir, cli.ephemeral);
    let call = |r: Request| api::call_endpoint(&endpoint, &dir, &r).map_err(anyhow::Error::from);
    match command {
        Cmd::Circle { action: CircleCmd::Create { name, disappear } } => {
            let v = call(Request::CircleCreate { name: name.clone(), disappear_secs: secs32(disappear)? })?;
            println!("created circle {} ({})", v["name"].as_str().unwrap_or(""), short(&v["id"]));
        }
        Cmd::Circles { json } => {
            let v = call(Request::Circles)?;
            for c in v.as_array().into_iter().flatten() {
                if *json {
                    println!("{c}");
                } else {
                    println!(
                        "{}  {}  {} members  {}",
                        short(&c["id"]),
                        c["name"].as_str().unwrap_or(""),
                        c["members"],
                        c["role"].as_str().unwrap_or("removed")
                    );
                }
            }
        }
        Cmd::Invite { circle, expires, organiser, qr } => {
            let v = call(Request::Invite {
                circle: circle.clone(),
                expires_secs: Some(parse_duration(expires)?),
                organiser: Some(*organiser),
            })?;
            let code = v["code"].as_str().unwrap_or_default();
            println!("{code}");
            if *qr {
                let qr = qrcode::QrCode::new(code.as_bytes()).context("code too long for a QR code")?;
                println!("{}", qr.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build());
            }
        }
        Cmd::Join { code } => {
            let v = call(Request::Join { code: code.clone() })?;
            println!("joined {}", v["name"].as_str().unwrap_or(""));
        }
        Cmd::Send { circle, text, disappear } => {
            let v =
                call(Request::Send { circle: circle.clone(), text: text.clone(), disappear_secs: secs32(disappear)? })?;
            report_sent(&v);
        }
        Cmd::Announce { circle, title, when, place, details, supersedes, disappear } => {
            let v = call(Request::Announce {
                circle: circle.clone(),
                title: title.clone(),
                when: when.clone(),
                place: place.clone(),
                details: details.clone(),
                supersedes: supersedes.clone(),
                disappear_secs: secs32(disappear)?,
            })?;
            report_sent(&v);
        }
        Cmd::Messages { circle, json } => {
            let v = call(Request::Messages { circle: circle.clone() })?;
            for m in v.as_array().into_iter().flatten() {
                if *json {
                    println!("{m}");
                } else {
                    let mark = if m["verified"].as_bool() == Some(true) { "✓" } else { " " };
                    let text = match m["kind"].as_str() {
                        Some("announcement") => format!(
                            "📌 {} | {} | {} | {}",
                            m["title"].as_str().unwrap_or(""),
                            m["when"].as_str().unwrap_or(""),
                            m["where"].as_str().unwrap_or(""),
                            m["details"].as_str().unwrap_or("")
                        ),
                        Some("system") => format!("— {}", m["text"].as_str().unwrap_or("")),
                        _ => m["text"].as_str().unwrap_or("").to_owned(),
                    };
                    println!("{} {}{}: {}", short(&m["id"]), m["sender"].as_str().unwrap_or(""), mark, text);
                }
            }
        }
        Cmd::Members { circle, json } => {
            let v = call(Request::Members { circle: circle.clone() })?;
            for m in v.as_array().into_iter().flatten() {
                if *json {
                    println!("{m}");
                } else {
                    println!(
                        "{}  {}  {}  {}{}",
                        m["fingerprint"].as_str().unwrap_or(""),
                        m["name"].as_str().unwrap_or(""),
                        m["role"].as_str().unwrap_or(""),
                        m["link"].as_str().unwrap_or(""),
                        if m["verified"].as_bool() == Some(true) { "  verified" } else { "" }
                    );
                }
            }
        }
        Cmd::Remove { circle, member } => {
            let v = call(Request::Remove { circle: circle.clone(), member: member.clone() })?;
            println!("removed {}; every remaining member is replacing its keys", v["removed"].as_str().unwrap_or(""));
        }
        Cmd::Verify { circle, member, confirm } => {
            let v = call(Request::Verify { circle: circle.clone(), member: member.clone(), confirm: Some(*confirm) })?;
            println!("your safety number:  {}", v["you"].as_str().unwrap_or(""));
            println!("their safety number: {}", v["them"].as_str().unwrap_or(""));
            if *confirm {
                println!("marked verified");
            } else {
                println!("compare both in person; if they match, run again with --confirm");
            }
        }
        Cmd::Status { json } => {
            let v = call(Request::Status)?;
            if *json {
                println!("{v}");
            } else {
                println!("{} ({})", v["name"].as_str().unwrap_or(""), v["fingerprint"].as_str().unwrap_or(""));
                for c in v["circles"].as_array().into_iter().flatten() {
                    println!("  {}  {}  {} peers", short(&c["id"]), c["name"].as_str().unwrap_or(""), c["peers"]);
                }
            }
        }
        Cmd::Stop => {
            call(Request::Shutdown)?;
            println!("stopping");
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

fn short(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or("").chars().take(8).collect()
}

fn report_sent(v: &serde_json::Value) {
    match v["queued"].as_str() {
        Some(reason) => println!("queued: {reason}"),
        None => println!("sent {}", short(&v["id"])),
    }
}
