//! The `kolo` command: parse the command line and hand over to the
//! library. Everything of substance lives in the library crate.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kolo",
    version,
    about = "Peer-to-peer, end-to-end encrypted group chat for activist circles"
)]
struct Cli {
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Demo { .. }) => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            kolo::demo::run_transcript(&mut lock)?;
        }
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
        }
    }
    Ok(())
}
