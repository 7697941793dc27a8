//! An echo bot over the control socket: connects to a running daemon,
//! subscribes to its events and answers every text message another member
//! writes with `echo: ` and the same text, in the same circle.
//!
//! ```sh
//! kolo daemon &                       # the profile in $KOLO_HOME
//! cargo run --example echo_bot        # or: -- --home DIR, -- --ephemeral
//! ```
//!
//! The logic is `kolo::api::echo::run` (tests/daemons.rs drives it against
//! a real daemon); this file only finds the socket and prints what it does.

use std::path::PathBuf;

use kolo::api::{self, echo};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut home = std::env::var_os("KOLO_HOME").map(PathBuf::from);
    let mut ephemeral = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--home" => home = args.next().map(PathBuf::from),
            "--ephemeral" => ephemeral = true,
            other => return Err(format!("unknown argument {other:?} (use --home DIR, --ephemeral)").into()),
        }
    }
    let home = match home {
        Some(h) => h,
        None => dirs::data_dir().map(|d| d.join("kolo")).ok_or("no data directory; pass --home DIR")?,
    };
    let endpoint = api::Endpoint::for_profile(&home, ephemeral);
    let mut client = api::Client::open(&endpoint, &home)?;
    println!("echo bot connected to the node of {}; Ctrl-C stops it", home.display());
    let report = echo::run(&mut client, echo::Limits::default(), |circle, sent| {
        let id = sent.id.as_deref().unwrap_or("?");
        println!("echoed in circle {} (message {})", &circle[..circle.len().min(8)], &id[..id.len().min(8)]);
    })?;
    println!("the node stopped; {} echoes, {} refused, {} events missed", report.echoes, report.refused, report.missed);
    Ok(())
}
