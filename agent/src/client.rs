//! A small HTTP/1.1-over-TLS client for the agent API, keeping one
//! connection open and reconnecting when it breaks.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The collector could not be reached or the connection broke.
    #[error("{0}")]
    Transport(String),
    /// The collector answered with an error status.
    #[error("collector refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
}

pub struct Client {
    addrs: Vec<String>,
    tls: Arc<ClientConfig>,
    timeout: Duration,
    conn: Option<(String, SendRequest<Full<Bytes>>)>,
}

/// Splits `host:port` / `[v6]:port` into the host for TLS name checks and the dial address.
fn server_name(addr: &str) -> Result<ServerName<'static>, ClientError> {
    let host = match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => {
            return Err(ClientError::Transport(format!(
                "collector address {addr:?} has no port"
            )));
        }
    };
    ServerName::try_from(host.to_string())
        .map_err(|e| ClientError::Transport(format!("collector address {addr:?} is not a valid host: {e}")))
}

impl Client {
    pub fn new(addrs: Vec<String>, tls: Arc<ClientConfig>, timeout: Duration) -> Self {
        Client {
            addrs,
            tls,
            timeout,
            conn: None,
        }
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The address of the current connection, if connected.
    pub fn connected_to(&self) -> Option<&str> {
        self.conn.as_ref().map(|(a, _)| a.as_str())
    }

    async fn connect(&mut self) -> Result<(), ClientError> {
        let mut errors = Vec::new();
        for addr in self.addrs.clone() {
            match self.connect_one(&addr).await {
                Ok(sender) => {
                    self.conn = Some((addr, sender));
                    return Ok(());
                }
                Err(e) => errors.push(format!("{addr}: {e}")),
            }
        }
        Err(ClientError::Transport(format!(
            "cannot reach the collector ({})",
            errors.join("; ")
        )))
    }

    async fn connect_one(&self, addr: &str) -> Result<SendRequest<Full<Bytes>>, String> {
        let name = server_name(addr).map_err(|e| e.to_string())?;
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| "connection timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        let tls = tokio::time::timeout(self.timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| "TLS handshake timed out".to_string())?
            .map_err(|e| format!("TLS: {e}"))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends one request; returns the body of a 2xx reply.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, ClientError> {
        self.request_with(method, path, &[], body).await
    }

    /// Like [`Client::request`], with extra request headers.
    pub async fn request_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, ClientError> {
        if self.conn.as_ref().is_none_or(|(_, s)| s.is_closed()) {
            self.conn = None;
            self.connect().await?;
        }
        let Some((addr, sender)) = self.conn.as_mut() else {
            return Err(ClientError::Transport("not connected".into()));
        };
        let mut req = hyper::Request::builder();
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, addr.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("canhgac-agent/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let fut = async {
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        let result = tokio::time::timeout(self.timeout, fut).await;
        let (status, body) = match result {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                self.conn = None;
                return Err(ClientError::Transport(format!(
                    "connection to the collector broke: {e}"
                )));
            }
            Err(_) => {
                self.conn = None;
                return Err(ClientError::Transport(format!(
                    "no answer from the collector within {:?}",
                    self.timeout
                )));
            }
        };
        if status.is_success() {
            return Ok(body);
        }
        let message = serde_json::from_slice::<canhgac_proto::wire::ErrorBody>(&body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(500).collect());
        Err(ClientError::Refused {
            status: status.as_u16(),
            message,
        })
    }

    /// POSTs a JSON value and decodes the JSON reply.
    pub async fn post_json<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
        &mut self,
        path: &str,
        body: &Req,
    ) -> Result<Resp, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Transport(e.to_string()))?;
        let reply = self.request("POST", path, Some(bytes)).await?;
        serde_json::from_slice(&reply)
            .map_err(|e| ClientError::Transport(format!("the collector's reply is not valid: {e}")))
    }
}
