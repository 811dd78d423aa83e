//! The issuer: claims active hostnames whose certificate is due (new,
//! renewal, retry) under a lease, places or resumes their ACME order,
//! answers the challenge, and stores the certificate. Never at handshake
//! time, never for a hostname that is not active.

use super::caa::{self, Caa};
use super::issued;
use super::limits::{backoff, Limits};
use super::renewal;
use super::seal::Kek;
use super::{account, dcv, IssuerConfig};
use crate::resolve::Dns;
use crate::store::{now, Certificate, CustomHostname, OrderStarted, SslMethod, SslSetback, SslStatus, Store};
use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeStatus, ChallengeType, Identifier, NewOrder, Order,
    OrderStatus, Problem, RetryPolicy,
};
use rcgen::{CertificateParams, KeyPair};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Each call to the CA within this; a hung CA holds no lease for long.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Issuer<D> {
    store: Store,
    kek: Kek,
    config: IssuerConfig,
    dns: D,
    /// This replica's name in the leases.
    owner: String,
    account: tokio::sync::Mutex<Option<Account>>,
    limits: std::sync::Mutex<Limits>,
}

/// The order being worked on: its key, sealed as stored.
struct Work {
    order: Order,
    cert_id: String,
    key: KeyPair,
    key_sealed: String,
}

/// Why an attempt stopped short of a certificate.
enum Halt {
    /// Recorded on the hostname: its status, the reason, the next try.
    Setback(SslSetback),
    /// The lease or the hostname's activity is gone: nothing more is written.
    Lost,
}

fn key_aad(cert_id: &str) -> String {
    format!("cert:{cert_id}")
}

async fn call<T, E: std::fmt::Display>(f: impl Future<Output = Result<T, E>>) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", CALL_TIMEOUT.as_secs())),
    }
}

/// `call` keeping the library's error, a timeout as a transport failure.
async fn call_raw<T>(f: impl Future<Output = Result<T, instant_acme::Error>>) -> Result<T, instant_acme::Error> {
    tokio::time::timeout(CALL_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| Err(instant_acme::Error::Str("no answer within the call timeout")))
}

impl<D: Dns> Issuer<D> {
    pub fn new(store: Store, kek: Kek, config: IssuerConfig, dns: D, owner: String) -> Arc<Issuer<D>> {
        let limits = Limits::new(config.orders_per_hour, config.account_orders_per_hour);
        Arc::new(Issuer {
            store,
            kek,
            config,
            dns,
            owner,
            account: tokio::sync::Mutex::new(None),
            limits: std::sync::Mutex::new(limits),
        })
    }

