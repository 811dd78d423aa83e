//! The real `cname-guard-lookup serve` as a child process: started on free
//! ports (read from its `listening on` lines), killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const LOOKUP: &str = env!("CARGO_BIN_EXE_cname-guard-lookup");
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct Lookup {
    child: Child,
    pub port: u16,
    pub admin_port: u16,
    log: PathBuf,
}

impl Lookup {
    /// `serve --database URL` plus `args`, the management API on with
    /// [`ADMIN_TOKEN`]; stderr goes to `log`.
    pub fn start(database: &str, args: &[&str], log: &Path) -> Lookup {
        let mut child = Command::new(LOOKUP)
            .args(["serve", "--database", database, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(args)
            .env("CNAME_GUARD_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("start cname-guard-lookup");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut port = |prefix: &str| {
            let mut line = String::new();
            let _ = out.read_line(&mut line);
            line.trim().strip_prefix(prefix).and_then(|p| p.parse::<u16>().ok()).unwrap_or_else(|| {
                panic!(
                    "printed {line:?}, not {prefix}PORT; stderr:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            })
        };
        let port_ = port("listening on 127.0.0.1:");
        let admin_port = port("admin listening on 127.0.0.1:");
        Lookup { child, port: port_, admin_port, log: log.to_path_buf() }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The file stderr goes to, to read after `stop`.
    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    /// A lookup-listener GET: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        send(self.port, "GET", path, None, None)
    }

    /// A management API call with the admin token.
    pub fn admin(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        send(self.admin_port, method, path, Some(ADMIN_TOKEN), body)
    }

    /// SIGTERM, and the exit it leads to.
    pub fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "exit after SIGTERM: {status:?}\n{}", self.stderr());
    }
}

impl Drop for Lookup {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on its own connection: (status, body).
pub fn send(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}
