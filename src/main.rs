//! The `kolo` command: parse the command line, open the profile, and hand
//! over to the library. Everything of substance lives in the library.

mod cli;
mod daemon;
mod hardening;

/// Every heap allocation is overwritten with zeros when freed, so that
/// plaintext and keys held in ordinary `String`s and `Vec`s (message views,
/// control-socket requests and replies, network buffers) do not linger in
/// freed memory after their message disappeared. (Memory the C libraries
/// allocate, SQLCipher's, is wiped by SQLCipher's `cipher_memory_security`.)
#[global_allocator]
static ALLOCATOR: zeroizing_alloc::ZeroAlloc<std::alloc::System> = zeroizing_alloc::ZeroAlloc(std::alloc::System);

fn main() {
    let warnings = hardening::at_start();
    for w in &warnings {
        eprintln!("kolo: warning: {w}");
    }
    if let Err(e) = cli::run() {
        // One line, no backtrace, no secrets: errors carry none.
        // Reasons can quote outside text (names, peers' answers): cleaned.
        eprintln!("kolo: {}", kolo::ui::safe_text::clean_line(&format!("{e:#}")));
        std::process::exit(1);
    }
}
