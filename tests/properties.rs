//! Property tests of the parsers and renderers that see hostile input:
//! the authority, lookup answers, the pages, the cache and lock encodings,
//! Accept. Native and fast (a few hundred cases each); the cargo-fuzz
//! targets under fuzz/ explore the same functions much longer, and their
//! checked-in seed corpora are replayed here.

use cname_guard_core::accept::{negotiate, Format};
use cname_guard_core::authority::{normalize, Authority};
use cname_guard_core::cache::{decode_slot, Entry};
use cname_guard_core::coalesce::{Lock, MAX_WAITERS};
use cname_guard_core::lookup::{parse_answer, safe_account, Answer, LookupError, MAX_BODY};
use cname_guard_core::page::{escape_html, render, Page, Problem};
use cname_guard_core::tls::{https_location, misdirected};
use cname_guard_core::verdict::{ErrorCode, Verdict};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

#[path = "oracle/json.rs"]
mod json_oracle;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// --- strategies ------------------------------------------------------------

/// An LDH label: letters, digits, inner hyphens, 1 to 63 characters.
fn label() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9]", "[a-z0-9][a-z0-9-]{0,61}[a-z0-9]", Just("a".repeat(63)),]
}

/// A valid normalized host name: labels under 64, at most 253 in all, and
/// a last label with a letter (an all-digit one reads as IPv4).
fn name() -> impl Strategy<Value = String> {
    (prop::collection::vec(label(), 0..5), "[a-z][a-z0-9-]{0,20}[a-z0-9]")
        .prop_map(|(mut labels, tld)| {
            labels.push(tld);
            labels.join(".")
        })
        .prop_filter("at most 253 characters", |n| n.len() <= 253)
}

/// Strings that look like authorities: the characters that matter.
fn authority_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9.:\\-\\[\\]_]{0,80}",
        "[a-z0-9.]{0,300}",
        "[0-9.:]{0,24}",
        "\\[[0-9a-fA-F:.]{0,40}\\](:[0-9]{0,6})?",
        any::<String>(),
    ]
}

/// Any string, and some made of what markup and JSON are made of.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[<>\"'&/=a-z \\\\\\n\\r\\t\\u{0}\\u{2028}\\u{7f}]{0,60}",
        Just("<script>alert(1)</script>".to_string()),
        Just("\"><img src=x onerror=alert(1)>".to_string()),
        Just("</title><svg onload=alert(1)>".to_string()),
        Just("\\u003c\"}],\"host\":\"evil".to_string()),
    ]
}

fn problem() -> impl Strategy<Value = Problem> {
    prop_oneof![
        prop::sample::select(ErrorCode::ALL.to_vec()).prop_map(Problem::Code),
        Just(Problem::Unavailable),
        Just(Problem::Misdirected),
    ]
}

fn format() -> impl Strategy<Value = Format> {
    prop::sample::select(vec![Format::Html, Format::Json, Format::Text])
}

fn verdict() -> impl Strategy<Value = Option<Verdict>> {
    prop_oneof![
        ("[A-Za-z0-9._:-]{1,128}", any::<bool>()).prop_map(|(account, https)| Some(Verdict::Allow { account, https })),
        prop::sample::select(ErrorCode::ALL.to_vec()).prop_map(|c| Some(Verdict::Deny(c))),
        Just(None),
    ]
}

fn status() -> impl Strategy<Value = Option<&'static str>> {
    prop::sample::select(vec![Some("200"), Some("200"), Some("404"), Some("500"), Some("20"), Some(""), None])
}

// --- authority ---------------------------------------------------------------

