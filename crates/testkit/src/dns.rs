//! Real DNS for the tests: BIND 9's `named` as an authoritative server on a
//! free loopback port, with zone files written for the test, changed with
//! `nsupdate`; and a misbehaving UDP nameserver for the faults BIND won't
//! produce. Self-contained: `lookup/tests/` includes this file too.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const START: Duration = Duration::from_secs(30);

/// The repository root.
pub fn repo() -> PathBuf {
    // This crate is `crates/testkit`.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The demo zones, `envoy/dns/<zone>.zone`.
pub fn demo_zone_dir() -> PathBuf {
    repo().join("envoy/dns")
}

/// A fresh, empty directory `cname-guard-<tag>-<pid>-<n>` under the temp dir.
pub fn fresh_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "cname-guard-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// Polls `f` until it returns `Some`, or panics with `what` at the deadline.
pub fn wait<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port free for both UDP and TCP right now.
pub fn free_dns_port() -> u16 {
    wait("a port free for UDP and TCP", Duration::from_secs(5), || {
        let udp = UdpSocket::bind("127.0.0.1:0").ok()?;
        let port = udp.local_addr().ok()?.port();
        TcpListener::bind(("127.0.0.1", port)).ok().map(|_| port)
    })
}

/// A running `named`, killed on drop; its directory is removed then.
pub struct Bind {
    pub port: u16,
    child: Child,
    pub dir: PathBuf,
}

impl Bind {
    /// BIND serving every `zone_dir/<zone>.zone`, copied first (updates
    /// write journals next to the zone files).
    pub fn with_zone_dir(zone_dir: &Path) -> Bind {
        let mut zones = Vec::new();
        for entry in std::fs::read_dir(zone_dir).unwrap_or_else(|e| panic!("{}: {e}", zone_dir.display())) {
            let path = entry.expect("zone dir entry").path();
            if let Some(zone) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".zone")) {
                zones.push((zone.to_string(), std::fs::read_to_string(&path).expect("zone file")));
            }
        }
        assert!(!zones.is_empty(), "no *.zone files in {}", zone_dir.display());
        let refs: Vec<(&str, &str)> = zones.iter().map(|(z, t)| (z.as_str(), t.as_str())).collect();
        Bind::start(&refs)
    }

    /// BIND serving `(zone, zone file text)` pairs.
    pub fn start(zones: &[(&str, &str)]) -> Bind {
        Bind::launch(zones, false, None)
    }

    /// As `start`, also resolving for loopback clients: it chases CNAMEs
    /// across its zones, as the public resolvers an ACME CA uses do.
    pub fn start_resolving(zones: &[(&str, &str)]) -> Bind {
        Bind::launch(zones, true, None)
    }

    /// As `start`, but the `keyed` zones take updates signed with the TSIG
    /// key in `key_file` (a BIND key file) only; the others from loopback.
    /// As `start_resolving`, the `keyed` zones taking updates signed with
    /// the key only (a platform's DCV zone).
    pub fn start_resolving_with_key(zones: &[(&str, &str)], key_file: &Path, keyed: &[&str]) -> Bind {
        Bind::launch(zones, true, Some((key_file, keyed)))
    }

    pub fn start_with_key(zones: &[(&str, &str)], key_file: &Path, keyed: &[&str]) -> Bind {
        Bind::launch(zones, false, Some((key_file, keyed)))
    }

    fn launch(zones: &[(&str, &str)], recursion: bool, key: Option<(&Path, &[&str])>) -> Bind {
        let dir = fresh_dir("named");
        for (zone, text) in zones {
            std::fs::write(dir.join(format!("{zone}.zone")), text).expect("write zone");
        }
        let port = free_dns_port();
        let mut conf = Command::new("bash");
        conf.arg(repo().join("scripts/named-conf.sh"))
            .arg(&dir)
            .arg(port.to_string())
            .env("NAMED_RECURSION", if recursion { "yes" } else { "no" });
        if let Some((file, keyed)) = key {
            conf.env("NAMED_KEY_FILE", file).env("NAMED_KEY_ZONES", keyed.join(" "));
        }
        let conf = conf.output().expect("run scripts/named-conf.sh");
        assert!(conf.status.success(), "named-conf.sh: {}", String::from_utf8_lossy(&conf.stderr));
        std::fs::write(dir.join("named.conf"), &conf.stdout).expect("write named.conf");
        let log = std::fs::File::create(dir.join("named.log")).expect("named.log");
        let mut cmd = Command::new(named_bin());
        // -g: foreground, log to stderr. No -u: a credential change would
        // clear the parent-death signal below.
        cmd.arg("-g").arg("-c").arg(dir.join("named.conf")).stdout(Stdio::null()).stderr(log);
        // SAFETY: prctl is async-signal-safe. named dies with the thread
        // that started it, even if the test process is killed.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start named (apt-get install bind9): {e}"));
        let mut bind = Bind { port, child, dir };
        wait("named to load its zones", START, || {
            if let Ok(Some(status)) = bind.child.try_wait() {
                panic!("named exited ({status}):\n{}", bind.log());
            }
            bind.log().contains("running\n").then_some(())
        });
        assert!(!bind.log().contains("not loaded due to errors"), "a zone did not load:\n{}", bind.log());
        bind
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("named.log")).unwrap_or_default()
    }

    /// The query log (named -g logs to stderr): one line per question, a
    /// `T` in the flags marks TCP.
    pub fn queries(&self) -> Vec<String> {
        self.log().lines().filter(|l| l.contains(": query: ")).map(String::from).collect()
    }

    /// Changes `zone` with nsupdate (RFC 2136): `lines` like
    /// `update add x.example. 5 IN CNAME edge.saas.example.`.
    pub fn update(&self, zone: &str, lines: &[&str]) {
        let mut script = format!("server 127.0.0.1 {}\nzone {zone}\n", self.port);
        for l in lines {
            script.push_str(l);
            script.push('\n');
        }
        script.push_str("send\n");
        let file = self.dir.join("update.txt");
        std::fs::write(&file, &script).expect("write update");
        let out = Command::new("nsupdate").args(["-t", "10"]).arg(&file).output().expect("run nsupdate");
        assert!(
            out.status.success(),
            "nsupdate failed:\n{script}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn named_bin() -> PathBuf {
    ["/usr/sbin/named", "/usr/bin/named"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| "named".into())
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One BIND with the demo zones for the whole test process (tests that
/// restart the lookup service need DNS to outlive it). Started on a thread
/// that never ends, so the parent-death signal fires only at process exit.
static DEMO: OnceLock<Bind> = OnceLock::new();

/// A static is never dropped: its directory goes when the process exits.
extern "C" fn remove_demo_dir() {
    if let Some(bind) = DEMO.get() {
        let _ = std::fs::remove_dir_all(&bind.dir);
    }
}

pub fn demo() -> &'static Bind {
    DEMO.get_or_init(|| {
        // SAFETY: registers a plain function; it only removes a directory.
        unsafe {
            libc::atexit(remove_demo_dir);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let started = std::panic::catch_unwind(|| Bind::with_zone_dir(&demo_zone_dir()));
            let _ = tx.send(started);
            loop {
                std::thread::park();
            }
        });
        match rx.recv() {
            Ok(Ok(bind)) => bind,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => panic!("the demo named thread died"),
        }
    })
}

// --- a nameserver that misbehaves ------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehave {
    /// Reads every question, never answers (a timeout).
    Silent,
    /// Answers every question with SERVFAIL.
    ServFail,
    /// Answers with the question's id and then bytes that are no DNS message.
    Garbage,
}

