//! Webhooks: one JSON POST per message over HTTPS (or HTTP), one connection each.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use super::channel::WebhookTarget;
use super::message::{self, Message};

/// Most of a reply's body kept for the delivery log.
const REPLY_MAX: usize = 64 * 1024;

/// Sends `m` to the webhook; Ok when it answers 2xx.
pub async fn send(t: &WebhookTarget, m: &Message, timeout: Duration) -> Result<(), String> {
    let body = message::webhook_body(&t.template, t.chat_id.as_deref(), m).to_string();
    tokio::time::timeout(timeout, post(t, body))
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

async fn post(t: &WebhookTarget, body: String) -> Result<(), String> {
    let uri: hyper::Uri = t.url.parse().map_err(|e| format!("bad url: {e}"))?;
    let https = uri.scheme_str() == Some("https");
    let host = uri.host().ok_or("url has no host")?.to_string();
    let bare = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((bare.as_str(), port))
        .await
        .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut req = hyper::Request::post(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header(
            hyper::header::HOST,
            match uri.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.clone(),
            },
        )
        .header(hyper::header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header(
            hyper::header::USER_AGENT,
            format!("canhgac/{}", canhgac_proto::VERSION),
        );
    for (k, v) in &t.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("bad request: {e}"))?;
    let (status, reply) = if https {
        let cfg = super::tls::client_config(t.ca_file.as_deref(), &[b"http/1.1"])?;
        let sn =
            rustls_pki_types::ServerName::try_from(bare.clone()).map_err(|e| format!("host {host}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(sn, tcp)
            .await
            .map_err(|e| format!("TLS with {host}: {e}"))?;
        exchange(TokioIo::new(tls), req).await?
    } else {
        exchange(TokioIo::new(tcp), req).await?
    };
    if status.is_success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&reply);
        Err(format!(
            "HTTP {status}: {}",
            message::truncate(&message::one_line(&text), 300)
        ))
    }
}

async fn exchange<I>(io: I, req: hyper::Request<Full<Bytes>>) -> Result<(hyper::StatusCode, Vec<u8>), String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = send.send_request(req).await.map_err(|e| format!("HTTP: {e}"));
    let out = match resp {
        Ok(resp) => {
            let status = resp.status();
            let mut body = resp.into_body();
            let mut buf = Vec::new();
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                if let Some(d) = frame.data_ref() {
                    buf.extend_from_slice(d);
                    if buf.len() > REPLY_MAX {
                        buf.truncate(REPLY_MAX);
                        break;
                    }
                }
            }
            Ok((status, buf))
        }
        Err(e) => Err(e),
    };
    driver.abort();
    out
}