fn assert_valid_name(n: &str) {
    assert!((1..=253).contains(&n.len()), "{n:?}");
    assert!(n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'), "{n:?}");
    assert!(n.split('.').all(|l| (1..=63).contains(&l.len())), "{n:?}");
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn normalization_is_idempotent_and_never_yields_an_invalid_name(raw in authority_like()) {
        match normalize(raw.as_bytes().to_vec()) {
            Ok(Authority::Name(n)) => {
                assert_valid_name(&n);
                prop_assert_eq!(normalize(n.clone().into_bytes()), Ok(Authority::Name(n)));
            }
            Ok(Authority::IpLiteral { .. }) => {
                let again = matches!(normalize(raw.as_bytes().to_vec()), Ok(Authority::IpLiteral { .. }));
                prop_assert!(again, "an IP literal once, an IP literal always");
            }
            Err(e) => prop_assert!(!e.reason().is_empty()),
        }
    }

    #[test]
    fn normalization_of_arbitrary_bytes(raw in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(Authority::Name(n)) = normalize(raw) {
            assert_valid_name(&n);
            prop_assert_eq!(normalize(n.clone().into_bytes()), Ok(Authority::Name(n)));
        }
    }

    #[test]
    fn every_valid_name_round_trips(
        n in name(),
        upper in prop::collection::vec(any::<bool>(), 253),
        port in 0u32..=65535,
        dot in any::<bool>(),
    ) {
        let same = Ok(Authority::Name(n.clone()));
        prop_assert_eq!(normalize(n.clone().into_bytes()), same.clone());
        let mixed: String = n.chars().zip(&upper).map(|(c, &u)| if u { c.to_ascii_uppercase() } else { c }).collect();
        prop_assert_eq!(normalize(mixed.clone().into_bytes()), same.clone());
        prop_assert_eq!(normalize(format!("{n}.").into_bytes()), same.clone());
        prop_assert_eq!(normalize(format!("{n}:{port}").into_bytes()), same.clone());
        prop_assert_eq!(normalize(format!("{n}:").into_bytes()), same.clone());
        let dotted = if dot { format!("{mixed}.:{port}") } else { format!("{mixed}:{port}") };
        prop_assert_eq!(normalize(dotted.into_bytes()), same);
        // And what is not a name stays refused: two trailing dots, a bad port.
        for bad in [format!("{n}.."), format!("{n}:{}", 65536 + port), format!("{n}:x{port}")] {
            let refused = normalize(bad.into_bytes()).is_err();
            prop_assert!(refused);
        }
    }
}

// --- the SNI check (421) -------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    /// An SNI naming the request's host, in any case and with or without
    /// one trailing dot, is never misdirected; with anything appended or
    /// prepended it always is.
    #[test]
    fn the_sni_of_the_host_passes_and_no_other(
        n in name(),
        upper in prop::collection::vec(any::<bool>(), 253),
        dot in any::<bool>(),
        extra in "[a-z0-9.:*_-]{1,8}",
    ) {
        let mixed: String = n.chars().zip(&upper).map(|(c, &u)| if u { c.to_ascii_uppercase() } else { c }).collect();
        let sni = if dot { format!("{mixed}.") } else { mixed };
        prop_assert!(!misdirected(Some(sni.as_bytes()), &n));
        // `extra` may be the one trailing dot the check ignores.
        let appended = format!("{n}{extra}");
        let refused = extra == "." || misdirected(Some(appended.as_bytes()), &n);
        prop_assert!(refused, "{} passed for {}", appended, n);
        let prepended = format!("{extra}{n}");
        let refused = misdirected(Some(prepended.as_bytes()), &n);
        prop_assert!(refused, "{} passed for {}", prepended, n);
    }

    /// Any SNI bytes against any authority: an answer, never a panic, and
    /// no SNI is never misdirected.
    #[test]
    fn any_sni_against_any_authority(sni in prop::collection::vec(any::<u8>(), 0..300), raw in authority_like()) {
        if let Ok(Authority::Name(host) | Authority::IpLiteral(host)) = normalize(raw.into_bytes()) {
            let _ = misdirected(Some(&sni), &host);
            prop_assert!(!misdirected(None, &host));
            prop_assert!(!misdirected(Some(b""), &host));
        }
    }
}

