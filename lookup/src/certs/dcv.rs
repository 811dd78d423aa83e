//! Delegated DNS-01 (Cloudflare's "delegated DCV"): the customer adds once
//! `_acme-challenge.<hostname> CNAME <hostname>.<dcv zone>`, and the
//! service writes the ACME TXT value at `<hostname>.<dcv zone>`, a zone the
//! platform runs, by an RFC 2136 UPDATE signed with a TSIG key (RFC 8945).
//!
//! The message and its TSIG are hickory-proto's; the exchange is one TCP
//! round trip here (an update is one small message: TCP needs neither
//! retransmission nor size limits, and a lost answer is a clear timeout).

use base64::Engine;
use hickory_proto::dnssec::rdata::tsig::TsigAlgorithm;
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::dnssec::tsig::TSigner;
use hickory_proto::op::{update_message, Message, MessageType, OpCode, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::resolve::{Dns, DnsError, Reply, Rtype};

/// One update, connection to answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The TXT record's TTL: short, the value is used once.
pub const TTL: u32 = 60;
/// Clock skew the server may accept from us (BIND's own default, RFC 8945).
const FUDGE: u16 = 300;
/// The label ACME DNS-01 asks under (RFC 8555 8.4).
const CHALLENGE_LABEL: &str = "_acme-challenge";

/// Where and how the service writes DNS-01 values.
#[derive(Debug, Clone)]
pub struct DcvConfig {
    /// The platform's DCV zone, e.g. `dcv.saas.example`; values go to
    /// `<hostname>.<zone>`.
    pub zone: String,
    /// The zone's primary, which accepts the updates.
    pub server: SocketAddr,
    pub tsig: TsigKey,
}

/// The TSIG algorithms hickory computes (hmac-md5 and sha1 are not offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl KeyAlgorithm {
    /// The name BIND's key files (and the TSIG record) use.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::HmacSha256 => "hmac-sha256",
            KeyAlgorithm::HmacSha384 => "hmac-sha384",
            KeyAlgorithm::HmacSha512 => "hmac-sha512",
        }
    }

    fn parse(s: &str) -> Option<KeyAlgorithm> {
        [KeyAlgorithm::HmacSha256, KeyAlgorithm::HmacSha384, KeyAlgorithm::HmacSha512]
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
    }

    fn hickory(self) -> TsigAlgorithm {
        match self {
            KeyAlgorithm::HmacSha256 => TsigAlgorithm::HmacSha256,
            KeyAlgorithm::HmacSha384 => TsigAlgorithm::HmacSha384,
            KeyAlgorithm::HmacSha512 => TsigAlgorithm::HmacSha512,
        }
    }
}

/// A TSIG key as the DNS server knows it: the name and algorithm must match
/// the server's, not only the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    pub name: String,
    pub algorithm: KeyAlgorithm,
    pub secret: Vec<u8>,
}

/// The secret stays out of logs.
impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .finish()
    }
}