/// A UDP nameserver on loopback that misbehaves one way; stopped on drop.
pub struct BadDns {
    pub addr: SocketAddr,
    pub questions: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BadDns {
    pub fn start(mode: Misbehave) -> BadDns {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("read timeout");
        let addr = socket.local_addr().expect("addr");
        let (stop, questions) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (stop2, questions2) = (stop.clone(), questions.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop2.load(Ordering::SeqCst) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                questions2.fetch_add(1, Ordering::SeqCst);
                if let Some(reply) = misbehave(mode, &buf[..n]) {
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        BadDns { addr, questions, stop, thread: Some(thread) }
    }
}

impl Drop for BadDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn misbehave(mode: Misbehave, query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    match mode {
        Misbehave::Silent => None,
        Misbehave::ServFail => {
            // Header and question of the query; QR set, RCODE 2, no other records.
            let end = question_end(query)?;
            let mut reply = query[..end].to_vec();
            reply[2] |= 0x80;
            reply[3] = (reply[3] & 0xf0) | 2;
            reply[6..12].fill(0);
            Some(reply)
        }
        Misbehave::Garbage => {
            // The right id and flags, counts that promise records, then noise.
            let mut reply = vec![query[0], query[1], 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0];
            reply.extend((0..40u8).map(|i| i.wrapping_mul(37) ^ 0xc0));
            Some(reply)
        }
    }
}

/// Where the first question of a DNS message ends.
fn question_end(msg: &[u8]) -> Option<usize> {
    let mut i = 12;
    loop {
        let len = usize::from(*msg.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        i += len;
    }
    (i + 4 <= msg.len()).then_some(i + 4)
}

/// A zone file for `name`: `$TTL ttl`, an SOA whose negative TTL is 1 s (a
/// name added with nsupdate is seen at once), its NS, then `records`.
pub fn zone_with_ttl(name: &str, ttl: u32, records: &str) -> String {
    format!("$TTL {ttl}\n@ IN SOA ns.{name}. hostmaster.{name}. 1 3600 600 86400 1\n@ IN NS ns.{name}.\nns IN A 127.0.0.1\n{records}")
}

/// A zone file whose records live 1 s.
pub fn zone(name: &str, records: &str) -> String {
    zone_with_ttl(name, 1, records)
}
