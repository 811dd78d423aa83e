//! The ACME account: created once per directory, its credentials (the
//! account key) sealed in the store, shared by every replica.

use super::seal::Kek;
use super::IssuerConfig;
use crate::store::Store;
use instant_acme::{Account, AccountCredentials, ExternalAccountKey, NewAccount};

fn aad(directory: &str) -> String {
    format!("acme-account:{directory}")
}

fn builder(config: &IssuerConfig) -> Result<instant_acme::AccountBuilder, String> {
    match &config.ca_root {
        Some(path) => Account::builder_with_root(path).map_err(|e| format!("--acme-ca-root {}: {e}", path.display())),
        None => Account::builder().map_err(|e| format!("the system's root certificates: {e}")),
    }
}

/// The account of `config.directory`: restored from the store, or created
/// at the CA and stored (the first replica's wins a race).
pub async fn load_or_create(store: &Store, kek: &Kek, config: &IssuerConfig) -> Result<Account, String> {
    let dir = &config.directory;
    if let Some(sealed) = store.acme_account(dir).await.map_err(|e| e.to_string())? {
        return restore(kek, config, &sealed).await;
    }
    let contacts: Vec<String> = config.contacts.iter().map(|c| format!("mailto:{c}")).collect();
    let contacts: Vec<&str> = contacts.iter().map(String::as_str).collect();
    let eab = config.eab.as_ref().map(|(id, key)| ExternalAccountKey::new(id.clone(), key));
    let new = NewAccount { contact: &contacts, terms_of_service_agreed: true, only_return_existing: false };
    let (account, credentials) = builder(config)?
        .create(&new, dir.clone(), eab.as_ref())
        .await
        .map_err(|e| format!("creating the ACME account at {dir}: {e}"))?;
    let json = serde_json::to_vec(&credentials).map_err(|e| e.to_string())?;
    let sealed = kek.seal(&json, &aad(dir)).map_err(|e| e.to_string())?;
    let kept = store.put_acme_account(dir, &sealed).await.map_err(|e| e.to_string())?;
    if kept == sealed {
        tracing::info!(directory = %dir, account = account.id(), "acme account created");
        Ok(account)
    } else {
        restore(kek, config, &kept).await
    }
}

async fn restore(kek: &Kek, config: &IssuerConfig, sealed: &str) -> Result<Account, String> {
    let json = kek.open(sealed, &aad(&config.directory)).map_err(|e| format!("the stored ACME account: {e}"))?;
    let credentials: AccountCredentials =
        serde_json::from_slice(&json).map_err(|e| format!("the stored ACME account: {e}"))?;
    builder(config)?
        .from_credentials(credentials)
        .await
        .map_err(|e| format!("restoring the ACME account at {}: {e}", config.directory))
}