impl TsigKey {
    /// Reads the one `key "NAME" { algorithm ALG; secret "BASE64"; };`
    /// statement of a BIND key file, as `tsig-keygen NAME` prints it (the
    /// same file can be `include`d by named.conf). Errors name the file.
    pub fn from_bind_file(path: &Path) -> Result<TsigKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read the TSIG key file: {e}", path.display()))?;
        parse_bind_key(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn signer(&self) -> Result<TSigner, String> {
        let name = Name::from_ascii(&self.name).map_err(|e| format!("TSIG key name `{}`: {e}", self.name))?;
        TSigner::new(self.secret.clone(), self.algorithm.hickory(), name, FUDGE)
            .map_err(|e| format!("TSIG key `{}`: {e}", self.name))
    }
}

/// The grammar of one `key` statement; comments (`#`, `//`, `/* */`) allowed.
fn parse_bind_key(text: &str) -> Result<TsigKey, String> {
    let tokens = tokenize(text)?;
    let mut t = tokens.iter().map(String::as_str);
    match t.next() {
        Some("key") => {}
        Some(other) => return Err(format!("expected a `key \"NAME\" {{ ... }};` statement, found `{other}`")),
        None => return Err("empty: expected a `key \"NAME\" { ... };` statement".into()),
    }
    let name = match t.next() {
        Some(n) if !matches!(n, "{" | "}" | ";") => n.trim_end_matches('.').to_string(),
        _ => return Err("the `key` statement has no name".into()),
    };
    if name.is_empty() || Name::from_ascii(&name).is_err() {
        return Err(format!("key name `{name}` is not a DNS name"));
    }
    if t.next() != Some("{") {
        return Err(format!("key \"{name}\": expected `{{` after the name"));
    }
    let (mut algorithm, mut secret) = (None, None);
    loop {
        match t.next() {
            Some("}") => break,
            Some(field @ ("algorithm" | "secret")) => {
                let value = t.next().filter(|v| !matches!(*v, "{" | "}" | ";"));
                let Some(value) = value else {
                    return Err(format!("key \"{name}\": `{field}` has no value"));
                };
                if t.next() != Some(";") {
                    return Err(format!("key \"{name}\": expected `;` after `{field} {value}`"));
                }
                if field == "algorithm" {
                    algorithm = Some(value);
                } else {
                    secret = Some(value);
                }
            }
            Some(other) => {
                return Err(format!("key \"{name}\": unexpected `{other}` (expected `algorithm`, `secret` or `}}`)"))
            }
            None => return Err(format!("key \"{name}\": missing `}};`")),
        }
    }
    if t.next() != Some(";") {
        return Err(format!("key \"{name}\": expected `;` after `}}`"));
    }
    if let Some(extra) = t.next() {
        return Err(format!("one key per file: unexpected `{extra}` after key \"{name}\""));
    }
    let algorithm = algorithm.ok_or_else(|| format!("key \"{name}\": no `algorithm`"))?;
    let algorithm = KeyAlgorithm::parse(algorithm).ok_or_else(|| {
        format!(
            "key \"{name}\": unsupported algorithm `{algorithm}` (supported: hmac-sha256, hmac-sha384, hmac-sha512)"
        )
    })?;
    let secret = secret.ok_or_else(|| format!("key \"{name}\": no `secret`"))?;
    let compact: String = secret.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let secret = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|e| format!("key \"{name}\": the secret is not base64: {e}"))?;
    if secret.is_empty() {
        return Err(format!("key \"{name}\": the secret is empty"));
    }
    Ok(TsigKey { name, algorithm, secret })
}

/// Words, quoted strings (without their quotes), and `{`, `}`, `;`.
fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '#' => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'/') => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                loop {
                    match chars.next() {
                        Some('/') if last == '*' => break,
                        Some(c) => last = c,
                        None => return Err("unterminated `/*` comment".into()),
                    }
                }
            }
            '{' | '}' | ';' => tokens.push(c.to_string()),
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => s.push(c),
                        None => return Err("unterminated quoted string".into()),
                    }
                }
                tokens.push(s);
            }
            c => {
                let mut s = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | '"') {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                tokens.push(s);
            }
        }
    }
    Ok(tokens)
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if c == '\n' {
            break;
        }
    }
}

/// Why an update did not happen (or may not have).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DcvError {
    /// The hostname, zone, value or key cannot make an update: fix the input.
    Input(String),
    /// No answer: connection failed or timed out. Worth retrying.
    Unreachable { server: SocketAddr, detail: String },
    /// The server answered with an error code (`rcode`: `NOTAUTH`,
    /// `REFUSED` ...): the configuration (key, zone, allow-update) is
    /// wrong, retrying will not help.
    Rejected { zone: String, server: SocketAddr, rcode: String, detail: String },
    /// An answer that cannot be trusted or read (not DNS, wrong id, TSIG
    /// missing or not verifying); the update may have been applied.
    BadAnswer { server: SocketAddr, detail: String },
}

impl fmt::Display for DcvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DcvError::Input(detail) => write!(f, "DCV update: {detail}"),
            DcvError::Unreachable { server, detail } => write!(f, "DCV update: DNS server {server}: {detail}"),
            DcvError::Rejected { zone, server, detail, .. } => {
                write!(f, "DCV update of zone {zone} rejected by {server}: {detail}")
            }
            DcvError::BadAnswer { server, detail } => {
                write!(
                    f,
                    "DCV update: the answer of {server} cannot be trusted ({detail}); the update may have been applied"
                )
            }
        }
    }
}

impl std::error::Error for DcvError {}

