//! The console's JSON API: login, lockout, roles.

use std::sync::Arc;
use std::time::Duration;

use canhgac_agent::client::{Client, ClientError};
use canhgac_tests::Collector;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use serde_json::{Value, json};

fn console_client(c: &Collector) -> Client {
    let ca = CertificateDer::from_pem_slice(&std::fs::read(c.data_dir().join("ca.pem")).unwrap()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(canhgac_agent::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Client::new(
        vec![format!("localhost:{}", c.console_port)],
        Arc::new(tls),
        Duration::from_secs(10),
    )
}

async fn login(cl: &mut Client, user: &str, password: &str) -> Result<String, ClientError> {
    let body = serde_json::to_vec(&json!({"username": user, "password": password})).unwrap();
    let reply = cl.request("POST", "/api/login", Some(body)).await?;
    let v: Value = serde_json::from_slice(&reply).unwrap();
    Ok(v["token"].as_str().unwrap().to_string())
}

async fn get(cl: &mut Client, path: &str, token: &str) -> Result<Value, ClientError> {
    let auth = format!("Bearer {token}");
    let reply = cl
        .request_with("GET", path, &[("authorization", &auth)], None)
        .await?;
    Ok(serde_json::from_slice(&reply).unwrap())
}

fn status_of(r: Result<impl std::fmt::Debug, ClientError>) -> u16 {
    match r {
        Err(ClientError::Refused { status, .. }) => status,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn login_roles_and_lockout() {
    let mut c = Collector::init();
    let viewer_pw = c
        .cli_ok(&["users", "add", "vera", "--role", "viewer"])
        .rsplit("Password (shown once): ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    c.start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut cl = console_client(&c);
        assert_eq!(status_of(get(&mut cl, "/api/agents", "nonsense").await), 401);
        let admin = login(&mut cl, "admin", &c.admin_password).await.unwrap();
        assert_eq!(get(&mut cl, "/api/me", &admin).await.unwrap()["role"], "admin");
        assert!(get(&mut cl, "/api/agents", &admin).await.unwrap().is_array());
        let audit = get(&mut cl, "/api/audit", &admin).await.unwrap();
        assert!(
            audit
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["action"] == "user.login"),
            "{audit}"
        );

        let viewer = login(&mut cl, "vera", &viewer_pw).await.unwrap();
        assert!(get(&mut cl, "/api/events", &viewer).await.unwrap().is_array());
        assert_eq!(
            status_of(get(&mut cl, "/api/audit", &viewer).await),
            403,
            "a viewer cannot read the audit log"
        );
        assert_eq!(
            status_of(get(&mut cl, "/api/events?limit=abc", &viewer).await),
            400
        );

        for _ in 0..5 {
            assert_eq!(status_of(login(&mut cl, "vera", "wrong").await), 401);
        }
        assert_eq!(
            status_of(login(&mut cl, "vera", &viewer_pw).await),
            429,
            "locked after 5 failures"
        );
        assert_eq!(status_of(login(&mut cl, "nobody", "x").await), 401);
        let bad = cl
            .request("POST", "/api/login", Some(b"{\"user\":1}".to_vec()))
            .await;
        assert_eq!(status_of(bad), 400);
    });
}
