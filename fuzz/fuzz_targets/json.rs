//! `json::parse`, the strict JSON reader behind the configuration and the
//! lookup answers, differentially against serde_json. The oracle (what
//! agreement means) is `tests/oracle/json.rs`, shared with the property
//! tests; here it runs on whatever libFuzzer finds, and must not panic.

#![no_main]

use cname_guard_core::json::Value as J;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/oracle/json.rs"]
mod json_oracle;

fuzz_target!(|data: &[u8]| {
    match json_oracle::agree(data) {
        Err(why) => panic!("{why}"),
        Ok(Some(v)) => {
            if let Some(n) = v.as_u64() {
                assert!(matches!(&v, J::Number(t) if t.parse::<u64>() == Ok(n)));
            }
            let _ = v.kind();
        }
        Ok(None) => {}
    }
});
