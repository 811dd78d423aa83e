//! Command-line options: `--flag VALUE` or `--flag=VALUE`, with environment
//! fallbacks.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

/// One option a program accepts.
pub struct Opt {
    pub flag: &'static str,
    /// Environment variable read when the flag is not given.
    pub env: Option<&'static str>,
    /// `false` for switches like `--quiet`.
    pub takes_value: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum CliError {
    Unknown(String),
    MissingValue(&'static str),
    Missing(&'static str),
    BadAddr { flag: &'static str, value: String },
    BadNumber { flag: &'static str, value: String, min: u64, max: u64 },
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Unknown(a) => write!(f, "unknown argument {a:?}"),
            CliError::MissingValue(flag) => write!(f, "{flag} needs a value"),
            CliError::Missing(flag) => write!(f, "{flag} is required"),
            CliError::BadAddr { flag, value } => {
                write!(f, "{flag} {value:?} is not an IP:PORT address (like 127.0.0.1:8081)")
            }
            CliError::BadNumber { flag, value, min, max } => {
                write!(f, "{flag} {value:?} is not a whole number from {min} to {max}")
            }
        }
    }
}

impl std::error::Error for CliError {}

/// What was given, after environment fallbacks.
#[derive(Debug, Default)]
pub struct Args {
    pub help: bool,
    /// Every value given for a flag, in order (the last one wins for `get`).
    values: HashMap<&'static str, Vec<String>>,
    switches: Vec<&'static str>,
}

impl Args {
    pub fn get(&self, flag: &str) -> Option<&str> {
        self.values.get(flag).and_then(|v| v.last()).map(String::as_str)
    }

    /// A repeatable flag: every value, each also split on commas (the
    /// environment form), as addresses.
    pub fn addrs(&self, flag: &'static str) -> Result<Vec<SocketAddr>, CliError> {
        let values = self.values.get(flag).map(Vec::as_slice).unwrap_or_default();
        values
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse().map_err(|_| CliError::BadAddr { flag, value: v.to_string() }))
            .collect()
    }

    pub fn number(&self, flag: &'static str, default: u64, min: u64, max: u64) -> Result<u64, CliError> {
        let Some(value) = self.get(flag) else { return Ok(default) };
        match value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(CliError::BadNumber { flag, value: value.to_string(), min, max }),
        }
    }

    pub fn require(&self, flag: &'static str) -> Result<&str, CliError> {
        self.get(flag).ok_or(CliError::Missing(flag))
    }

    pub fn switch(&self, flag: &str) -> bool {
        self.switches.contains(&flag)
    }

    pub fn addr(&self, flag: &'static str, default: &str) -> Result<SocketAddr, CliError> {
        let value = self.get(flag).unwrap_or(default);
        value.parse().map_err(|_| CliError::BadAddr { flag, value: value.to_string() })
    }
}

pub fn parse(
    opts: &[Opt],
    argv: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Args, CliError> {
    let mut args = Args::default();
    let mut argv = argv.into_iter();
    while let Some(arg) = argv.next() {
        if arg == "-h" || arg == "--help" {
            args.help = true;
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let opt = opts.iter().find(|o| o.flag == name).ok_or(CliError::Unknown(arg.clone()))?;
        if !opt.takes_value {
            if inline.is_some() {
                return Err(CliError::Unknown(arg));
            }
            args.switches.push(opt.flag);
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => argv.next().ok_or(CliError::MissingValue(opt.flag))?,
        };
        args.values.entry(opt.flag).or_default().push(value);
    }
    for opt in opts {
        let Some(var) = opt.env else { continue };
        let Some(value) = env(var).filter(|v| !v.is_empty()) else { continue };
        if opt.takes_value {
            args.values.entry(opt.flag).or_insert_with(|| vec![value]);
        } else if value != "0" && !args.switches.contains(&opt.flag) {
            args.switches.push(opt.flag);
        }
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: &[Opt] = &[
        Opt { flag: "--registry", env: Some("REG"), takes_value: true },
        Opt { flag: "--listen", env: Some("LISTEN"), takes_value: true },
        Opt { flag: "--quiet", env: Some("QUIET"), takes_value: false },
    ];

    fn run(argv: &[&str], env: &[(&str, &str)]) -> Result<Args, CliError> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        parse(OPTS, argv.iter().map(|s| s.to_string()), move |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn flags_and_fallbacks() {
        let a = run(&["--registry", "r.json", "--listen=127.0.0.1:0"], &[("REG", "env.json")]).unwrap();
        assert_eq!(a.get("--registry"), Some("r.json"));
        assert_eq!(a.addr("--listen", "127.0.0.1:1").unwrap().port(), 0);
        assert!(!a.switch("--quiet"));
        let a = run(&[], &[("REG", "env.json"), ("QUIET", "1")]).unwrap();
        assert_eq!(a.require("--registry"), Ok("env.json"));
        assert!(a.switch("--quiet"));
        assert_eq!(a.addr("--listen", "127.0.0.1:8081").unwrap().port(), 8081);
        assert!(run(&["-h"], &[]).unwrap().help);
    }

    #[test]
    fn errors() {
        assert_eq!(run(&["--bogus"], &[]).unwrap_err(), CliError::Unknown("--bogus".into()));
        assert_eq!(run(&["--registry"], &[]).unwrap_err(), CliError::MissingValue("--registry"));
        assert_eq!(run(&[], &[]).unwrap().require("--registry"), Err(CliError::Missing("--registry")));
        let bad = run(&["--listen", "localhost"], &[]).unwrap();
        assert!(matches!(bad.addr("--listen", ""), Err(CliError::BadAddr { .. })));
        assert!(run(&["--quiet=1"], &[]).is_err());
        let a = run(&["--listen", "x"], &[]).unwrap();
        assert!(matches!(a.number("--listen", 1, 0, 9), Err(CliError::BadNumber { .. })));
        assert!(matches!(a.addrs("--listen"), Err(CliError::BadAddr { .. })));
    }

    #[test]
    fn repeated_values_and_numbers() {
        let a = run(&["--listen", "127.0.0.1:53", "--listen=127.0.0.2:5353,[::1]:53"], &[]).unwrap();
        let all = a.addrs("--listen").unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].port(), 53);
        let a = run(&[], &[("LISTEN", "127.0.0.1:1, 127.0.0.1:2")]).unwrap();
        assert_eq!(a.addrs("--listen").unwrap().len(), 2);
        assert_eq!(run(&[], &[]).unwrap().addrs("--listen").unwrap(), vec![]);
        let a = run(&["--registry", "7"], &[]).unwrap();
        assert_eq!(a.number("--registry", 1, 0, 9), Ok(7));
        assert_eq!(a.number("--quiet", 3, 0, 9), Ok(3));
        assert!(a.number("--registry", 1, 8, 9).is_err());
    }
}