    /// Claims and works until `stop`; then releases what it held, so
    /// another replica (or this one restarted) resumes at once.
    pub async fn run(self: Arc<Self>, stop: impl Future<Output = ()>) {
        tracing::info!(
            directory = self.config.directory,
            authority = self.config.authority_name(),
            concurrency = self.config.concurrency,
            "issuer on"
        );
        tokio::pin!(stop);
        let mut running = JoinSet::new();
        loop {
            while running.try_join_next().is_some() {}
            let free = (self.config.concurrency as usize).saturating_sub(running.len());
            if free > 0 {
                let lease = self.config.lease.as_secs() as i64;
                match self.store.claim_ssl_due(&self.owner, now(), lease, free as u32).await {
                    Ok(claimed) => {
                        for h in claimed {
                            let me = self.clone();
                            running.spawn(async move { me.work(h).await });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "issuer: claiming due hostnames"),
                }
            }
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(self.config.tick) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
        running.abort_all();
        while running.join_next().await.is_some() {}
        if let Err(e) = self.store.ssl_release_all(&self.owner).await {
            tracing::warn!(error = %e, "issuer: releasing leases");
        }
    }

    async fn work(&self, h: CustomHostname) {
        let setback = match self.attempt(&h).await {
            Ok(()) => return,
            Err(Halt::Lost) => {
                tracing::info!(hostname = h.hostname, "issuer: the lease or the hostname's activity was lost");
                return;
            }
            Err(Halt::Setback(s)) => s,
        };
        tracing::info!(
            hostname = h.hostname,
            ssl_status = %setback.status,
            retry_at = setback.next_at.map(crate::store::rfc3339).unwrap_or_else(|| "never".into()),
            reason = setback.errors.first().map(String::as_str).unwrap_or(""),
            "issuer: setback"
        );
        if let Err(e) = self.store.ssl_setback(&self.owner, &h.id, &setback).await {
            tracing::warn!(hostname = h.hostname, error = %e, "issuer: recording the setback");
        }
    }

    async fn attempt(&self, h: &CustomHostname) -> Result<(), Halt> {
        let current = self.current(h).await;
        let renewal = current.is_some();
        let account = self.account().await.map_err(|m| {
            self.setback(h, renewal, h.ssl.status, format!("the certificate authority cannot be reached ({m})"), false)
        })?;
        if let Some(c) = &current {
            if now() < c.renew_at && !self.due_now(&account, h, c).await? {
                return Ok(());
            }
        }
        match caa::check(&self.dns, &h.hostname, &self.config.caa_identities).await {
            Ok(Caa::Allowed) => {}
            Ok(Caa::Forbidden(sentence)) => {
                return Err(self.setback(h, renewal, SslStatus::PendingValidation, sentence, true))
            }
            Err(m) => return Err(self.setback(h, renewal, h.ssl.status, m, false)),
        }
        if h.ssl.method == SslMethod::Txt {
            self.delegated(h, renewal).await?;
        }
        let mut work = match self.resume(&account, h).await {
            Some(w) => w,
            None => {
                self.take_order(h, renewal)?;
                let replaces = current.as_ref().and_then(|c| renewal::identifier(&c.chain_pem).ok());
                self.place(&account, h, renewal, replaces).await?
            }
        };
        self.validate(&mut work, h, renewal).await?;
        self.finish(&account, work, h, renewal).await
    }

    /// A certificate looked at before its renewal time: the CA's window
    /// (ARI) decides whether to renew now; else when to renew and when to
    /// ask again are written and the lease ends.
    async fn due_now(&self, account: &Account, h: &CustomHostname, c: &Certificate) -> Result<bool, Halt> {
        let t = now();
        let (renew_at, next_at) = match renewal::window(account, &c.chain_pem, t).await {
            Ok(Some(w)) => {
                let at = renewal::pick(&w, Some(c.renew_at), t);
                if at <= t {
                    tracing::info!(hostname = h.hostname, "issuer: the certificate authority's window says renew now");
                    return Ok(true);
                }
                (at, renewal::next_look(at, Some(&w)))
            }
            Ok(None) => (c.renew_at, c.renew_at),
            Err(m) => {
                tracing::warn!(hostname = h.hostname, error = %m, "issuer: renewal window unknown; asked again later");
                (c.renew_at, c.renew_at.min(t + self.config.retry_min.as_secs() as i64))
            }
        };
        match self.store.ssl_renewal_planned(&self.owner, &h.id, &c.id, renew_at, next_at).await {
            Ok(true) => Ok(false),
            Ok(false) => Err(Halt::Lost),
            Err(e) => Err(self.setback(h, true, h.ssl.status, format!("the store: {e}"), false)),
        }
    }

    /// For `txt`: this service writes DNS-01 records, and the customer's
    /// `_acme-challenge` CNAME points at them; else a sentence saying what
    /// to add, before any order is spent.
    async fn delegated(&self, h: &CustomHostname, renewal: bool) -> Result<(), Halt> {
        let pending = SslStatus::PendingValidation;
        let Some(dcv) = &self.config.dcv else {
            let m = "DNS delegation (ssl.method \"txt\") is not configured on this service (--dcv-zone); use \"http\"";
            return Err(self.setback(h, renewal, pending, m.to_string(), false));
        };
        match dcv::delegation_ok(&self.dns, &h.hostname, &dcv.zone).await {
            Ok(dcv::Delegation::Ready) => Ok(()),
            Ok(dcv::Delegation::Missing { advice, .. }) => Err(self.setback(h, renewal, pending, advice, false)),
            Err(e) => {
                let m = format!("the delegation CNAME could not be read: {e}");
                Err(self.setback(h, renewal, h.ssl.status, m, false))
            }
        }
    }

    /// The certificate in service, unless there is none or it has expired
    /// (then it is taken out of service here).
    async fn current(&self, h: &CustomHostname) -> Option<Certificate> {
        let id = h.ssl.certificate.as_ref()?;
        match self.store.certificate(id).await {
            Ok(Some(c)) if c.expires_on > now() => Some(c),
            Ok(_) => {
                if let Err(e) = self.store.ssl_expired(&self.owner, &h.id).await {
                    tracing::warn!(hostname = h.hostname, error = %e, "issuer: expiring");
                }
                None
            }
            Err(e) => {
                // Not known to be gone: kept in service, looked at again later.
                tracing::warn!(hostname = h.hostname, error = %e, "issuer: reading its certificate");
                None
            }
        }
    }

    async fn account(&self) -> Result<Account, String> {
        let mut slot = self.account.lock().await;
        if let Some(a) = slot.as_ref() {
            return Ok(a.clone());
        }
        let a = account::load_or_create(&self.store, &self.kek, &self.config).await?;
        *slot = Some(a.clone());
        Ok(a)
    }

    async fn forget_account(&self) {
        *self.account.lock().await = None;
        if let Err(e) = self.store.delete_acme_account(&self.config.directory).await {
            tracing::warn!(error = %e, "issuer: forgetting the ACME account");
        }
    }

    fn take_order(&self, h: &CustomHostname, renewal: bool) -> Result<(), Halt> {
        let taken = match self.limits.lock() {
            Ok(mut l) => l.take(&h.account, now() as f64),
            Err(_) => Ok(()),
        };
        taken.map_err(|wait| {
            Halt::Setback(SslSetback {
                status: if renewal { SslStatus::Active } else { h.ssl.status },
                // What went wrong before still stands; the wait comes first.
                errors: std::iter::once(wait.sentence)
                    .chain(h.ssl.errors.iter().filter(|e| !e.starts_with("waiting: ")).cloned())
                    .collect(),
                next_at: Some(wait.until),
                drop_order: false,
                failed: false,
            })
        })
    }

    /// The order a previous attempt (maybe another replica's) left, if the
    /// CA still has it usable and its key opens.
    async fn resume(&self, account: &Account, h: &CustomHostname) -> Option<Work> {
        let (Some(url), Some(cert_id), Some(sealed)) = (&h.ssl.order_url, &h.ssl.order_cert, &h.ssl.order_key) else {
            return None;
        };
        let pem = self.kek.open(sealed, &key_aad(cert_id)).ok()?;
        let key = KeyPair::from_pem(std::str::from_utf8(&pem).ok()?).ok()?;
        let mut order = call(account.order(url.clone())).await.ok()?;
        if order.state().status == OrderStatus::Invalid {
            return None;
        }
        tracing::info!(hostname = h.hostname, order = %url, "issuer: resuming order");
        Some(Work { order, cert_id: cert_id.clone(), key, key_sealed: sealed.clone() })
    }

    /// A new order; a renewal names the certificate it `replaces` (ARI)
    /// where the CA takes that.
    async fn place(
        &self,
        account: &Account,
        h: &CustomHostname,
        renewal: bool,
        replaces: Option<CertificateIdentifier<'static>>,
    ) -> Result<Work, Halt> {
        let unreachable = |m: String| {
            self.setback(
                h,
                renewal,
                h.ssl.status,
                format!("the certificate authority did not take the order ({m})"),
                true,
            )
        };
        let ids = [Identifier::Dns(h.hostname.clone())];
        let mut placed = Err(instant_acme::Error::Unsupported("replaces"));
        if let Some(r) = replaces {
            placed = call_raw(account.new_order(&NewOrder::new(&ids).replaces(r))).await;
        }
        // Without ARI, or the old certificate already replaced by an order
        // an earlier attempt placed: an order that replaces nothing.
        let plain = match &placed {
            Err(instant_acme::Error::Unsupported(_)) => true,
            Err(instant_acme::Error::Api(p)) => p.r#type.as_deref().is_some_and(|t| t.ends_with(":alreadyReplaced")),
            _ => false,
        };
        if plain {
            placed = call_raw(account.new_order(&NewOrder::new(&ids))).await;
        }
        let order = match placed {
            Ok(order) => order,
            Err(instant_acme::Error::Api(p))
                if p.r#type.as_deref().is_some_and(|t| t.ends_with(":accountDoesNotExist")) =>
            {
                // The CA forgot the account (a test CA restarted, an account
                // deactivated): the next attempt creates a new one.
                self.forget_account().await;
                return Err(unreachable(format!("the CA no longer knows this service's ACME account: {p}")));
            }
            Err(e) => return Err(unreachable(e.to_string())),
        };
        let internal = |m: String| self.setback(h, renewal, h.ssl.status, format!("internal error: {m}"), true);
        let cert_id = Store::new_certificate_id().map_err(|e| internal(e.to_string()))?;
        let key = KeyPair::generate().map_err(|e| internal(e.to_string()))?;
        let key_sealed =
            self.kek.seal(key.serialize_pem().as_bytes(), &key_aad(&cert_id)).map_err(|e| internal(e.to_string()))?;
        let started = OrderStarted {
            order_url: order.url().to_string(),
            order_cert: cert_id.clone(),
            order_key: key_sealed.clone(),
            http_token: None,
            http_body: None,
            txt_value: None,
        };
        self.record(h, &started).await?;
        Ok(Work { order, cert_id, key, key_sealed })
    }

    /// Writes within the lease; a lost lease or a hostname no longer
    /// active ends the attempt with nothing more written.
    async fn record(&self, h: &CustomHostname, started: &OrderStarted) -> Result<(), Halt> {
        match self.store.ssl_order_started(&self.owner, &h.id, started).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Halt::Lost),
            Err(e) => Err(self.setback(h, false, h.ssl.status, format!("the store: {e}"), false)),
        }
    }

