//! The console's JSON API: login, lockout, roles.

use canhgac_agent::client::{Client, ClientError};
use canhgac_tests::{Collector, refused_status};
use serde_json::{Value, json};

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
        let mut cl = c.console_client();
        assert_eq!(refused_status(get(&mut cl, "/api/agents", "nonsense").await), 401);
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
            refused_status(get(&mut cl, "/api/audit", &viewer).await),
            403,
            "a viewer cannot read the audit log"
        );
        assert_eq!(
            refused_status(get(&mut cl, "/api/events?limit=abc", &viewer).await),
            400
        );

        for _ in 0..5 {
            assert_eq!(refused_status(login(&mut cl, "vera", "wrong").await), 401);
        }
        assert_eq!(
            refused_status(login(&mut cl, "vera", &viewer_pw).await),
            429,
            "locked after 5 failures"
        );
        assert_eq!(refused_status(login(&mut cl, "nobody", "x").await), 401);
        let bad = cl
            .request("POST", "/api/login", Some(b"{\"user\":1}".to_vec()))
            .await;
        assert_eq!(refused_status(bad), 400);
    });
}