// --- the redirect to HTTPS (308) ---------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    /// Any `:path` bytes: no redirect, or one to the same host over HTTPS
    /// whose location is one clean header line that gives back the path
    /// once its percent-encoded bytes are read back (only bytes outside
    /// visible ASCII are encoded, and `%` itself is kept).
    #[test]
    fn the_location_is_the_path_on_https(
        n in name(),
        start in prop::sample::select(vec!["", "/", "/", "/.well-known/acme-challenge", "/.Well-Known/ACME-challenge/", "*"]),
        tail in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let path = [start.as_bytes(), &tail].concat();
        let acme = path.to_ascii_lowercase().strip_prefix(b"/.well-known/acme-challenge".as_slice())
            .is_some_and(|rest| matches!(rest.first(), None | Some(b'/' | b'?')));
        let Some(loc) = https_location(&n, &path) else {
            prop_assert!(path.first() != Some(&b'/') || acme, "{:?} not redirected", path);
            return Ok(());
        };
        prop_assert!(!acme, "the ACME path {:?} redirected", path);
        let prefix = format!("https://{n}/");
        prop_assert!(loc.starts_with(&prefix), "{}", loc);
        prop_assert!(loc.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{:?}", loc);
        let rest = &loc.as_bytes()[prefix.len() - 1..];
        let mut back = Vec::new();
        let mut i = 0;
        while i < rest.len() {
            let printable = path.get(back.len()).is_some_and(|b| (0x21..=0x7e).contains(b));
            if !printable && rest[i] == b'%' {
                let hex = std::str::from_utf8(&rest[i + 1..i + 3]).expect("hex");
                back.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 3;
            } else {
                back.push(rest[i]);
                i += 1;
            }
        }
        prop_assert_eq!(back, path);
    }
}

// --- pages -------------------------------------------------------------------

fn count(s: &str, c: char) -> usize {
    s.matches(c).count()
}

proptest! {
    #![proptest_config(config(384))]

    /// Whatever the host and ray id, the HTML page has exactly the markup
    /// of the template: the host and ray add no `<`, `>` or `"`.
    #[test]
    fn html_never_echoes_markup(
        host in hostile_text(), ray in hostile_text(), p in problem(), status in 400u16..600, now in any::<u64>(),
    ) {
        let page = |host: &str, ray: &str| render(&Page { problem: p, host, status, ray, now_secs: now }, Format::Html).1;
        let body = page(&host, &ray);
        let template = page("h.example", "0123456789abcdef-ARN");
        for c in ['<', '>', '"'] {
            prop_assert_eq!(count(&body, c), count(&template, c), "{:?} added by host/ray", c);
        }
        let lower = body.to_ascii_lowercase();
        for tag in ["<script", "<img", "<svg", "<iframe", "<object", "<embed", "<a ", "<form", "<base"] {
            prop_assert!(!lower.contains(tag), "{} in the page", tag);
        }
        let title = format!("<title>{} | Error", escape_html(&host));
        prop_assert!(body.contains(&title), "escaped host in the title");
        prop_assert!(body.contains(&escape_html(&ray)));
        prop_assert!(body.starts_with("<!doctype html>") && body.trim_end().ends_with("</html>"));
    }

    /// The problem JSON always parses and carries host and ray verbatim,
    /// with no raw `<` or `>` anywhere.
    #[test]
    fn json_is_well_formed_and_round_trips(
        host in hostile_text(), ray in hostile_text(), p in problem(), status in 400u16..600, now in any::<u64>(),
    ) {
        let (ct, body) = render(&Page { problem: p, host: &host, status, ray: &ray, now_secs: now }, Format::Json);
        prop_assert_eq!(ct, "application/problem+json");
        let v: Value = serde_json::from_str(&body).map_err(|e| TestCaseError::fail(format!("{e}: {body}")))?;
        prop_assert_eq!(v["host"].as_str(), Some(host.as_str()));
        prop_assert_eq!(v["ray_id"].as_str(), Some(ray.as_str()));
        let instance = format!("urn:cname-guard:ray:{ray}");
        prop_assert_eq!(v["instance"].as_str(), Some(instance.as_str()));
        prop_assert_eq!(v["status"].as_u64(), Some(u64::from(status)));
        prop_assert!(!body.contains('<') && !body.contains('>'), "raw markup in {}", body);
        prop_assert!(!body.trim_end().chars().any(|c| (c as u32) < 0x20), "raw control character");
        for key in ["type", "title", "detail", "error_name"] {
            prop_assert!(v[key].is_string(), "{}", key);
        }
        prop_assert!(v["retryable"].is_boolean() && v["owner_action_required"].is_boolean());
    }

    #[test]
    fn plain_text_never_echoes_the_host(host in hostile_text(), ray in hostile_text(), p in problem(), any_format in format()) {
        let page = Page { problem: p, host: &host, status: 409, ray: &ray, now_secs: 0 };
        let (_, body) = render(&page, Format::Text);
        prop_assert!(body.starts_with("error code: ") && body.ends_with('\n') && body.lines().count() == 1);
        prop_assert!(body.is_ascii() && !body.contains('<'));
        // Every format renders (and so never panics).
        prop_assert!(!render(&page, any_format).1.is_empty());
    }
}

