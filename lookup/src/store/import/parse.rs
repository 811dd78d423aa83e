//! The registry file read as a stream: each account, zone and custom
//! hostname is checked and handed on as soon as it is read, so a file of a
//! million hostnames never sits in memory. What must be remembered across
//! the file is per account (declared ids), not per hostname.

use super::ImportError;
use crate::store::hostnames::Status;
use crate::store::{check_account, check_hostname, NameError};
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt;
use std::io::Read;

const MAX_TTL: u64 = 86_400;
/// Problems listed in an error; past this only counted, so a file that is
/// wrong everywhere cannot grow the answer without bound.
const MAX_PROBLEMS: usize = 1_000;

/// One entry of the file, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    Account { id: String, suspended: bool },
    Zone { zone: String, account: String },
    Hostname { host: String, account: String, status: Status },
}

/// Where items go; `false` stops the read (the writer has failed).
pub(crate) type Sink<'a> = dyn FnMut(Item) -> bool + 'a;

/// Problems found so far: the first `MAX_PROBLEMS`, then a count.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    listed: Vec<String>,
    more: usize,
}

impl Problems {
    pub(crate) fn push(&mut self, p: String) {
        if self.listed.len() < MAX_PROBLEMS {
            self.listed.push(p);
        } else {
            self.more += 1;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }

    pub(crate) fn into_error(mut self) -> ImportError {
        if self.more > 0 {
            self.listed.push(format!("and {} more problems", self.more));
        }
        ImportError::Invalid(self.listed)
    }
}

struct State<'s, 'a> {
    sink: &'s mut Sink<'a>,
    problems: Problems,
    /// Account ids the file has declared so far.
    declared: HashSet<String>,
    /// The sink refused an item.
    stopped: bool,
}

impl State<'_, '_> {
    fn give<E: de::Error>(&mut self, item: Item) -> Result<(), E> {
        if (self.sink)(item) {
            Ok(())
        } else {
            self.stopped = true;
            Err(E::custom("import stopped"))
        }
    }

    fn check_declared(&mut self, path: &str, account: &str) -> bool {
        let ok = self.declared.contains(account);
        if !ok {
            self.problems
                .push(format!("{path}: unknown account {account:?} (declare it in \"accounts\", before this section)"));
        }
        ok
    }

    /// `raw` as a canonical name, or a problem at `path`.
    fn name(&mut self, path: &str, what: &str, raw: &str) -> Option<String> {
        match check_hostname(raw) {
            Ok(n) if n == raw => Some(n),
            Ok(_) => {
                self.problems.push(format!("{path}: invalid {what} name: upper case"));
                None
            }
            Err(NameError::Hostname(why)) => {
                self.problems.push(format!("{path}: invalid {what} name: {why}"));
                None
            }
            Err(e) => {
                self.problems.push(format!("{path}: {e}"));
                None
            }
        }
    }
}

/// Reads the file from `reader`, handing each good entry to `sink` in file
/// order. The problems of a file that parses are returned, not raised, so
/// that every one of them is reported; a syntax error ends the read.
pub(crate) fn read(reader: impl Read, sink: &mut Sink<'_>) -> Result<Problems, ImportError> {
    let mut state = State { sink, problems: Problems::default(), declared: HashSet::new(), stopped: false };
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(reader));
    let mut track = serde_path_to_error::Track::new();
    let result = Root(&mut state).deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track));
    let result = result.and_then(|()| de.end());
    if state.stopped {
        return Err(ImportError::Stopped);
    }
    match result {
        Ok(()) => Ok(state.problems),
        Err(e) => Err(syntax_error(track.path(), e)),
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Section {
    Ttl,
    Accounts,
    Zones,
    CustomHostnames,
    Records,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAccount {
    #[serde(default)]
    suspended: bool,
}

/// Declares a `visit_map`-only seed: serde would read a struct from an
/// array, and the file format does not.
macro_rules! map_seed {
    ($name:ident, $expecting:literal, |$state:ident, $map:ident| $body:block) => {
        struct $name<'r, 's, 'a>(&'r mut State<'s, 'a>);

        impl<'de> DeserializeSeed<'de> for $name<'_, '_, '_> {
            type Value = ();
            fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_map(self)
            }
        }

        impl<'de> Visitor<'de> for $name<'_, '_, '_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str($expecting)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut $map: A) -> Result<(), A::Error> {
                let $state = self.0;
                $body
                Ok(())
            }
        }
    };
}

