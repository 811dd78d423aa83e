//! `json::parse`, the strict JSON reader behind the configuration and the
//! lookup answers, differentially against serde_json.
//!
//! Invariants: no panic (nesting is bounded); whatever we accept serde_json
//! accepts too and reads the same (numbers by value), except numbers it
//! finds out of range; whatever serde_json accepts we accept too, except
//! duplicate keys and nesting deeper than ours, which we refuse on purpose.

#![no_main]

use cname_guard::json::{parse, Value as J};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn same(ours: &J, theirs: &Value) -> bool {
    match (ours, theirs) {
        (J::Null, Value::Null) => true,
        (J::Bool(a), Value::Bool(b)) => a == b,
        (J::String(a), Value::String(b)) => a == b,
        (J::Number(text), Value::Number(n)) => {
            // serde_json reads `-0` and anything beyond 64 bits as a float.
            if let Some(u) = n.as_u64() {
                text.parse::<u64>() == Ok(u)
            } else if let Some(i) = n.as_i64() {
                text.parse::<i64>() == Ok(i)
            } else {
                let (a, b) = (text.parse::<f64>().unwrap_or(f64::NAN), n.as_f64().unwrap_or(f64::NAN));
                a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
            }
        }
        (J::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y)),
        (J::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let ours = parse(data);
    let theirs = serde_json::from_slice::<Value>(data);
    match (&ours, &theirs) {
        (Ok(o), Ok(t)) => assert!(same(o, t), "read differently: {o:?} vs {t:?}"),
        (Err(_), Err(_)) => {}
        (Ok(o), Err(e)) => assert!(e.to_string().contains("out of range"), "accepted {o:?}; serde_json: {e}"),
        (Err(e), Ok(_)) => {
            assert!(matches!(e.message, "duplicate key" | "nested too deeply"), "refused what serde_json reads: {e}")
        }
    }
    if let Ok(v) = &ours {
        if let Some(n) = v.as_u64() {
            assert!(matches!(v, J::Number(t) if t.parse::<u64>() == Ok(n)));
        }
        let _ = v.kind();
    }
});