// --- lookup answers ------------------------------------------------------------

const ASKED: &str = "custom.myclientsite.com";

/// A value of any JSON type a field could be given.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop::sample::select(vec![
            json!(0),
            json!(60),
            json!(-1),
            json!(1.5),
            json!(u64::MAX),
            json!(1.8446744073709552e19)
        ]),
        prop::sample::select(vec![
            "acct-1",
            "Acct_1.eu:prod-2",
            "",
            "a b",
            "acct\r\nx-evil: 1",
            "ä",
            "acct;1",
            "acct\u{0}",
            "active",
            "pending",
            "blocked",
            ASKED,
            "Custom.MyClientSite.COM",
            "evil.example",
        ])
        .prop_map(|s| Value::String(s.to_string())),
        Just(Value::String("a".repeat(128))),
        Just(Value::String("a".repeat(129))),
        Just(json!([])),
        Just(json!({})),
    ]
}

const FIELDS: [&str; 9] = [
    "host",
    "account",
    "cname_target",
    "target_account",
    "custom_hostname",
    "origin_resolves",
    "suspended",
    "ttl",
    "https",
];

/// A record: each contract field missing, well-typed or not.
fn record() -> impl Strategy<Value = Map<String, Value>> {
    let field = |good: BoxedStrategy<Value>| prop::option::weighted(0.9, prop_oneof![4 => good, 1 => field_value()]);
    let s = |v: &[&str]| prop::sample::select(v.iter().map(|s| json!(s)).collect::<Vec<_>>()).boxed();
    let account = || prop_oneof![Just(Value::Null), s(&["acct-1", "acct-2", "Acct_1.eu:prod-2"])].boxed();
    (
        field(s(&[ASKED, "CUSTOM.myclientsite.com", "evil.example"])),
        field(account()),
        field(prop_oneof![Just(Value::Null), s(&["edge.saas.example"])].boxed()),
        field(account()),
        field(prop_oneof![Just(Value::Null), s(&["active", "pending", "moved", "blocked", "other"])].boxed()),
        field(any::<bool>().prop_map(Value::Bool).boxed()),
        field(any::<bool>().prop_map(Value::Bool).boxed()),
        field(prop_oneof![Just(Value::Null), (0u64..100_000).prop_map(|n| json!(n))].boxed()),
        field(any::<bool>().prop_map(Value::Bool).boxed()),
        any::<bool>(),
    )
        .prop_map(|(a, b, c, d, e, f, g, h, i, extra)| {
            let mut m = Map::new();
            for (k, v) in FIELDS.iter().zip([a, b, c, d, e, f, g, h, i]) {
                if let Some(v) = v {
                    m.insert(k.to_string(), v);
                }
            }
            if extra {
                m.insert("unknown_extra".into(), json!({"nested": [1, "x"]}));
            }
            m
        })
}