map_seed!(Root, "a JSON object at the top level", |state, map| {
    while let Some(section) = map.next_key::<Section>()? {
        match section {
            Section::Ttl => {
                if let Some(t) = map.next_value::<Option<u64>>()?.filter(|&t| t > MAX_TTL) {
                    state.problems.push(format!("ttl: {t} is outside 0..={MAX_TTL}"));
                }
            }
            Section::Accounts => map.next_value_seed(Accounts(state))?,
            Section::Zones => map.next_value_seed(Zones(state))?,
            Section::CustomHostnames => map.next_value_seed(Hostnames(state))?,
            Section::Records => {
                return Err(de::Error::custom("records: DNS serves the records now; remove this section"));
            }
        }
    }
});

map_seed!(Accounts, "a JSON object of accounts", |state, map| {
    while let Some(id) = map.next_key::<String>()? {
        let account = map.next_value_seed(AccountSeed)?;
        if let Err(e) = check_account(&id) {
            state.problems.push(format!("accounts[{id:?}]: {e}"));
            continue;
        }
        state.declared.insert(id.clone());
        state.give(Item::Account { id, suspended: account.suspended })?;
    }
});

struct AccountSeed;

impl<'de> DeserializeSeed<'de> for AccountSeed {
    type Value = FileAccount;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<FileAccount, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for AccountSeed {
    type Value = FileAccount;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FileAccount, A::Error> {
        FileAccount::deserialize(de::value::MapAccessDeserializer::new(map))
    }
}

map_seed!(Zones, "a JSON object of zones", |state, map| {
    while let Some(zone) = map.next_key::<String>()? {
        let account: String = map.next_value()?;
        let path = format!("zones[{zone:?}]");
        let name = state.name(&path, "zone", &zone);
        if state.check_declared(&path, &account) {
            if let Some(zone) = name {
                state.give(Item::Zone { zone, account })?;
            }
        }
    }
});

map_seed!(Hostnames, "a JSON object of accounts", |state, map| {
    while let Some(account) = map.next_key::<String>()? {
        let declared = state.check_declared(&format!("custom_hostnames[{account:?}]"), &account);
        map.next_value_seed(AccountHostnames { state: &mut *state, account: &account, declared })?;
    }
});

struct AccountHostnames<'r, 's, 'a, 'n> {
    state: &'r mut State<'s, 'a>,
    account: &'n str,
    declared: bool,
}

impl<'de> DeserializeSeed<'de> for AccountHostnames<'_, '_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for AccountHostnames<'_, '_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of hostnames and statuses")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (state, account) = (self.state, self.account);
        while let Some(host) = map.next_key::<String>()? {
            let status: String = map.next_value()?;
            let path = format!("custom_hostnames[{account:?}][{host:?}]");
            let name = state.name(&path, "host", &host);
            let parsed = Status::parse(&status);
            if parsed.is_none() {
                let all: Vec<_> = Status::ALL.iter().map(|s| s.as_str()).collect();
                state.problems.push(format!("{path}: unknown status {status:?} (one of {})", all.join(", ")));
            }
            if let (true, Some(host), Some(status)) = (self.declared, name, parsed) {
                state.give(Item::Hostname { host, account: account.to_string(), status })?;
            }
        }
        Ok(())
    }
}

/// A serde error with its path written the way problems are:
/// `accounts["a"].suspended`, `zones["x"]`.
fn syntax_error(path: serde_path_to_error::Path, e: serde_json::Error) -> ImportError {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    let mut section = String::new();
    for (depth, seg) in path.iter().enumerate() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                // Depth 0 is a top-level key; depth 2 of accounts is a field.
                let is_field = depth == 0 || (depth == 2 && section == "accounts");
                if depth == 0 {
                    section = key.clone();
                }
                if is_field {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                } else {
                    out.push_str(&format!("[{key:?}]"));
                }
            }
            Segment::Enum { variant } => out.push_str(&format!(".{variant}")),
            Segment::Unknown => out.push_str(".?"),
        }
    }
    let message = e.to_string();
    ImportError::Syntax(if out.is_empty() || out == "." { message } else { format!("{out}: {message}") })
}
