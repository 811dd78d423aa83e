//! The differential oracle for `crates/core/src/json.rs`: our strict reader against
//! serde_json. One copy, used by `tests/properties.rs` and by the fuzz
//! target `fuzz/fuzz_targets/json.rs` (both include it by path).
//!
//! Agreement means: whatever we accept serde_json accepts too and reads the
//! same (numbers by value), except numbers it finds out of range; whatever
//! serde_json accepts we accept too, except duplicate keys and nesting
//! deeper than ours, which we refuse on purpose.

use cname_guard_core::json::{parse, Value as J};
use serde_json::Value;

/// Whether our reading of a document is serde_json's (numbers by value).
pub fn same(ours: &J, theirs: &Value) -> bool {
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

/// Both readers on `raw`: our reading when the two agree, else why not.
pub fn agree(raw: &[u8]) -> Result<Option<J>, String> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    match (parse(raw), serde_json::from_slice::<Value>(raw)) {
        (Ok(o), Ok(t)) if same(&o, &t) => Ok(Some(o)),
        (Ok(o), Ok(t)) => Err(format!("{:?}: read as {o:?}, serde_json {t:?}", shown())),
        (Err(_), Err(_)) => Ok(None),
        (Ok(o), Err(e)) if e.to_string().contains("out of range") => Ok(Some(o)),
        (Ok(o), Err(e)) => Err(format!("accepted {:?} as {o:?}; serde_json: {e}", shown())),
        (Err(e), Ok(_)) if matches!(e.message, "duplicate key" | "nested too deeply") => Ok(None),
        (Err(e), Ok(_)) => Err(format!("refused {:?} ({e}) which serde_json reads", shown())),
    }
}
