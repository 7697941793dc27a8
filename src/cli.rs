//! Command-line parsing and the profile-level commands (init, passphrase,
//! duress, panic, demo). Passphrases come from `--passphrase-file`,
//! `KOLO_PASSPHRASE`, or a prompt that does not echo.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use zeroize::Zeroizing;

use kolo::entropy::OsEntropy;
use kolo::store::{self, KdfParams, Profile};

#[derive(Parser)]
#[command(
    name = "kolo",
    version,
    about = "Peer-to-peer, end-to-end encrypted group chat for activist circles"
)]
pub struct Cli {
    /// Profile directory (default: the XDG data directory, e.g. ~/.local/share/kolo).
    #[arg(long, global = true, env = "KOLO_HOME")]
    home: Option<PathBuf>,
    /// Read the passphrase from this file (first line) instead of prompting.
    #[arg(long, global = true)]
    passphrase_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
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
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn home(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(h) = &cli.home {
        return Ok(h.clone());
    }
    dirs::data_dir()
        .map(|d| d.join("kolo"))
        .context("no data directory on this system; pass --home DIR")
}

/// The passphrase: file, then environment, then a prompt on the terminal.
fn passphrase(
    cli: &Cli,
    prompt: &str,
    env: &str,
    confirm: bool,
) -> anyhow::Result<Zeroizing<String>> {
    if let Some(f) = &cli.passphrase_file
        && env == "KOLO_PASSPHRASE"
    {
        let text = Zeroizing::new(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read passphrase file {}", f.display()))?,
        );
        return Ok(Zeroizing::new(
            text.lines().next().unwrap_or_default().to_owned(),
        ));
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
    let Some(command) = &cli.command else {
        use clap::CommandFactory;
        Cli::command().print_help()?;
        return Ok(());
    };
    let mut rng = OsEntropy;
    match command {
        Cmd::Demo { .. } => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            kolo::demo::run_transcript(&mut lock)?;
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
            println!(
                "duress passphrase set; entering it will destroy this profile and open an empty one"
            );
        }
        Cmd::Panic { yes } => {
            let dir = home(&cli)?;
            if !dir.join(store::HEADER_FILE).exists() {
                bail!("no kolo profile in {}", dir.display());
            }
            if !yes {
                if !std::io::stdin().is_terminal() {
                    bail!(
                        "refusing to destroy the profile without --yes (stdin is not a terminal)"
                    );
                }
                print!(
                    "Destroy the profile in {} for good? Type yes: ",
                    dir.display()
                );
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
    }
    Ok(())
}
