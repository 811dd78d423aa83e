//! `Secret` resources: a hostname's certificate and key, inline (never
//! files, which cost Envoy an inotify watch each), and the fallback
//! certificate served to clients that send no SNI.

use crate::certs::Kek;
use crate::store::Certificate;
use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{secret, Secret, TlsCertificate};
use envoy_types::pb::envoy::service::discovery::v3::Resource;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

pub const SECRET_TYPE: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
/// The `sni` mapper's `default_value` in the shipped YAMLs: no SNI.
pub const FALLBACK_NAME: &str = "fallback";

/// The certificate for clients without SNI: made at start, self-signed,
/// naming no custom hostname.
#[derive(Clone)]
pub struct Fallback {
    chain: String,
    key: String,
}

impl Fallback {
    pub fn generate() -> Result<Fallback, String> {
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params.distinguished_name.push(rcgen::DnType::CommonName, "cname-guard fallback (no SNI)");
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        Ok(Fallback { chain: cert.pem(), key: key.serialize_pem() })
    }

    pub fn resource(&self) -> Resource {
        resource(FALLBACK_NAME, "fallback", self.chain.as_bytes(), self.key.as_bytes())
    }
}

/// The resource for `cert`, its key opened with the KEK; `Err` if the key
/// does not open (a KEK that is not the one it was sealed with).
pub fn certificate(cert: &Certificate, kek: &Kek) -> Result<Resource, String> {
    let key = kek.open(&cert.key_sealed, &format!("cert:{}", cert.id)).map_err(|e| e.to_string())?;
    Ok(resource(&cert.hostname, &cert.id, cert.chain_pem.as_bytes(), &key))
}

fn inline(bytes: &[u8]) -> Option<DataSource> {
    Some(DataSource { specifier: Some(data_source::Specifier::InlineBytes(bytes.to_vec())), ..Default::default() })
}

fn resource(name: &str, version: &str, chain: &[u8], key: &[u8]) -> Resource {
    let secret = Secret {
        name: name.to_string(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: inline(chain),
            private_key: inline(key),
            ..Default::default()
        })),
    };
    Resource {
        name: name.to_string(),
        version: version.to_string(),
        resource: Some(Any { type_url: SECRET_TYPE.to_string(), value: secret.encode_to_vec() }),
        ..Default::default()
    }
}
