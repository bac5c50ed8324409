//! Email over SMTP with lettre: STARTTLS (or implicit TLS), rustls, optional
//! login, a text and an HTML part.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

use super::channel::EmailTarget;
use super::message::{self, Message};

/// Builds the email for a message (also used by tests to look at headers).
pub fn build(t: &EmailTarget, m: &Message) -> Result<lettre::Message, String> {
    let from: Mailbox = t.from.parse().map_err(|e| format!("from: {e}"))?;
    let mut b = lettre::Message::builder().from(from).subject(message::subject(m));
    for to in &t.to {
        b = b.to(to.parse().map_err(|e| format!("to {to}: {e}"))?);
    }
    b.multipart(MultiPart::alternative_plain_html(
        message::text(m),
        message::html_body(m),
    ))
    .map_err(|e| format!("cannot build the email: {e}"))
}

/// Sends one email; Ok once the server accepted it.
pub async fn send(t: &EmailTarget, m: &Message, timeout: Duration) -> Result<(), String> {
    let email = build(t, m)?;
    let mut tls = TlsParameters::builder(t.server.clone());
    if let Some(p) = &t.ca_file {
        let pem = std::fs::read(p).map_err(|e| format!("cannot read ca_file {}: {e}", p.display()))?;
        tls = tls.add_root_certificate(
            Certificate::from_pem(&pem).map_err(|e| format!("ca_file {}: {e}", p.display()))?,
        );
    }
    let tls = tls.build_rustls().map_err(|e| format!("TLS settings: {e}"))?;
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(t.server.as_str())
        .port(t.port)
        .timeout(Some(timeout))
        .tls(if t.security == "tls" {
            Tls::Wrapper(tls)
        } else {
            Tls::Required(tls)
        });
    if let (Some(u), Some(p)) = (&t.username, &t.password) {
        b = b.credentials(Credentials::new(u.clone(), p.clone()));
    }
    let transport = b.build();
    let work = transport.send(email);
    match tokio::time::timeout(timeout + Duration::from_secs(5), work).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("SMTP {}:{}: {e}", t.server, t.port)),
        Err(_) => Err(format!(
            "SMTP {}:{}: no answer within {timeout:?}",
            t.server, t.port
        )),
    }
}
