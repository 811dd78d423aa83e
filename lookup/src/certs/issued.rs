//! The issued chain read back: the leaf's serial, issuer and validity,
//! and when to renew it.

use x509_parser::pem::Pem;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub serial_number: String,
    /// The issuing CA's organization, else its common name.
    pub issuer: String,
    pub not_before: i64,
    pub not_after: i64,
    /// DNS names in the subject alternative names.
    pub names: Vec<String>,
}

/// The first certificate of a PEM chain.
pub fn leaf(chain_pem: &str) -> Result<Leaf, String> {
    let pem = Pem::iter_from_buffer(chain_pem.as_bytes())
        .next()
        .ok_or("the CA sent no certificate")?
        .map_err(|e| format!("the CA's chain is not PEM: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| format!("the CA's certificate does not parse: {e}"))?;
    let issuer = cert.issuer();
    let org = issuer.iter_organization().next().and_then(|a| a.as_str().ok());
    let cn = issuer.iter_common_name().next().and_then(|a| a.as_str().ok());
    let names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Leaf {
        serial_number: cert.tbs_certificate.raw_serial_as_string().replace(':', ""),
        issuer: org.or(cn).unwrap_or("unknown").to_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        names,
    })
}

/// When a third of the lifetime is left, earlier by up to a twentieth of
/// it at random, so certificates issued together do not renew together.
pub fn renew_at(not_before: i64, not_after: i64) -> i64 {
    let life = (not_after - not_before).max(0);
    let mut r = [0u8; 2];
    let spread = life / 20;
    let jitter =
        if spread > 0 && getrandom::fill(&mut r).is_ok() { i64::from(u16::from_le_bytes(r)) % spread } else { 0 };
    not_before + life * 2 / 3 - jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_two_thirds_in() {
        let at = renew_at(0, 90 * 86_400);
        assert!(at <= 60 * 86_400 && at > 60 * 86_400 - 90 * 86_400 / 20, "{at}");
        assert_eq!(renew_at(10, 10), 10);
    }

    #[test]
    fn reads_a_leaf() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["shop.example".to_string()]).expect("params");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Test CA");
        let cert = params.self_signed(&key).expect("cert");
        let leaf = leaf(&cert.pem()).expect("leaf");
        assert_eq!(leaf.names, vec!["shop.example"]);
        assert_eq!(leaf.issuer, "Test CA");
        assert!(leaf.not_after > leaf.not_before);
        assert!(!leaf.serial_number.is_empty() && !leaf.serial_number.contains(':'));
        assert!(super::leaf("junk").is_err());
    }
}
