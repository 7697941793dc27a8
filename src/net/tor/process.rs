//! Running kolo's own tor: a torrc kolo writes, its own data directory
//! (inside the profile directory, or a temporary one removed afterwards),
//! the control port on loopback with cookie authentication, a SOCKS port
//! on loopback with per-credential circuit isolation, and no onion keys on
//! disk (they come from the profile through `ADD_ONION`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::process::{Child, Command};

use super::TorError;
use super::control::{Bootstrap, ControlAuth, TorControl};

/// Extra torrc lines (a file) appended to kolo's own: the private test
/// network's authorities and `TestingTorNetwork 1`. Tests set it.
pub const EXTRA_TORRC_ENV: &str = "KOLO_TOR_EXTRA_TORRC";
/// The tor binary to run (default: `tor` on the PATH).
pub const TOR_BIN_ENV: &str = "KOLO_TOR_BIN";

const CONTROL_FILE_WAIT: Duration = Duration::from_secs(60);

pub struct TorConfig {
    /// Tor's data directory (created, mode 0700).
    pub data_dir: PathBuf,
    /// Remove the data directory when tor stops (ephemeral mode).
    pub remove_on_drop: bool,
    /// Extra torrc text (the private test network).
    pub extra_torrc: Option<String>,
    pub bootstrap_timeout: Duration,
}

impl TorConfig {
    /// Takes the extra torrc from [`EXTRA_TORRC_ENV`] if set.
    pub fn new(data_dir: PathBuf, remove_on_drop: bool) -> Result<Self, TorError> {
        let extra_torrc = match std::env::var_os(EXTRA_TORRC_ENV) {
            Some(path) => {
                Some(std::fs::read_to_string(&path).map_err(|e| TorError::Spawn(format!("{EXTRA_TORRC_ENV}: {e}")))?)
            }
            None => None,
        };
        Ok(TorConfig { data_dir, remove_on_drop, extra_torrc, bootstrap_timeout: Duration::from_secs(300) })
    }
}

/// Is a `tor` binary available?
pub fn tor_available() -> bool {
    let bin = std::env::var(TOR_BIN_ENV).unwrap_or_else(|_| "tor".into());
    std::process::Command::new(bin)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A running tor owned by kolo: killed (and its temporary data removed) on drop.
pub struct TorProcess {
    child: Child,
    data_dir: PathBuf,
    remove_on_drop: bool,
    pub control_address: SocketAddr,
    pub socks: SocketAddr,
}

fn torrc(config: &TorConfig) -> String {
    let dir = config.data_dir.display();
    let mut rc = format!(
        "DataDirectory {dir}\n\
         SocksPort 127.0.0.1:auto IsolateSOCKSAuth\n\
         ControlPort 127.0.0.1:auto\n\
         ControlPortWriteToFile {dir}/control-port\n\
         CookieAuthentication 1\n\
         CookieAuthFile {dir}/control_auth_cookie\n\
         __OwningControllerProcess {pid}\n\
         Log notice file {dir}/tor.log\n\
         SafeLogging 1\n",
        pid = std::process::id()
    );
    if let Some(extra) = &config.extra_torrc {
        rc.push_str(extra);
        rc.push('\n');
    }
    rc
}

fn create_private_dir(dir: &Path) -> Result<(), TorError> {
    std::fs::create_dir_all(dir).map_err(|e| TorError::Spawn(format!("tor data directory: {e}")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| TorError::Spawn(format!("tor data directory: {e}")))?;
    }
    Ok(())
}

impl TorProcess {
    /// Start tor and connect to its control port (authenticated). Call
    /// [`TorControl::wait_bootstrapped`] on the returned control next.
    pub async fn start(config: &TorConfig) -> Result<(TorProcess, TorControl), TorError> {
        create_private_dir(&config.data_dir)?;
        let port_file = config.data_dir.join("control-port");
        let _ = std::fs::remove_file(&port_file);
        let rc_path = config.data_dir.join("torrc");
        std::fs::write(&rc_path, torrc(config)).map_err(|e| TorError::Spawn(format!("torrc: {e}")))?;
        // No system-wide defaults (/etc/tor/torrc-defaults): only ours.
        let defaults = config.data_dir.join("torrc-defaults");
        std::fs::write(&defaults, "").map_err(|e| TorError::Spawn(format!("torrc: {e}")))?;
        let bin = std::env::var(TOR_BIN_ENV).unwrap_or_else(|_| "tor".into());
        let child = Command::new(bin)
            .arg("-f")
            .arg(&rc_path)
            .arg("--defaults-torrc")
            .arg(&defaults)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| TorError::Spawn(format!("cannot run tor: {e}")))?;
        let mut process = TorProcess {
            child,
            data_dir: config.data_dir.clone(),
            remove_on_drop: config.remove_on_drop,
            control_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            socks: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let deadline = Instant::now() + CONTROL_FILE_WAIT;
        let control_address = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let Some(address) = text.lines().find_map(|l| l.strip_prefix("PORT="))
                && let Ok(address) = address.trim().parse::<SocketAddr>()
            {
                break address;
            }
            if let Ok(Some(status)) = process.child.try_wait() {
                return Err(TorError::Spawn(format!(
                    "tor exited ({status}); see {}/tor.log",
                    config.data_dir.display()
                )));
            }
            if Instant::now() > deadline {
                return Err(TorError::Spawn("tor did not open its control port".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if !control_address.ip().is_loopback() {
            return Err(TorError::Spawn("tor's control port is not on loopback".into()));
        }
        process.control_address = control_address;
        let cookie = config.data_dir.join("control_auth_cookie");
        let mut control = TorControl::connect(control_address, &ControlAuth::Cookie(Some(cookie))).await?;
        // Tor exits when the control connection that owns it closes.
        control.command("TAKEOWNERSHIP").await?;
        control.command("RESETCONF __OwningControllerProcess").await?;
        process.socks = control.socks_address().await?;
        Ok((process, control))
    }

    /// Start and wait for bootstrap, reporting progress.
    pub async fn start_bootstrapped(
        config: &TorConfig,
        progress: impl FnMut(&Bootstrap),
    ) -> Result<(TorProcess, TorControl), TorError> {
        let (process, mut control) = Self::start(config).await?;
        control.wait_bootstrapped(config.bootstrap_timeout, progress).await?;
        Ok((process, control))
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

impl Drop for TorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.remove_on_drop {
            // Tor may still hold files open for a moment; removal of what
            // can be removed is the best we can do without blocking.
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torrc_keeps_everything_on_loopback_and_appends_extra() {
        let config = TorConfig {
            data_dir: PathBuf::from("/tmp/x"),
            remove_on_drop: true,
            extra_torrc: Some("TestingTorNetwork 1".into()),
            bootstrap_timeout: Duration::from_secs(1),
        };
        let rc = torrc(&config);
        assert!(rc.contains("SocksPort 127.0.0.1:auto IsolateSOCKSAuth"));
        assert!(rc.contains("ControlPort 127.0.0.1:auto"));
        assert!(rc.contains("CookieAuthentication 1"));
        assert!(!rc.contains("HiddenServiceDir"));
        assert!(rc.trim_end().ends_with("TestingTorNetwork 1"));
    }
}
