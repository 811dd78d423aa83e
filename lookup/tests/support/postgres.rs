//! A real PostgreSQL from Debian's `postgresql` package, in a scratch
//! directory on a free loopback port, as an unprivileged user (PostgreSQL
//! refuses root). Stopped on drop, so a failing test stops it too.
//! Shared with the root end-to-end tests (`#[path]` in tests/common), so it
//! uses no crate of the lookup service; `create_database` is in `mod.rs`.

use super::Scratch;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The user the server runs as when the tests run as root.
const NOBODY: (&str, u32) = ("nobody", 65534);

pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    running: bool,
    scratch: Scratch,
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    found.sort_by_key(|p| p.to_string_lossy().split('/').nth(4).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0));
    found.pop().expect("PostgreSQL not found under /usr/lib/postgresql: `make test` installs the postgresql package")
}

fn as_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

impl Postgres {
    pub fn start() -> Postgres {
        let scratch = Scratch::new("postgres");
        if as_root() {
            std::os::unix::fs::chown(&scratch.0, Some(NOBODY.1), Some(NOBODY.1)).expect("chown scratch dir");
        }
        let mut pg =
            Postgres { bin: bin_dir(), data: scratch.0.join("data"), port: free_port(), running: false, scratch };
        let data = pg.data.display().to_string();
        pg.run("initdb", &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        pg.start_again();
        pg
    }

    /// Starts the server (again, after `stop`), waiting until it accepts
    /// connections.
    pub fn start_again(&mut self) {
        let data = self.data.display().to_string();
        let log = self.scratch.0.join("server.log").display().to_string();
        let opts = format!("-p {} -h 127.0.0.1 -k {} -F -c max_connections=60", self.port, self.scratch.0.display());
        self.running = true;
        self.run("pg_ctl", &["-D", &data, "-l", &log, "-o", &opts, "-w", "-t", "120", "start"]);
    }

    pub fn stop(&mut self) {
        let data = self.data.display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "-t", "60", "stop"]);
        self.running = false;
    }

    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    pub fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", NOBODY.0, "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self.command(tool).args(args).current_dir(Path::new("/")).output().expect(tool);
        if !out.status.success() {
            let log = std::fs::read_to_string(self.scratch.0.join("server.log")).unwrap_or_default();
            panic!(
                "{tool} {args:?} failed: {}\n{}\n{}\nserver log:\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let data = self.data.display().to_string();
            let _ = self.command("pg_ctl").args(["-D", &data, "-m", "immediate", "-w", "stop"]).output();
        }
    }
}
