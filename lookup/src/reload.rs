//! Keeping the registry current: reload on SIGHUP and when the file changes,
//! swap atomically, keep the old registry when the new file is bad.

use crate::registry::{Counts, Registry, RegistryError};
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;

/// A file modified this recently may change again without its mtime or size
/// changing (coarse timestamps), so its content is hashed on every poll.
const RACY: Duration = Duration::from_secs(2);

/// The registry requests are answered from. Readers clone the `Arc` and
/// never wait for a load; a reload replaces it in one step.
pub struct Current(RwLock<Arc<Registry>>);

impl Current {
    pub fn new(registry: Registry) -> Arc<Current> {
        Arc::new(Current(RwLock::new(Arc::new(registry))))
    }

    pub fn get(&self) -> Arc<Registry> {
        // A writer cannot panic while holding the lock (it only assigns), but
        // a poisoned lock still holds a complete registry.
        match self.0.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, registry: Registry) {
        let new = Arc::new(registry);
        match self.0.write() {
            Ok(mut w) => *w = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

#[derive(Debug)]
pub enum Outcome {
    Unchanged,
    Reloaded(Counts),
    /// The file changed but is invalid (or unreadable): the old registry stays.
    Rejected(RegistryError),
}

/// Watches one registry file.
pub struct Watcher {
    path: PathBuf,
    current: Arc<Current>,
    stamp: Option<Stamp>,
    hash: u64,
    /// The last check could not read the file (logged once, not every poll).
    unreadable: bool,
}

impl Watcher {
    /// Loads the file for the first time.
    pub fn open(path: &Path) -> Result<Watcher, RegistryError> {
        let stamp = stamp(path).ok();
        let bytes = read(path)?;
        let registry = Registry::from_slice(&bytes)?;
        Ok(Watcher {
            path: path.to_path_buf(),
            current: Current::new(registry),
            stamp,
            hash: hash(&bytes),
            unreadable: false,
        })
    }

    pub fn current(&self) -> Arc<Current> {
        self.current.clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reloads if the file changed (or always, when `force`d by SIGHUP).
    pub fn check(&mut self, force: bool) -> Outcome {
        let new_stamp = match stamp(&self.path) {
            Ok(s) => s,
            Err(e) => return self.unreadable(e),
        };
        if !force && self.stamp.as_ref() == Some(&new_stamp) && !racy(&new_stamp) {
            return Outcome::Unchanged;
        }
        let bytes = match read(&self.path) {
            Ok(b) => b,
            Err(e) => return self.unreadable(e),
        };
        self.unreadable = false;
        let new_hash = hash(&bytes);
        self.stamp = Some(new_stamp);
        if !force && new_hash == self.hash {
            return Outcome::Unchanged;
        }
        // Remembered even when invalid: a bad file is reported once, not
        // on every poll; it is tried again when it changes or on SIGHUP.
        self.hash = new_hash;
        match Registry::from_slice(&bytes) {
            Ok(registry) => {
                let counts = registry.counts();
                self.current.set(registry);
                Outcome::Reloaded(counts)
            }
            Err(e) => Outcome::Rejected(e),
        }
    }

    fn unreadable(&mut self, e: RegistryError) -> Outcome {
        if std::mem::replace(&mut self.unreadable, true) {
            Outcome::Unchanged
        } else {
            // Forget the stamp so the file is read again once it is back.
            self.stamp = None;
            Outcome::Rejected(e)
        }
    }
}

fn stamp(path: &Path) -> Result<Stamp, RegistryError> {
    let meta = std::fs::metadata(path).map_err(|source| RegistryError::Read { file: path.to_path_buf(), source })?;
    Ok(Stamp { modified: meta.modified().ok(), len: meta.len() })
}

fn read(path: &Path) -> Result<Vec<u8>, RegistryError> {
    std::fs::read(path).map_err(|source| RegistryError::Read { file: path.to_path_buf(), source })
}

fn racy(s: &Stamp) -> bool {
    match s.modified {
        None => true,
        Some(m) => match SystemTime::now().duration_since(m) {
            Ok(age) => age < RACY,
            Err(_) => true, // in the future
        },
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

/// Runs the watcher on the runtime: a check every `interval`, and a forced
/// one on SIGHUP. SIGHUP is registered before this returns.
pub fn spawn(mut watcher: Watcher, interval: Duration) -> std::io::Result<JoinHandle<()>> {
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        loop {
            let force = tokio::select! {
                _ = hup.recv() => true,
                () = tokio::time::sleep(interval) => false,
            };
            let path = watcher.path.display().to_string();
            let checked = tokio::task::spawn_blocking(move || {
                let outcome = watcher.check(force);
                (watcher, outcome)
            })
            .await;
            let outcome;
            (watcher, outcome) = match checked {
                Ok(pair) => pair,
                Err(e) => {
                    crate::error!("registry watcher stopped: {e}");
                    return;
                }
            };
            let reason = if force { "SIGHUP" } else { "file changed" };
            match outcome {
                Outcome::Unchanged => {}
                Outcome::Reloaded(counts) => crate::info!("registry reloaded from {path} ({reason}): {counts}"),
                Outcome::Rejected(e) => {
                    crate::error!("registry {path} rejected ({reason}), keeping the previous one: {e}")
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempFile(PathBuf);
    impl TempFile {
        fn new(tag: &str, body: &str) -> TempFile {
            let p = std::env::temp_dir().join(format!("cname-guard-lookup-{tag}-{}.json", std::process::id()));
            std::fs::write(&p, body).expect("write temp registry");
            TempFile(p)
        }
        fn write(&self, body: &str) {
            std::fs::write(&self.0, body).expect("rewrite temp registry");
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    const V1: &str = r#"{"accounts": {"a": {}}, "zones": {"one.example": "a"}}"#;
    const V2: &str = r#"{"accounts": {"a": {}, "b": {}}, "zones": {"one.example": "a", "two.example": "b"}}"#;

    fn knows(current: &Current, host: &str) -> bool {
        current.get().zone_owner(host).is_some()
    }

    #[test]
    fn reloads_on_change_and_keeps_the_old_registry_on_a_bad_file() {
        let file = TempFile::new("reload", V1);
        let mut w = Watcher::open(&file.0).expect("valid");
        let current = w.current();
        assert!(knows(&current, "one.example") && !knows(&current, "two.example"));
        assert!(matches!(w.check(false), Outcome::Unchanged));

        file.write(V2);
        assert!(matches!(w.check(false), Outcome::Reloaded(c) if c.zones == 2));
        assert!(knows(&current, "two.example"));

        // Same content rewritten: nothing to do.
        file.write(V2);
        assert!(matches!(w.check(false), Outcome::Unchanged));

        for bad in [r#"{"zones": {"three.example": "nobody"}}"#, "{not json", ""] {
            file.write(bad);
            let Outcome::Rejected(e) = w.check(false) else { panic!("{bad:?} accepted") };
            assert!(!e.to_string().is_empty());
            assert!(knows(&current, "two.example"), "old registry kept after {bad:?}");
            // Reported once, not on every poll.
            assert!(matches!(w.check(false), Outcome::Unchanged));
        }
        // SIGHUP retries even an unchanged bad file.
        assert!(matches!(w.check(true), Outcome::Rejected(_)));

        file.write(V1);
        assert!(matches!(w.check(false), Outcome::Reloaded(_)));
        assert!(!knows(&current, "two.example"));
        assert!(matches!(w.check(true), Outcome::Reloaded(_)));
    }

    #[test]
    fn a_missing_file_keeps_the_registry_and_is_reported_once() {
        let file = TempFile::new("missing", V1);
        let mut w = Watcher::open(&file.0).expect("valid");
        let current = w.current();
        std::fs::remove_file(&file.0).expect("remove");
        assert!(matches!(w.check(false), Outcome::Rejected(RegistryError::Read { .. })));
        assert!(matches!(w.check(false), Outcome::Unchanged));
        assert!(knows(&current, "one.example"));
        file.write(V2);
        assert!(matches!(w.check(false), Outcome::Reloaded(_)));
        assert!(knows(&current, "two.example"));
    }

    #[test]
    fn open_fails_on_a_bad_file() {
        let file = TempFile::new("open", r#"{"bogus": 1}"#);
        let Err(e) = Watcher::open(&file.0) else { panic!("accepted") };
        assert!(e.to_string().contains("bogus"), "{e}");
        assert!(Watcher::open(Path::new("/nonexistent/registry.json")).is_err());
    }
}