/// What contract v1 says a record must read as: an independent oracle.
/// An invalid record may have several faults; the parser may name any.
fn expected(m: &Map<String, Value>) -> Result<Answer, Vec<&'static str>> {
    let mut faults = Vec::new();
    let opt_str = |k: &str, faults: &mut Vec<&'static str>| match m.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            faults.push("malformed");
            None
        }
    };
    match m.get("host") {
        Some(Value::String(h)) if h.eq_ignore_ascii_case(ASKED) => {}
        Some(Value::String(_)) => faults.push("host"),
        _ => faults.push("malformed"),
    }
    let account = opt_str("account", &mut faults);
    opt_str("cname_target", &mut faults);
    let target_account = opt_str("target_account", &mut faults);
    let custom_hostname = opt_str("custom_hostname", &mut faults);
    let origin_resolves = match m.get("origin_resolves") {
        Some(Value::Bool(b)) => *b,
        _ => {
            faults.push("malformed");
            false
        }
    };
    let suspended = match m.get("suspended") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            faults.push("malformed");
            false
        }
    };
    let ttl = match m.get("ttl") {
        None | Some(Value::Null) => None,
        Some(v) => {
            if v.as_u64().is_none() {
                faults.push("malformed");
            }
            v.as_u64()
        }
    };
    let https = match m.get("https") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            faults.push("malformed");
            false
        }
    };
    if [&account, &target_account].into_iter().flatten().any(|a| !safe_account(a)) {
        faults.push("account");
    }
    if !faults.is_empty() {
        return Err(faults);
    }
    Ok(Answer::Found(cname_guard_core::lookup::Record {
        account,
        target_account,
        custom_hostname,
        origin_resolves,
        suspended,
        ttl,
        https,
    }))
}