/// Writes `value` as the only TXT record at `<hostname>.<zone>` (TTL 60):
/// one UPDATE that deletes the RRset and adds the value, so a retried or
/// renewed order never leaves an old value beside the new one.
pub async fn publish(cfg: &DcvConfig, hostname: &str, value: &str) -> Result<(), DcvError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(DcvError::Input(format!("TXT value {value:?}: expected printable ASCII (an ACME DNS-01 digest)")));
    }
    let (name, zone) = names(cfg, hostname)?;
    // One record of strings of at most 255 bytes each (RFC 1035 3.3.14).
    let strings = value.as_bytes().chunks(255).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    let txt = Record::from_rdata(name.clone(), TTL, RData::TXT(TXT::new(strings)));
    let mut message = update_message::delete_rrset(Record::update0(name, 0, RecordType::TXT), zone, false);
    message.add_update(txt);
    send(cfg, message).await
}

/// Deletes the TXT RRset at `<hostname>.<zone>`; deleting what is not
/// there succeeds (RFC 2136 3.4.2.3), so a repeated withdraw is harmless.
pub async fn withdraw(cfg: &DcvConfig, hostname: &str) -> Result<(), DcvError> {
    let (name, zone) = names(cfg, hostname)?;
    let message = update_message::delete_rrset(Record::update0(name, 0, RecordType::TXT), zone, false);
    send(cfg, message).await
}

/// The record the customer adds once, as a zone-file line:
/// `_acme-challenge.shop.example. CNAME shop.example.dcv.saas.example.`.
/// A wildcard `*.shop.example` shares it with `shop.example` (RFC 8555 8.4).
pub fn delegation_record(hostname: &str, zone: &str) -> String {
    let (host, zone) = (bare(hostname), bare(zone));
    format!("{CHALLENGE_LABEL}.{host}. CNAME {host}.{zone}.")
}

/// What `_acme-challenge.<hostname>` says about the delegation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delegation {
    /// A CNAME to `<hostname>.<zone>`: values the service publishes are
    /// what the CA sees.
    Ready,
    /// No CNAME, or one to elsewhere. `advice` is a sentence for the customer.
    Missing { found: Option<String>, advice: String },
}

/// Asks DNS whether the customer's CNAME is in place. `Err`: DNS did not
/// answer, which says nothing about the delegation (ask again later).
pub async fn delegation_ok<D: Dns>(dns: &D, hostname: &str, zone: &str) -> Result<Delegation, DnsError> {
    let (host, zone) = (bare(hostname), bare(zone));
    let challenge = format!("{CHALLENGE_LABEL}.{host}");
    let want = format!("{host}.{zone}");
    let add = delegation_record(&host, &zone);
    let reply = dns.query(&challenge, Rtype::Cname).await?;
    Ok(match reply {
        Reply::Cname { target, .. } if bare(&target) == want => Delegation::Ready,
        Reply::Cname { target, .. } => {
            let advice = format!(
                "`{challenge}.` is a CNAME to `{}.`, not to `{want}.`: replace it with `{add}`",
                target.trim_end_matches('.')
            );
            Delegation::Missing { found: Some(target), advice }
        }
        Reply::NxDomain { .. } => {
            Delegation::Missing { found: None, advice: format!("`{challenge}.` does not exist: add `{add}`") }
        }
        // NODATA: the name holds other records (a TXT written by hand is the
        // usual one), which a CNAME cannot sit beside.
        _ => Delegation::Missing {
            found: None,
            advice: format!("`{challenge}.` has no CNAME: remove its other records and add `{add}`"),
        },
    })
}

/// Lowercase, no trailing dot, no leading `*.`.
fn bare(name: &str) -> String {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    match name.strip_prefix("*.") {
        Some(rest) => rest.to_string(),
        None => name,
    }
}

/// `<hostname>.<zone>.` and `<zone>.`, checked.
fn names(cfg: &DcvConfig, hostname: &str) -> Result<(Name, Name), DcvError> {
    let (host, zone) = (bare(hostname), bare(&cfg.zone));
    crate::dns::check_name(&host).map_err(|e| DcvError::Input(format!("hostname `{host}`: {e}")))?;
    crate::dns::check_name(&zone).map_err(|e| DcvError::Input(format!("DCV zone `{zone}`: {e}")))?;
    let full = format!("{host}.{zone}");
    crate::dns::check_name(&full).map_err(|e| DcvError::Input(format!("`{full}`: {e}")))?;
    let name = Name::from_ascii(format!("{full}.")).map_err(|e| DcvError::Input(format!("`{full}`: {e}")))?;
    let zone = Name::from_ascii(format!("{zone}.")).map_err(|e| DcvError::Input(format!("`{zone}`: {e}")))?;
    Ok((name, zone))
}

