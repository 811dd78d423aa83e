//! When to renew: the CA's suggested window (ACME Renewal Information,
//! RFC 9773) where the directory offers it, else a third of the lifetime
//! before expiry (`issued::renew_at`).

use instant_acme::{Account, CertificateIdentifier, Error};
use rustls_pki_types::CertificateDer;
use std::time::Duration;
use x509_parser::pem::Pem;

/// The CA's window, and when to ask it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
    pub ask_again_at: i64,
}

/// Bounds on the CA's Retry-After: not more often than a minute (a CA
/// answering 0 would be asked in a loop), at least once a day (RFC 9773
/// §4.3.2 expects a client to check regularly).
const ASK_AGAIN_MIN: Duration = Duration::from_secs(60);
const ASK_AGAIN_MAX: Duration = Duration::from_secs(86_400);

/// The CA's window for the leaf of `chain_pem`; `None` when its directory
/// has no `renewalInfo`.
pub async fn window(account: &Account, chain_pem: &str, now: i64) -> Result<Option<Window>, String> {
    let id = identifier(chain_pem)?;
    match account.renewal_info(&id).await {
        Ok((info, retry_after)) => Ok(Some(Window {
            start: info.suggested_window.start.unix_timestamp(),
            end: info.suggested_window.end.unix_timestamp(),
            ask_again_at: now + retry_after.clamp(ASK_AGAIN_MIN, ASK_AGAIN_MAX).as_secs() as i64,
        })),
        Err(Error::Unsupported(_)) => Ok(None),
        Err(e) => Err(format!("the certificate authority's renewal information: {e}")),
    }
}

/// The ARI identifier (authority key id and serial) of the chain's leaf,
/// which a renewal order names in `replaces`.
pub fn identifier(chain_pem: &str) -> Result<CertificateIdentifier<'static>, String> {
    let pem = Pem::iter_from_buffer(chain_pem.as_bytes())
        .next()
        .ok_or("the stored chain holds no certificate")?
        .map_err(|e| format!("the stored chain is not PEM: {e}"))?;
    let der = CertificateDer::from(pem.contents);
    CertificateIdentifier::try_from(&der).map(CertificateIdentifier::into_owned)
}

/// When to renew within `w`: `current` if it already lies inside (the
/// window did not move), else a point drawn uniformly from the window
/// (RFC 9773 §4.2), never before `now`. A window already past: `now`.
pub fn pick(w: &Window, current: Option<i64>, now: i64) -> i64 {
    if let Some(c) = current.filter(|&c| c >= w.start && c < w.end) {
        return c.max(now);
    }
    let span = (w.end - w.start).max(0) as u64;
    let mut r = [0u8; 8];
    let offset = if span > 0 && getrandom::fill(&mut r).is_ok() { u64::from_le_bytes(r) % span } else { 0 };
    (w.start + offset as i64).max(now)
}

/// When the issuer next looks at an active certificate: its renewal, or
/// sooner to ask the CA again.
pub fn next_look(renew_at: i64, w: Option<&Window>) -> i64 {
    match w {
        Some(w) => renew_at.min(w.ask_again_at),
        None => renew_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Window = Window { start: 1_000, end: 2_000, ask_again_at: 1_500 };

    #[test]
    fn a_point_in_the_window_never_before_now() {
        for _ in 0..200 {
            let at = pick(&W, None, 0);
            assert!((1_000..2_000).contains(&at), "{at}");
        }
        assert_eq!(pick(&W, None, 5_000), 5_000, "a window past: now");
        let at = pick(&W, None, 1_900);
        assert!((1_900..2_000).contains(&at));
    }

    #[test]
    fn a_choice_inside_the_window_stands() {
        assert_eq!(pick(&W, Some(1_234), 0), 1_234);
        let moved = pick(&W, Some(3_000), 0);
        assert!((1_000..2_000).contains(&moved), "a window moved earlier is followed: {moved}");
        assert_eq!(pick(&Window { start: 5, end: 5, ask_again_at: 0 }, None, 0), 5);
    }

    #[test]
    fn looks_again_when_the_ca_says() {
        assert_eq!(next_look(1_800, Some(&W)), 1_500);
        assert_eq!(next_look(1_200, Some(&W)), 1_200);
        assert_eq!(next_look(1_800, None), 1_800);
    }

    #[test]
    fn identifies_a_leaf_by_its_authority_key_and_serial() {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_identifier_method = rcgen::KeyIdMethod::Sha256;
        let ca_cert = ca.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let mut leaf = rcgen::CertificateParams::new(vec!["shop.example".to_string()]).expect("params");
        leaf.use_authority_key_identifier_extension = true;
        leaf.serial_number = Some(vec![1, 2, 3].into());
        let cert = leaf.signed_by(&key, &issuer).expect("leaf");
        let id = identifier(&format!("{}{}", cert.pem(), ca_cert.pem())).expect("identifier");
        assert_eq!(id.serial, "AQID", "the DER serial, base64url");
        assert!(!id.authority_key_identifier.is_empty());
        assert!(identifier("no pem here").is_err());
        assert!(identifier(&ca_cert.pem()).is_err(), "a certificate without an authority key id has none");
    }
}