fn fault_of(e: &LookupError) -> &'static str {
    match e {
        LookupError::Malformed(_) => "malformed",
        LookupError::HostMismatch => "host",
        LookupError::BadAccount => "account",
        _ => "other",
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Records of every shape read exactly as the contract says.
    #[test]
    fn records_read_as_the_contract_says(m in record()) {
        let body = serde_json::to_vec(&Value::Object(m.clone())).expect("serialize");
        let got = parse_answer(Some("200"), body.len(), &body, ASKED);
        match (expected(&m), &got) {
            (Ok(want), Ok(got)) => prop_assert_eq!(&want, got),
            (Err(faults), Err(e)) if faults.contains(&fault_of(e)) => {}
            (want, got) => prop_assert!(false, "{} read as {:?}, expected {:?}", String::from_utf8_lossy(&body), got, want),
        }
        if let Ok(Answer::Found(r)) = &got {
            for id in [&r.account, &r.target_account].into_iter().flatten() {
                prop_assert!(safe_account(id) && !id.contains(['\r', '\n', ' ', ';', ',']));
            }
        }
    }

    /// Any bytes, any status: a record or an error, never a panic.
    #[test]
    fn any_body_is_a_record_or_an_error(
        st in status(),
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            "[\\[\\]{}\":,0-9a-z_ .\\-\\\\]{0,200}".prop_map(String::into_bytes),
            any::<String>().prop_map(String::into_bytes),
        ],
        extra in 0usize..2,
    ) {
        let reported = body.len() + extra * MAX_BODY;
        match parse_answer(st, reported, &body, ASKED) {
            Ok(Answer::Found(r)) => {
                prop_assert_eq!(st, Some("200"));
                prop_assert!(reported <= MAX_BODY);
                for id in [&r.account, &r.target_account].into_iter().flatten() {
                    prop_assert!(safe_account(id));
                }
            }
            Ok(Answer::Unknown) => prop_assert_eq!(st, Some("404")),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// Account ids outside `A-Za-z0-9._:-` or 1..128 are refused wherever they appear.
    #[test]
    fn unsafe_accounts_are_refused(id in any::<String>(), as_target in any::<bool>()) {
        let (account, target) = if as_target { ("acct-1", id.as_str()) } else { (id.as_str(), "acct-2") };
        let body = json!({"host": ASKED, "account": account, "cname_target": "edge.saas.example",
            "target_account": target, "custom_hostname": "active", "origin_resolves": true}).to_string();
        let got = parse_answer(Some("200"), body.len(), body.as_bytes(), ASKED);
        let safe = (1..=128).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
        prop_assert_eq!(safe, got.is_ok(), "{:?} -> {:?}", id, got);
        if !safe {
            prop_assert_eq!(got, Err(LookupError::BadAccount));
        }
    }
}

// --- the JSON reader behind both (src/json.rs), against serde_json -----------------

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e300f64..1e300).prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
        "[\\\\\"\u{0}-\u{1f}\u{7f}\u{2028}\u{fffd}a]{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config(384))]

    /// Every document serde_json writes, compact or pretty, reads the same.
    #[test]
    fn json_reads_what_serde_json_writes(v in json_value(), pretty in any::<bool>()) {
        let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) }.expect("serialize");
        let ours = cname_guard_core::json::parse(text.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        prop_assert!(json_oracle::same(&ours, &v), "{:?} read as {:?}", text, ours);
    }

    /// On any text, we accept only what serde_json accepts, and refuse
    /// what it accepts only for duplicate keys or depth.
    #[test]
    fn json_agrees_with_serde_json_on_any_text(raw in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        "[\\[\\]{}\":,0-9a-z .eE+\\-\\\\/]{0,120}".prop_map(String::into_bytes),
        any::<String>().prop_map(String::into_bytes),
    ]) {
        if let Err(why) = json_oracle::agree(&raw) {
            return Err(TestCaseError::fail(why));
        }
    }
}

// --- cache slots and locks -----------------------------------------------------

/// A slot value with its use note (byte 20 of the header) cleared.
fn unnoted(slot: &[u8]) -> Vec<u8> {
    let mut b = slot.to_vec();
    if let Some(uses) = b.get_mut(20) {
        *uses = 0;
    }
    b
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn slot_entries_round_trip(host in name(), v in verdict(), fresh in any::<u64>(), stale in any::<u64>()) {
        let e = Entry { verdict: v, fresh_until: fresh, stale_until: stale };
        let bytes = e.encode(&host);
        prop_assert_eq!(Entry::decode(&bytes, &host), Some(e.clone()));
        let other = format!("x{host}");
        prop_assert_eq!(Entry::decode(&bytes, &other), None);
        let (h, decoded) = decode_slot(&bytes).expect("decodes");
        prop_assert_eq!(h, host.as_bytes());
        prop_assert_eq!(decoded, e);
        // Every strict prefix is refused, never misread.
        for cut in 0..bytes.len() {
            prop_assert_eq!(decode_slot(&bytes[..cut]).map(|(h, _)| h.len()), None);
        }
    }

    #[test]
    fn slot_decoding_of_arbitrary_bytes_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        host in name(), v in verdict(), at in any::<prop::sample::Index>(), with in any::<u8>(),
    ) {
        if let Some((h, e)) = decode_slot(&bytes) {
            // What decodes is canonical: it encodes back to the same bytes,
            // but for the use note (byte 20), which `encode` leaves at 0.
            if let Ok(h) = std::str::from_utf8(h) {
                prop_assert_eq!(e.encode(h), unnoted(&bytes));
            }
        }
        // A valid slot with one byte changed: decoded consistently or refused.
        let mut b = Entry { verdict: v, fresh_until: 1, stale_until: 2 }.encode(&host);
        let i = at.index(b.len());
        b[i] = with;
        if let Some((h, e)) = decode_slot(&b) {
            if let Ok(h) = std::str::from_utf8(h) {
                prop_assert_eq!(e.encode(h), unnoted(&b));
            }
        }
    }

    #[test]
    fn locks_round_trip(host in name(), deadline in any::<u64>(), waiters in prop::collection::vec(any::<u32>(), 0..=MAX_WAITERS)) {
        let l = Lock { host, deadline, waiters };
        let bytes = l.encode();
        prop_assert_eq!(Lock::decode(&bytes), Some(l));
        for cut in 0..bytes.len() {
            prop_assert_eq!(Lock::decode(&bytes[..cut]), None);
        }
    }

    #[test]
    fn lock_decoding_of_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Some(l) = Lock::decode(&bytes) {
            if l.waiters.len() <= MAX_WAITERS {
                prop_assert_eq!(l.encode(), bytes);
            }
        }
    }
}

