//! The one way the tests start other programs: the `messo` binary (a command run to its end, or
//! a daemon) and the peers (SMTP servers, dovecot, chromedriver). A started program is a `Proc`:
//! its output goes to a log file, and it is killed and reaped when dropped, so a failing test
//! leaves nothing running.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

const MESSO: &str = env!("CARGO_BIN_EXE_messo");

/// How often the waits below look again.
const POLL: Duration = Duration::from_millis(20);

/// Drops the test's own `MESSO_*` variables: the program sees only what the test gives it.
fn clean(mut cmd: Command) -> Command {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("MESSO_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// The `messo` binary, run in the checkout (where `config/messo.toml` is).
pub fn messo() -> Command {
    let mut cmd = clean(Command::new(MESSO));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

/// The `messo` binary started by `sh` under umask `mask` (the files it makes must not depend on
/// it).
pub fn messo_under_umask(mask: &str) -> Command {
    let mut cmd = clean(Command::new("sh"));
    cmd.arg("-c")
        .arg(format!("umask {mask} && exec \"$0\" \"$@\""))
        .arg(MESSO)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

/// Runs `cmd` to its end with `input` on its standard input (closed at once without); its
/// output. A writer thread feeds the input, so a long one cannot block on a full output pipe.
pub fn run(cmd: &mut Command, input: Option<&str>) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.unwrap_or_default().as_bytes().to_vec();
    let writer = std::thread::spawn(move || match stdin.write_all(&input) {
        // The program may end without reading all of it: its output says what it did.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    });
    let out = child.wait_with_output().expect("wait for the program");
    writer
        .join()
        .expect("the stdin writer")
        .expect("write stdin");
    out
}

/// A port nothing listens on now (something else may take it before the program binds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Whether something accepts connections on 127.0.0.1:`port`.
pub fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Polls `check` every 50 ms until it gives `Ok`, and returns what it gave; after `timeout` the
/// test fails with its last `Err`.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("after {timeout:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A running program the test started.
pub struct Proc {
    child: Child,
    name: String,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with its standard input closed and its output (stdout and stderr) appended
    /// to `log`.
    pub fn spawn(cmd: &mut Command, log: &Path) -> Proc {
        let name = cmd.get_program().to_string_lossy().into_owned();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        let err = file.try_clone().expect("the log file, twice");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc {
            child,
            name,
            log: log.to_owned(),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// What it has written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its exit status, if it has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits until `ready()` holds. An error, with the log, if the program ends first or
    /// `timeout` passes.
    pub fn try_wait_until(
        &mut self,
        timeout: Duration,
        what: &str,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(());
            }
            if let Some(status) = self.exited() {
                return Err(format!(
                    "{} ended ({status}) before {what}; its log:\n{}",
                    self.name,
                    self.log()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{}: no {what} after {timeout:?}; its log:\n{}",
                    self.name,
                    self.log()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// As `try_wait_until`, failing the test.
    pub fn wait_until(&mut self, timeout: Duration, what: &str, ready: impl FnMut() -> bool) {
        if let Err(e) = self.try_wait_until(timeout, what, ready) {
            panic!("{e}");
        }
    }

    /// SIGTERM, then up to `grace` for it to end; SIGKILL after that. The exit status, or None
    /// when it had to be killed.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(POLL);
        }
        self.kill();
        None
    }

    /// SIGKILL (`kill -9`: no chance to tidy up), and reaped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