    /// How the CA's validation and issuance are polled.
    fn poll_policy(&self) -> RetryPolicy {
        RetryPolicy::new().initial_delay(Duration::from_millis(250)).backoff(1.5).timeout(self.config.poll_timeout)
    }

    /// Publishes each pending challenge, tells the CA, and waits for its
    /// verdict on the order.
    async fn validate(&self, work: &mut Work, h: &CustomHostname, renewal: bool) -> Result<(), Halt> {
        let pending = SslStatus::PendingValidation;
        let url = work.order.url().to_string();
        let mut auths = work.order.authorizations();
        while let Some(auth) = auths.next().await {
            let mut auth =
                auth.map_err(|e| self.setback(h, renewal, pending, format!("the certificate authority: {e}"), false))?;
            match auth.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    let m = format!("the certificate authority's authorization is {other:?}; a new order follows");
                    return Err(self.setback(h, renewal, pending, m, true));
                }
            }
            let kind = match h.ssl.method {
                SslMethod::Http => ChallengeType::Http01,
                SslMethod::Txt => ChallengeType::Dns01,
            };
            let Some(mut challenge) = auth.challenge(kind) else {
                let m = format!(
                    "the certificate authority offers no {} challenge; choose the other ssl.method",
                    h.ssl.method.as_str()
                );
                return Err(self.setback(h, renewal, pending, m, true));
            };
            let key_auth = challenge.key_authorization();
            let (http_token, http_body, txt_value) = match h.ssl.method {
                SslMethod::Http => (Some(challenge.token.clone()), Some(key_auth.as_str().to_string()), None),
                SslMethod::Txt => (None, None, Some(key_auth.dns_value())),
            };
            if let (Some(dcv), Some(value)) = (&self.config.dcv, &txt_value) {
                dcv::publish(dcv, &h.hostname, value).await.map_err(|e| {
                    self.setback(h, renewal, pending, format!("the DNS-01 record could not be written: {e}"), false)
                })?;
            }
            let started = OrderStarted {
                order_url: url.clone(),
                order_cert: work.cert_id.clone(),
                order_key: work.key_sealed.clone(),
                http_token,
                http_body,
                txt_value,
            };
            self.record(h, &started).await?;
            if challenge.status == ChallengeStatus::Pending {
                call(challenge.set_ready()).await.map_err(|m| {
                    self.setback(
                        h,
                        renewal,
                        pending,
                        format!("the certificate authority did not take the challenge ({m})"),
                        false,
                    )
                })?;
            }
        }
        let verdict = work.order.poll_ready(&self.poll_policy()).await;
        if let (SslMethod::Txt, Some(dcv)) = (h.ssl.method, &self.config.dcv) {
            // Validated or not, the TXT value has served its purpose.
            if let Err(e) = dcv::withdraw(dcv, &h.hostname).await {
                tracing::warn!(hostname = h.hostname, error = %e, "issuer: removing the DNS-01 record");
            }
        }
        match verdict {
            Ok(OrderStatus::Ready | OrderStatus::Processing | OrderStatus::Valid) => Ok(()),
            Ok(_) | Err(instant_acme::Error::Api(_)) => {
                let sentences = self.validation_errors(&mut work.order, &h.hostname).await;
                Err(self.setback_all(h, renewal, pending, sentences, true))
            }
            Err(instant_acme::Error::Timeout(_)) => {
                let m = format!(
                    "the certificate authority has not validated {} within {}s; it is asked again",
                    h.hostname,
                    self.config.poll_timeout.as_secs()
                );
                Err(self.setback(h, renewal, pending, m, false))
            }
            Err(e) => Err(self.setback(h, renewal, pending, format!("the certificate authority: {e}"), false)),
        }
    }

    async fn validation_errors(&self, order: &mut Order, hostname: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut auths = order.authorizations();
        while let Some(Ok(auth)) = auths.next().await {
            for c in &auth.challenges {
                if let Some(p) = &c.error {
                    out.push(sentence(hostname, p));
                }
            }
        }
        if out.is_empty() {
            out.push(format!("the certificate authority refused to validate {hostname} without saying why"));
        }
        out
    }

    async fn finish(&self, account: &Account, work: Work, h: &CustomHostname, renewal: bool) -> Result<(), Halt> {
        let Work { mut order, cert_id, key, key_sealed } = work;
        let issuing = SslStatus::PendingIssuance;
        match self.store.ssl_step(&self.owner, &h.id, issuing).await {
            Ok(true) => {}
            Ok(false) => return Err(Halt::Lost),
            Err(e) => return Err(self.setback(h, renewal, issuing, format!("the store: {e}"), false)),
        }
        let internal = |m: String| self.setback(h, renewal, issuing, format!("internal error: {m}"), true);
        if order.state().status == OrderStatus::Ready {
            let params = CertificateParams::new(vec![h.hostname.clone()]).map_err(|e| internal(e.to_string()))?;
            let csr = params.serialize_request(&key).map_err(|e| internal(e.to_string()))?;
            call(order.finalize_csr(csr.der())).await.map_err(|m| {
                self.setback(
                    h,
                    renewal,
                    issuing,
                    format!("the certificate authority refused the certificate request ({m})"),
                    true,
                )
            })?;
        }
        let chain = order.poll_certificate(&self.poll_policy()).await.map_err(|e| {
            self.setback(
                h,
                renewal,
                issuing,
                format!("the certificate authority has not issued the certificate ({e})"),
                false,
            )
        })?;
        let leaf = issued::leaf(&chain).map_err(|m| self.setback(h, renewal, issuing, m, true))?;
        if !leaf.names.iter().any(|n| n == &h.hostname) {
            let m = format!("the certificate authority's certificate does not name {}", h.hostname);
            return Err(self.setback(h, renewal, issuing, m, true));
        }
        let t = now();
        let window = renewal::window(account, &chain, t).await.unwrap_or_else(|m| {
            tracing::warn!(hostname = h.hostname, error = %m, "issuer: no renewal window; renewed a third of its life before expiry");
            None
        });
        let renew_at = match &window {
            // Never at once: a CA that keeps saying "now" is not renewed in a loop.
            Some(w) => renewal::pick(w, None, t).max(t + self.config.retry_min.as_secs() as i64),
            None => issued::renew_at(leaf.not_before, leaf.not_after),
        };
        let cert = Certificate {
            id: cert_id,
            hostname_id: h.id.clone(),
            hostname: h.hostname.clone(),
            chain_pem: chain,
            key_sealed,
            certificate_authority: self.config.authority_name(),
            issuer: leaf.issuer,
            serial_number: leaf.serial_number,
            not_before: leaf.not_before,
            expires_on: leaf.not_after,
            renew_at,
        };
        match self.store.ssl_issued(&self.owner, &cert, renewal, renewal::next_look(renew_at, window.as_ref())).await {
            Ok(true) => {
                crate::metrics::certificate(true);
                tracing::info!(
                    hostname = h.hostname,
                    serial = cert.serial_number,
                    expires = crate::store::rfc3339(cert.expires_on),
                    renew_at = crate::store::rfc3339(cert.renew_at),
                    "issuer: certificate in service"
                );
                Ok(())
            }
            Ok(false) => Err(Halt::Lost),
            Err(e) => Err(self.setback(h, renewal, issuing, format!("the store: {e}"), false)),
        }
    }

    fn setback(
        &self,
        h: &CustomHostname,
        renewal: bool,
        status: SslStatus,
        sentence: String,
        drop_order: bool,
    ) -> Halt {
        self.setback_all(h, renewal, status, vec![sentence], drop_order)
    }

    /// Where a failure leaves the hostname: a renewal keeps its certificate
    /// (`pending_expiration`); a first issuance times out after
    /// `give_up_after` and then waits for an API call.
    fn setback_all(
        &self,
        h: &CustomHostname,
        renewal: bool,
        status: SslStatus,
        mut errors: Vec<String>,
        drop_order: bool,
    ) -> Halt {
        crate::metrics::certificate(false);
        let t = now();
        let delay = backoff(h.ssl.attempts, self.config.retry_min, self.config.retry_max).as_secs() as i64;
        let next_at = Some(t + delay.max(1));
        if renewal {
            errors.push("the current certificate stays in service until it expires".into());
            return Halt::Setback(SslSetback {
                status: SslStatus::PendingExpiration,
                errors,
                next_at,
                drop_order,
                failed: true,
            });
        }
        let failing_for = t - h.ssl.since.unwrap_or(t);
        if failing_for > self.config.give_up_after.as_secs() as i64 {
            let timed_out = if status == SslStatus::PendingIssuance {
                SslStatus::IssuanceTimedOut
            } else {
                SslStatus::ValidationTimedOut
            };
            errors.push("no more attempts are made; fix the cause, then ask for a retry (POST .../ssl/retry)".into());
            return Halt::Setback(SslSetback {
                status: timed_out,
                errors,
                next_at: None,
                drop_order: true,
                failed: true,
            });
        }
        Halt::Setback(SslSetback { status, errors, next_at, drop_order, failed: true })
    }
}

/// An ACME problem as a sentence the customer can act on.
fn sentence(hostname: &str, p: &Problem) -> String {
    let detail = p.detail.as_deref().unwrap_or("no detail given");
    let kind = p.r#type.as_deref().and_then(|t| t.strip_prefix("urn:ietf:params:acme:error:")).unwrap_or("");
    match kind {
        "connection" => format!(
            "the certificate authority could not fetch http://{hostname}/.well-known/acme-challenge/ ({detail}); \
             check that {hostname} points at the platform (its CNAME) and that the edge answers on port 80"
        ),
        "unauthorized" | "incorrectResponse" => format!(
            "the certificate authority got another answer to its challenge at http://{hostname}/.well-known/acme-challenge/ \
             ({detail}); check that requests for {hostname} reach this platform's edge and no other server"
        ),
        "dns" => format!("the certificate authority could not resolve {hostname} ({detail}); check its DNS records"),
        "caa" => format!("a CAA record forbids the certificate authority to issue for {hostname} ({detail})"),
        "rateLimited" => format!("the certificate authority's rate limit is reached ({detail}); it will be retried"),
        _ => format!("the certificate authority refused to validate {hostname} ({detail})"),
    }
}