/// Signs `message`, sends it, and checks the answer: its id, its code, and
/// (when it says NOERROR) its TSIG, so a success is the server's word.
async fn send(cfg: &DcvConfig, mut message: Message) -> Result<(), DcvError> {
    let server = cfg.server;
    let zone = bare(&cfg.zone);
    let signer = cfg.tsig.signer().map_err(DcvError::Input)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let now = u32::try_from(now).map_err(|_| DcvError::Input("the clock is past 2106".into()))?;
    let verifier = message.finalize(&signer, now).map_err(|e| DcvError::Input(format!("signing the update: {e}")))?;
    let request = message.to_vec().map_err(|e| DcvError::Input(format!("encoding the update: {e}")))?;
    let answer = match tokio::time::timeout(TIMEOUT, exchange(server, &request)).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => return Err(DcvError::Unreachable { server, detail: e.to_string() }),
        Err(_) => {
            return Err(DcvError::Unreachable { server, detail: format!("no answer within {} s", TIMEOUT.as_secs()) })
        }
    };
    let bad = |detail: String| DcvError::BadAnswer { server, detail };
    let response = Message::from_vec(&answer).map_err(|e| bad(format!("not a DNS message: {e}")))?;
    if response.id() != message.id()
        || response.message_type() != MessageType::Response
        || response.op_code() != OpCode::Update
    {
        return Err(bad("not the answer to this update (id, QR or opcode differ)".into()));
    }
    let rcode = response.response_code();
    if rcode != ResponseCode::NoError {
        // Not verified: an unknown key or a bad signature come back unsigned,
        // and a forged refusal can only make us fail.
        let detail = rejection(&cfg.tsig.name, &zone, rcode, tsig_error(&response));
        return Err(DcvError::Rejected { zone, server, rcode: mnemonic(rcode), detail });
    }
    if response.signature().is_empty() {
        return Err(bad(format!("NOERROR without a TSIG signature by key `{}`", cfg.tsig.name)));
    }
    match verifier {
        Some(mut verify) => verify(&answer).map(|_| ()).map_err(|e| bad(format!("TSIG: {e}"))),
        None => Err(bad("no TSIG verifier".into())),
    }
}

/// One length-prefixed message each way over TCP (RFC 1035 4.2.2).
async fn exchange(server: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let len = u16::try_from(request.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "update larger than 64 KiB"))?;
    let mut stream = tokio::net::TcpStream::connect(server).await?;
    let mut framed = Vec::with_capacity(request.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(request);
    stream.write_all(&framed).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut answer).await?;
    Ok(answer)
}