// --- Accept --------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn accept_never_panics_and_ignores_case(raw in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        "([a-zA-Z*+/]{0,20}(;[qQ]=[0-9.]{0,6})?, ?){0,8}".prop_map(String::into_bytes),
    ]) {
        let f = negotiate(Some(&raw));
        prop_assert_eq!(negotiate(Some(&raw.to_ascii_uppercase())), f);
        if std::str::from_utf8(&raw).is_err() {
            prop_assert_eq!(f, Format::Html);
        }
    }

    #[test]
    fn a_single_accepted_type_is_chosen(f in format(), q in 1u16..=1000) {
        let media = match f {
            Format::Html => "text/html",
            Format::Json => "application/problem+json",
            Format::Text => "text/plain",
        };
        let q = if q == 1000 { "1".to_string() } else { format!("0.{q:03}") };
        for accept in [format!("{media};q={q}"), format!("image/webp, {media};q={q}, */*;q=0")] {
            let chosen = negotiate(Some(accept.as_bytes()));
            prop_assert_eq!(chosen, f);
        }
    }
}

// --- the fuzzers' seed corpora ---------------------------------------------------

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    entries.filter_map(|e| std::fs::read(e.ok()?.path()).ok()).collect()
}

/// The checked-in seeds go through the parsers on every `cargo test`; the
/// encoded ones (slots and locks) must decode, except the garbage seeds.
#[test]
fn fuzz_seed_corpora_replay() {
    let mut n = 0;
    for s in seeds("authority") {
        let _ = normalize(s);
        n += 1;
    }
    for s in seeds("lookup_answer") {
        if let Some((_, body)) = s.split_first() {
            let _ = parse_answer(Some("200"), body.len(), body, ASKED);
        }
        n += 1;
    }
    for s in seeds("feed_answer") {
        if let Some((_, body)) = s.split_first() {
            let _ = cname_guard_core::changes::parse_answer(Some("200"), body.len(), body);
        }
        n += 1;
    }
    for s in seeds("accept") {
        let _ = negotiate(Some(&s));
        n += 1;
    }
    for s in seeds("json") {
        if let Err(why) = json_oracle::agree(&s) {
            panic!("fuzz/corpus/json: {why}");
        }
        n += 1;
    }
    for s in seeds("config") {
        let _ = cname_guard_core::config::Config::parse(&s);
        n += 1;
    }
    let slots: Vec<_> = seeds("cache_slot");
    let decoded = slots.iter().filter(|s| decode_slot(s).is_some()).count();
    assert!(slots.is_empty() || decoded + 1 >= slots.len(), "cache_slot seeds must decode (one garbage seed)");
    let locks: Vec<_> = seeds("lock");
    let decoded = locks.iter().filter(|s| Lock::decode(s).is_some()).count();
    assert!(locks.is_empty() || decoded + 1 >= locks.len(), "lock seeds must decode (one released seed)");
    n += slots.len() + locks.len();
    assert!(n >= 30, "seed corpora under fuzz/corpus are missing: {n} seeds");
}

