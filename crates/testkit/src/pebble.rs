//! Pebble, the ACME test CA (Debian's `pebble`), on free loopback ports:
//! its directory's TLS certificate made here with rcgen, its validation
//! pointed at the test BIND and at the edge's listener, stopped on drop.

use super::{free_port, wait_for, Proc, Scratch};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct Pebble {
    pub port: u16,
    pub mgmt: u16,
    /// The root of the directory's TLS certificate (`--acme-ca-root`).
    pub tls_root: PathBuf,
    pub log: PathBuf,
    pub dir: Scratch,
    /// More environment for the next start (e.g. `PEBBLE_VA_SLEEPTIME`).
    pub env: Vec<(String, String)>,
    proc: Option<Proc>,
    config: PathBuf,
    dns: String,
}

impl Pebble {
    /// Its ports and files, not started: the service under test needs the
    /// directory URL before the edge (the validation port) exists.
    pub fn prepare(dns: &str) -> Pebble {
        let dir = Scratch::new("pebble");
        let tls_root = super::tls_files(&dir.0).0;
        let config = dir.0.join("pebble.json");
        let log = dir.0.join("pebble.log");
        let (port, mgmt) = (free_port(), free_port());
        Pebble { port, mgmt, tls_root, log, dir, env: Vec::new(), proc: None, config, dns: dns.to_string() }
    }

    /// Validates HTTP-01 on `http_port` of whatever DNS resolves the
    /// hostname to. `validity`: the certificates' lifetime in seconds.
    pub fn launch(&mut self, http_port: u16, validity: Option<u64>) {
        let (port, mgmt, tls_port) = (self.port, self.mgmt, free_port());
        let (cert, key) = (self.dir.0.join("tls-cert.pem"), self.dir.0.join("tls-key.pem"));
        let mut pebble = serde_json::json!({
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt}"),
            "certificate": cert,
            "privateKey": key,
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        });
        if let Some(v) = validity {
            pebble["certificateValidityPeriod"] = v.into();
        }
        std::fs::write(&self.config, serde_json::json!({ "pebble": pebble }).to_string()).expect("write config");
        self.restart();
    }

    /// Starts it (again, on the same ports).
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::File::create(&self.log).expect("pebble log");
        let mut cmd = Command::new("pebble");
        // The VA sleeps unless told otherwise (PEBBLE_VA_SLEEPTIME in `env`).
        if !self.env.iter().any(|(k, _)| k == "PEBBLE_VA_SLEEPTIME") {
            cmd.env("PEBBLE_VA_NOSLEEP", "1");
        }
        let child = cmd
            .arg("-config")
            .arg(&self.config)
            .args(["-dnsserver", &self.dns, "-strict=false"])
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start pebble (Debian package pebble)");
        let mut proc = Proc { child, name: "pebble".into() };
        let (port, mgmt) = (self.port, self.mgmt);
        wait_for("pebble to listen", Duration::from_secs(20), || {
            assert!(proc.alive(), "pebble exited:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
            let up = |p: u16| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok();
            (up(port) && up(mgmt)).then_some(())
        });
        self.proc = Some(proc);
    }

    /// The CA down: connections refused.
    pub fn stop(&mut self) {
        self.proc = None;
    }

    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// The root that issued the certificates, from the management port.
    pub fn issuing_root(&self) -> String {
        let url = format!("https://127.0.0.1:{}/roots/0", self.mgmt);
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(&self.tls_root)
            .arg(&url)
            .output()
            .expect("run curl");
        assert!(out.status.success(), "curl {url}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("PEM")
    }

    /// Whether `chain` (leaf first) verifies against the issuing root.
    pub fn verify_chain(&self, chain: &str) -> Result<(), String> {
        let root = self.dir.0.join("issuing-root.pem");
        let file = self.dir.0.join("chain.pem");
        std::fs::write(&root, self.issuing_root()).expect("write root");
        std::fs::write(&file, chain).expect("write chain");
        let out = Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(&root)
            .arg("-untrusted")
            .arg(&file)
            .arg(&file)
            .output()
            .expect("run openssl");
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
        }
    }
}
