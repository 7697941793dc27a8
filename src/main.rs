//! The `kolo` command: parse the command line, open the profile, and hand
//! over to the library. Everything of substance lives in the library.

mod cli;
mod daemon;

fn main() {
    if let Err(e) = cli::run() {
        // One line, no backtrace, no secrets: errors carry none.
        // Reasons can quote outside text (names, peers' answers): cleaned.
        eprintln!("kolo: {}", kolo::ui::safe_text::clean_line(&format!("{e:#}")));
        std::process::exit(1);
    }
}
