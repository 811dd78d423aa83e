//! A real PostgreSQL from Debian's `postgresql` package, in a scratch
//! directory on a free loopback port, as an unprivileged user (PostgreSQL
//! refuses root). Stopped on drop, so a failing test stops it too. One
//! server per test, a database per scenario (`create_database`).

use super::{free_port, Scratch};
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
        // PostgreSQL cannot bind port 0: another test may take the free port
        // before it binds it (tests run side by side), then a new port.
        for _ in 1..5 {
            match pg.try_start() {
                Err(log) if log.contains("could not bind") || log.contains("Address already in use") => {
                    pg.port = free_port()
                }
                _ => break,
            }
        }
        if !pg.running {
            pg.start_again();
        }
        pg
    }

    /// Starts the server (again, after `stop`), waiting until it accepts
    /// connections.
    pub fn start_again(&mut self) {
        if let Err(log) = self.try_start() {
            panic!("pg_ctl start failed:\n{log}");
        }
    }

    /// `pg_ctl start`; on failure the server's log.
    fn try_start(&mut self) -> Result<(), String> {
        let data = self.data.display().to_string();
        let log = self.scratch.0.join("server.log");
        let _ = std::fs::remove_file(&log);
        let opts = format!("-p {} -h 127.0.0.1 -k {} -F -c max_connections=60", self.port, self.scratch.0.display());
        let out = self
            .command("pg_ctl")
            .args(["-D", &data, "-l", &log.display().to_string(), "-o", &opts, "-w", "-t", "120", "start"])
            .current_dir(Path::new("/"))
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if out.status.success() {
            self.running = true;
            return Ok(());
        }
        Err(format!(
            "{}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        ))
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

    /// Everything in `database` as `pg_dump` writes it (plain SQL).
    pub fn dump(&self, database: &str) -> Vec<u8> {
        let port = self.port.to_string();
        let out = self
            .command("pg_dump")
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "--data-only", database])
            .current_dir(Path::new("/"))
            .output()
            .expect("pg_dump");
        assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
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

impl Postgres {
    /// A fresh database, to keep scenarios sharing one server apart.
    pub async fn create_database(&self, database: &str) -> String {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.url()).await.expect("connect to postgres");
        // A name chosen by the test, not input: CREATE DATABASE takes no parameters.
        sqlx::query(&format!("CREATE DATABASE {database}")).execute(&pool).await.expect("create database");
        pool.close().await;
        self.url_of(database)
    }
}