/// The TSIG error field of the answer's TSIG record (BADSIG, BADKEY,
/// BADTIME ...), which hickory parses but does not expose: re-encoded, it
/// sits after the algorithm name, time, fudge, MAC and original id.
fn tsig_error(response: &Message) -> Option<u16> {
    let record = response.signature().first()?;
    let RData::DNSSEC(DNSSECRData::TSIG(tsig)) = record.data() else {
        return None;
    };
    let rdata = tsig.to_bytes().ok()?;
    let algorithm = tsig.algorithm().to_name().to_bytes().ok()?.len();
    let at = algorithm + 6 + 2 + 2 + tsig.mac().len() + 2;
    let bytes = rdata.get(at..at + 2)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

/// A sentence for the operator: what the code means for this key and zone.
fn rejection(key: &str, zone: &str, rcode: ResponseCode, tsig_error: Option<u16>) -> String {
    match (rcode, tsig_error) {
        (ResponseCode::NotAuth, Some(17)) => {
            format!("NOTAUTH/BADKEY: the server does not know TSIG key `{key}` with this algorithm")
        }
        (ResponseCode::NotAuth, Some(16)) => {
            format!(
                "NOTAUTH/BADSIG: the signature by key `{key}` does not verify (the secret differs from the server's)"
            )
        }
        (ResponseCode::NotAuth, Some(18)) => {
            format!("NOTAUTH/BADTIME: this clock and the server's differ by more than {FUDGE} s")
        }
        (ResponseCode::NotAuth, _) => format!("NOTAUTH: the server is not authoritative for zone {zone}"),
        (ResponseCode::Refused, _) => {
            format!("REFUSED: key `{key}` may not update zone {zone} (its allow-update or update-policy)")
        }
        (ResponseCode::NotZone, _) => format!("NOTZONE: the name is not in zone {zone}"),
        (ResponseCode::ServFail, _) => "SERVFAIL: the server could not apply the update (see its log)".into(),
        (code, _) => format!("{}: {}", mnemonic(code), code.to_str()),
    }
}

/// The RFC's name of a response code (`NOTAUTH`, not "Not authorized").
fn mnemonic(code: ResponseCode) -> String {
    match code {
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::YXDomain => "YXDOMAIN".into(),
        ResponseCode::YXRRSet => "YXRRSET".into(),
        ResponseCode::NXRRSet => "NXRRSET".into(),
        ResponseCode::NotAuth => "NOTAUTH".into(),
        ResponseCode::NotZone => "NOTZONE".into(),
        code => format!("RCODE {}", u16::from(code)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "key \"dcv-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg==\";\n};\n";

    fn file(tag: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("cname-guard-dcv-{tag}-{}.key", std::process::id()));
        std::fs::write(&path, text).expect("write key file");
        path
    }

    #[test]
    fn reads_the_file_tsig_keygen_prints() {
        let path = file("good", GOOD);
        let key = TsigKey::from_bind_file(&path);
        let _ = std::fs::remove_file(&path);
        let key = key.expect("good key");
        assert_eq!(key.name, "dcv-key");
        assert_eq!(key.algorithm, KeyAlgorithm::HmacSha256);
        assert_eq!(key.secret, b"secret-secret-secret-secret-32b".to_vec());
        assert!(!format!("{key:?}").contains("c2Vj"), "Debug shows no secret");
    }

    #[test]
    fn comments_unquoted_names_and_sha512() {
        let text = "# made by hand\nkey dcv.saas.example. { // the zone's key\n algorithm HMAC-SHA512; /* long\n one */ secret \"AAEC\"; };";
        let key = parse_bind_key(text).expect("key");
        assert_eq!(key.name, "dcv.saas.example");
        assert_eq!(key.algorithm, KeyAlgorithm::HmacSha512);
        assert_eq!(key.secret, vec![0, 1, 2]);
    }

    #[test]
    fn errors_name_the_file_and_the_fault() {
        let path = file("nosecret", "key \"k\" { algorithm hmac-sha256; };");
        let err = TsigKey::from_bind_file(&path).expect_err("no secret");
        let _ = std::fs::remove_file(&path);
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(err.contains("no `secret`"), "{err}");

        let missing = std::env::temp_dir().join("cname-guard-dcv-no-such.key");
        let err = TsigKey::from_bind_file(&missing).expect_err("no file");
        assert!(err.contains("no-such.key") && err.contains("cannot read"), "{err}");
    }

    #[test]
    fn bad_base64_unknown_algorithm_and_other_faults() {
        let cases = [
            ("key \"k\" { algorithm hmac-sha256; secret \"not*base64\"; };", "not base64"),
            ("key \"k\" { algorithm hmac-md5; secret \"AAEC\"; };", "unsupported algorithm `hmac-md5`"),
            ("key \"k\" { secret \"AAEC\"; };", "no `algorithm`"),
            ("key \"k\" { algorithm hmac-sha256; secret \"\"; };", "secret is empty"),
            ("key \"k\" { algorithm hmac-sha256; secret \"AAEC\"; }", "expected `;` after `}`"),
            ("key \"k\" { algorithm hmac-sha256 secret \"AAEC\"; };", "expected `;` after `algorithm hmac-sha256`"),
            ("key \"k\" { algorithm hmac-sha256; secret \"AAEC; };", "unterminated"),
            ("options { };", "expected a `key"),
            ("", "empty"),
        ];
        for (text, want) in cases {
            let err = parse_bind_key(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
        }
        let two = format!("{GOOD}{GOOD}");
        assert!(parse_bind_key(&two).expect_err("two keys").contains("one key per file"));
    }

    #[test]
    fn the_record_customers_add() {
        assert_eq!(
            delegation_record("Shop.Example.", "dcv.saas.example"),
            "_acme-challenge.shop.example. CNAME shop.example.dcv.saas.example."
        );
        assert_eq!(
            delegation_record("*.shop.example", "dcv.saas.example."),
            delegation_record("shop.example", "dcv.saas.example")
        );
    }

    #[test]
    fn rejections_say_what_to_fix() {
        assert!(rejection("k", "z", ResponseCode::NotAuth, Some(16)).contains("BADSIG"));
        assert!(rejection("k", "z", ResponseCode::NotAuth, Some(17)).contains("does not know TSIG key `k`"));
        assert!(rejection("k", "z", ResponseCode::NotAuth, None).contains("not authoritative for zone z"));
        assert!(rejection("k", "z", ResponseCode::Refused, None).contains("may not update zone z"));
    }
}