// --- the change feed ----------------------------------------------------------

mod feed {
    use super::*;
    use cname_guard_core::changes::{self, Answer, Eviction, Lease, MAX_NAMES};

    fn feed_body(seq: u64, hosts: &[String], zones: &[String]) -> String {
        json!({"seq": seq, "hosts": hosts, "zones": zones}).to_string()
    }

    /// Under a zone, the way the cache sees it: equal, or ends in `.zone`.
    fn under(host: &str, zone: &str) -> bool {
        host == zone || host.strip_suffix(zone).is_some_and(|rest| rest.ends_with('.'))
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn arbitrary_bytes_never_panic_and_never_yield_a_bad_name(body in prop::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(Answer::Changes { hosts, zones, .. }) = changes::parse_answer(Some("200"), body.len(), &body) {
                prop_assert!(hosts.len() + zones.len() <= MAX_NAMES);
                for n in hosts.iter().chain(&zones) {
                    assert_valid_name(n);
                }
            }
        }

        #[test]
        fn json_shaped_garbage_never_panics(doc in field_value(), seq in any::<u64>()) {
            for body in [
                json!({"seq": seq, "hosts": [doc.clone()], "zones": []}).to_string(),
                json!({"seq": doc.clone(), "reset": true}).to_string(),
                json!({"seq": seq, "hosts": [], "zones": doc.clone()}).to_string(),
                doc.to_string(),
            ] {
                let _ = changes::parse_answer(Some("200"), body.len(), body.as_bytes());
            }
        }

        #[test]
        fn valid_answers_read_back_exactly(
            seq in any::<u64>(),
            hosts in prop::collection::vec(name(), 0..20),
            zones in prop::collection::vec(name(), 0..5),
        ) {
            let body = feed_body(seq, &hosts, &zones);
            let got = changes::parse_answer(Some("200"), body.len(), body.as_bytes());
            prop_assert_eq!(got, Ok(Answer::Changes { seq, hosts, zones }));
        }

        #[test]
        fn one_bad_name_refuses_the_whole_answer(
            hosts in prop::collection::vec(name(), 0..10),
            bad in authority_like(),
            at in 0usize..10,
        ) {
            prop_assume!(!changes::canonical(&bad));
            let mut hosts = hosts;
            let at = at.min(hosts.len());
            hosts.insert(at, bad);
            let body = feed_body(3, &hosts, &[]);
            prop_assert!(changes::parse_answer(Some("200"), body.len(), body.as_bytes()).is_err());
        }

        #[test]
        fn an_eviction_takes_only_what_it_names(
            hosts in prop::collection::vec(name(), 0..6),
            zones in prop::collection::vec(name(), 0..3),
            cached in prop::collection::vec(name(), 0..30),
        ) {
            let e = Eviction { all: false, hosts: hosts.iter().cloned().collect(), zones: zones.iter().cloned().collect() };
            for h in cached.iter().chain(&hosts) {
                let named = hosts.contains(h) || zones.iter().any(|z| under(h, z));
                prop_assert_eq!(e.matches(h), named, "{}", h);
            }
            prop_assert_eq!(Eviction::decode(&e.encode()), Some(e));
        }

        #[test]
        fn lease_and_registry_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..64), holder in any::<u32>(), until in any::<u64>(), seq in any::<Option<u64>>()) {
            let _ = Lease::decode(&b);
            let _ = changes::decode_workers(&b);
            let _ = Eviction::decode(&b);
            let l = Lease { holder, until, seq };
            prop_assert_eq!(Lease::decode(&l.encode()), Some(l));
        }
    }
}
