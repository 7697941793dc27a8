//! Process hardening at start (before any secret is read): what a crash,
//! a core dump, another user or `/proc` could otherwise take from a kolo
//! process. See docs/threat-model.md, "Device seizure".
//!
//! * files are created owner-only (umask 077);
//! * no core dump: `RLIMIT_CORE = 0` and `PR_SET_DUMPABLE = 0` (which also
//!   keeps other processes of the same user from attaching to it or reading
//!   its `/proc/PID/mem` and `/proc/PID/environ`);
//! * memory locked (`mlockall`, on fault) where the memory-lock limit
//!   allows it, so keys and plaintext are not written to swap; a warning
//!   otherwise;
//! * the passphrase variables are taken out of the environment: their
//!   values are kept for [`env_secret`] and their bytes in the process's
//!   initial environment block (what `/proc/PID/environ` shows, and what a
//!   dump would hold) are overwritten with zeros.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Mutex;

use zeroize::Zeroizing;

/// The variables that may carry a passphrase.
pub const SECRET_VARS: &[&str] = &["KOLO_PASSPHRASE", "KOLO_NEW_PASSPHRASE", "KOLO_DURESS_PASSPHRASE"];

/// Values taken from the environment at start, handed out once each.
static SECRETS: Mutex<Vec<(&'static str, Zeroizing<String>)>> = Mutex::new(Vec::new());

/// The value `name` had in the environment at start (once: it is handed
/// over, not copied).
pub fn env_secret(name: &str) -> Option<Zeroizing<String>> {
    let mut secrets = SECRETS.lock().ok()?;
    let i = secrets.iter().position(|(n, _)| *n == name)?;
    Some(secrets.swap_remove(i).1)
}

/// Everything above; returns warnings for what the system did not allow.
/// Call first thing in `main`, while the process has one thread.
pub fn at_start() -> Vec<String> {
    let mut warnings = Vec::new();
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    // First: once non-dumpable, `/proc/self/mem` belongs to root and a
    // process run by an ordinary user could no longer write its own.
    take_env_secrets(&mut warnings);
    if let Err(e) = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0) {
        warnings.push(format!("could not forbid core dumps (RLIMIT_CORE): {e}"));
    }
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        warnings.push(format!("could not make the process non-dumpable: {e}"));
    }
    warnings
}

/// Lock the process's memory so it is never swapped out: only when the
/// memory-lock limit is (or can be raised to) unlimited, since a locked
/// process whose limit is reached cannot allocate any more. For the
/// commands that hold keys (the node, init, passphrase, duress).
pub fn lock_memory() -> Option<String> {
    use nix::sys::mman::{MlockAllFlags, mlockall};
    use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
    let unlimited = setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY).is_ok()
        || getrlimit(Resource::RLIMIT_MEMLOCK).is_ok_and(|(soft, _)| soft == RLIM_INFINITY);
    if !unlimited {
        return Some(
            "memory is not locked (the memory-lock limit is too low): keys may reach swap; disable or encrypt swap"
                .into(),
        );
    }
    // On fault: pages are locked as they are used, not all at once.
    let flags = MlockAllFlags::MCL_CURRENT
        | MlockAllFlags::MCL_FUTURE
        | MlockAllFlags::from_bits_retain(nix::libc::MCL_ONFAULT);
    match mlockall(flags) {
        Ok(()) => None,
        Err(e) => Some(format!("memory is not locked ({e}): keys may reach swap; disable or encrypt swap")),
    }
}

fn take_env_secrets(warnings: &mut Vec<String>) {
    let mut taken = Vec::new();
    for name in SECRET_VARS {
        if let Some(value) = std::env::var_os(name) {
            let value = Zeroizing::new(value.to_string_lossy().into_owned());
            taken.push((*name, value));
        }
    }
    if taken.is_empty() {
        return;
    }
    if let Ok(mut secrets) = SECRETS.lock() {
        secrets.extend(taken);
    }
    if let Err(e) = wipe_initial_environment() {
        warnings.push(format!("could not wipe the passphrase from the process environment: {e}"));
    }
}

/// Overwrite, with zeros, every `NAME=value` entry of [`SECRET_VARS`] in
/// the initial environment block (the kernel's `env_start..env_end` of
/// this process, which `/proc/PID/environ` reads). Done through
/// `/proc/self/mem`, because `std::env::remove_var` is `unsafe` (the crate
/// forbids unsafe code) and would not clear these bytes anyway: it only
/// drops the pointer. The zeroed entries read as empty strings, which the
/// C library and Rust's `std::env` skip.
fn wipe_initial_environment() -> std::io::Result<()> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let bad = || std::io::Error::other("unexpected /proc/self/stat");
    // Fields after the command name (which may hold spaces): field 3 on.
    let rest = stat.rsplit_once(')').ok_or_else(bad)?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> std::io::Result<u64> { fields.get(n - 3).and_then(|f| f.parse().ok()).ok_or_else(bad) };
    let (start, end) = (field(50)?, field(51)?);
    if end <= start || end - start > 16 * 1024 * 1024 {
        return Err(bad());
    }
    let mut mem = std::fs::OpenOptions::new().read(true).write(true).open("/proc/self/mem")?;
    let mut block = Zeroizing::new(vec![0u8; (end - start) as usize]);
    mem.seek(SeekFrom::Start(start))?;
    mem.read_exact(&mut block)?;
    let mut offset = 0;
    let mut changed = false;
    while offset < block.len() {
        let len = block[offset..].iter().position(|&b| b == 0).unwrap_or(block.len() - offset);
        let entry = &block[offset..offset + len];
        if SECRET_VARS
            .iter()
            .any(|v| entry.len() > v.len() && entry.starts_with(v.as_bytes()) && entry[v.len()] == b'=')
        {
            block[offset..offset + len].fill(0);
            changed = true;
        }
        offset += len + 1;
    }
    if changed {
        mem.seek(SeekFrom::Start(start))?;
        mem.write_all(&block)?;
    }
    Ok(())
}
