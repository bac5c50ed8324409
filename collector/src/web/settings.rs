//! The audit log and the administration page: users, API tokens, groups and
//! their levels, and notification channels with their delivery record.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::layout::{self, csrf};
use super::{Ctx, field, see_other, urlencode};
use crate::store::ApiTokenRecord;

pub async fn audit(c: Ctx) -> Response {
    if let Err(r) = c.require(&["admin", "officer"]) {
        return r;
    }
    let rows = match c.run(|s| s.list_audit(500)).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let body = html! {
        table.audit {
            thead { tr { th { (c.t("col.time")) } th { (c.t("col.actor")) } th { (c.t("col.action")) } th { (c.t("col.target")) } th { (c.t("col.detail")) } } }
            tbody {
                @for a in &rows {
                    tr { td { (c.time(&a.at)) } td { (a.actor) } td { (a.action) } td { (a.target) } td.pre { (a.detail) } }
                }
            }
        }
    };
    layout::page(&c, c.t("nav.audit"), "/audit", body).into_response()
}

pub async fn page(c: Ctx) -> Response {
    if let Err(r) = c.require(&["admin"]) {
        return r;
    }
    let (users, tokens, groups) = match c
        .run(|s| Ok((s.list_users()?, s.list_api_tokens()?, s.list_groups()?)))
        .await
    {
        Ok(x) => x,
        Err(r) => return r,
    };
    let roles: Vec<(String, String)> = crate::auth::ROLES
        .iter()
        .map(|r| (r.to_string(), c.t(&format!("role.{r}")).to_string()))
        .collect();
    let user_opts: Vec<(String, String)> = users.iter().map(|u| (u.name.clone(), u.name.clone())).collect();
    let level_opts: Vec<(String, String)> = (1..=5).map(|l| (l.to_string(), l.to_string())).collect();
    let body = html! {
        @if let Some(pw) = c.q("password") {
            div.notice.good role="status" { (c.t("adm.user_made")) " " code.token { (pw) } }
        }
        @if let Some(t) = c.q("api_token") {
            div.notice.good role="status" { (c.t("adm.api_made")) " " code.token { (t) } }
        }
        section {
            h2 { (c.t("adm.users")) }
            table {
                thead { tr { th { (c.t("col.name")) } th { (c.t("col.role")) } th { (c.t("col.status")) } th {} } }
                tbody {
                    @for u in &users {
                        tr { td { (u.name) } td { (c.t(&format!("role.{}", u.role))) }
                             td { @if let Some(l) = &u.locked_until { (c.t("login.locked")) " " (c.time(l)) } }
                             td { form.inline method="post" action={"/admin/users/" (urlencode(&u.name)) "/reset"} {
                                 (csrf(&c)) button type="submit" { (c.t("adm.reset")) } } } }
                    }
                }
            }
            h3 { (c.t("adm.add_user")) }
            form.inline method="post" action="/admin/users" {
                (csrf(&c))
                label { (c.t("col.name")) input name="name" required pattern="[A-Za-z0-9._-]{1,64}"; }
                label { (c.t("col.role")) select name="role" { (layout::options(&roles, Some("officer"))) } }
                button type="submit" { (c.t("adm.create")) }
            }
        }
        section {
            h2 { (c.t("adm.api_tokens")) }
            p.small { a href="/api/openapi.json" { (c.t("adm.openapi")) } }
            table {
                thead { tr { th { (c.t("col.id")) } th { (c.t("col.name")) } th { (c.t("col.actor")) } th { (c.t("col.created")) } th { (c.t("col.last_seen")) } th {} } }
                tbody {
                    @for t in &tokens {
                        tr {
                            td { (t.id) } td { (t.name) } td { (t.user) } td { (c.time(&t.created_at)) }
                            td { (c.time_opt(t.last_used.as_deref())) }
                            td {
                                @if t.revoked_at.is_some() { "revoked" } @else {
                                    form.inline method="post" action={"/admin/api-tokens/" (urlencode(&t.id)) "/revoke"} {
                                        (csrf(&c)) button.danger type="submit" { (c.t("adm.revoke")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form.inline method="post" action="/admin/api-tokens" {
                (csrf(&c))
                label { (c.t("col.name")) input name="name" required maxlength="100"; }
                label { (c.t("col.actor")) select name="user" { (layout::options(&user_opts, Some(&c.user.name))) } }
                button type="submit" { (c.t("adm.create")) }
            }
        }
        section {
            h2 { (c.t("adm.groups")) }
            table {
                thead { tr { th { (c.t("col.group")) } th { (c.t("col.level")) } } }
                tbody {
                    @for (g, l) in &groups {
                        tr { td { (g) } td {
                            form.inline method="post" action="/admin/groups" {
                                (csrf(&c)) input type="hidden" name="name" value=(g);
                                select name="level" aria-label=(c.t("adm.set_level")) { (layout::options(&level_opts, Some(&l.to_string()))) }
                                button type="submit" { (c.t("adm.set_level")) }
                            }
                        } }
                    }
                }
            }
            form.inline method="post" action="/admin/groups" {
                (csrf(&c))
                input type="hidden" name="create" value="yes";
                label { (c.t("adm.new_group")) input name="name" required pattern="[A-Za-z0-9._-]{1,64}"; }
                label { (c.t("col.level")) select name="level" { (layout::options(&level_opts, Some("2"))) } }
                button type="submit" { (c.t("adm.create")) }
            }
        }
        (super::notify_section(&c).await)
    };
    layout::page(&c, c.t("nav.admin"), "/admin", body).into_response()
}

pub async fn add_user(c: Ctx, body: axum::body::Bytes) -> Response {
    let form = match c.form(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = c.require(&["admin"]) {
        return r;
    }
    let (Some(name), Some(role)) = (field(&form, "name"), field(&form, "role")) else {
        return c.error(StatusCode::BAD_REQUEST, c.t("col.name"));
    };
    if !crate::auth::ROLES.contains(&role)
        || name.len() > 64
        || !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
    {
        return c.error(StatusCode::BAD_REQUEST, c.t("col.name"));
    }
    let password = crate::auth::generate_password();
    let hash = match crate::auth::hash_password(&password) {
        Ok(h) => h,
        Err(e) => return c.error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let (name, role, actor) = (name.to_string(), role.to_string(), c.user.name.clone());
    match c.run(move |s| s.create_user(&name, &role, &hash, &actor)).await {
        Ok(()) => see_other(&format!("/admin?password={}", urlencode(&password))),
        Err(r) => r,
    }
}

pub async fn add_api_token(c: Ctx, body: axum::body::Bytes) -> Response {
    let form = match c.form(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = c.require(&["admin"]) {
        return r;
    }
    let (Some(name), Some(user)) = (field(&form, "name"), field(&form, "user")) else {
        return c.error(StatusCode::BAD_REQUEST, c.t("col.name"));
    };
    let secret = format!(
        "{}{}",
        crate::console::API_TOKEN_PREFIX,
        crate::auth::random_secret(32)
    );
    let rec = ApiTokenRecord {
        id: format!("api-{}", crate::auth::random_secret(6)),
        name: name.chars().filter(|ch| !ch.is_control()).take(100).collect(),
        user: user.to_string(),
        created_at: crate::store::now(),
        last_used: None,
        revoked_at: None,
    };
    let (hash, actor) = (
        canhgac_proto::token::sha256_hex(secret.as_bytes()),
        c.user.name.clone(),
    );
    match c.run(move |s| s.create_api_token(&rec, &hash, &actor)).await {
        Ok(()) => see_other(&format!("/admin?api_token={}", urlencode(&secret))),
        Err(r) => r,
    }
}

pub async fn revoke_api_token(c: Ctx, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    if let Err(r) = c.form(&body) {
        return r;
    }
    if let Err(r) = c.require(&["admin"]) {
        return r;
    }
    let actor = c.user.name.clone();
    match c.run(move |s| s.revoke_api_token(&id, &actor)).await {
        Ok(()) => see_other("/admin?msg=done"),
        Err(r) => r,
    }
}

pub async fn group(c: Ctx, body: axum::body::Bytes) -> Response {
    let form = match c.form(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = c.require(&["admin"]) {
        return r;
    }
    let (Some(name), Some(level)) = (
        field(&form, "name"),
        field(&form, "level").and_then(|l| l.parse::<u8>().ok()),
    ) else {
        return c.error(StatusCode::BAD_REQUEST, c.t("col.group"));
    };
    let (name, actor, create) = (
        name.to_string(),
        c.user.name.clone(),
        field(&form, "create") == Some("yes"),
    );
    let r = c
        .run(move |s| {
            if create {
                s.create_group(&name, level, &actor)
            } else {
                s.set_group_level(&name, level, &actor)
            }
        })
        .await;
    match r {
        Ok(()) => see_other("/admin?msg=done"),
        Err(r) => r,
    }
}

pub async fn save_channel(c: Ctx, body: axum::body::Bytes) -> Response {
    let form = match c.form(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = c.require(&["admin"]) {
        return r;
    }
    let text = form
        .iter()
        .find(|(k, _)| k == "toml")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let channel: crate::notify::channel::ChannelConfig = match toml::from_str(&text) {
        Ok(ch) => ch,
        Err(e) => return c.error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let (notify, actor) = (c.app.config.notify.clone(), c.user.name.clone());
    let r = c
        .run(move |s| Ok(crate::notify::save_channel(s, &notify, &channel, &actor)))
        .await;
    match r {
        Ok(Ok(())) => see_other("/admin?msg=done"),
        Ok(Err(e)) => c.error(StatusCode::BAD_REQUEST, &e),
        Err(r) => r,
    }
}

pub async fn test_channel(c: Ctx, Path(name): Path<String>, body: axum::body::Bytes) -> Response {
    if let Err(r) = c.form(&body) {
        return r;
    }
    if let Err(r) = c.require(&["admin"]) {
        return r;
    }
    match crate::notify::send_test(c.app.store.clone(), &c.app.config, &name, &c.user.name).await {
        Ok(()) => see_other("/admin?msg=done"),
        Err(e) => c.error(StatusCode::BAD_GATEWAY, &e),
    }
}

pub async fn delete_channel(c: Ctx, Path(name): Path<String>, body: axum::body::Bytes) -> Response {
    if let Err(r) = c.form(&body) {
        return r;
    }
    if let Err(r) = c.require(&["admin"]) {
        return r;
    }
    let (notify, actor) = (c.app.config.notify.clone(), c.user.name.clone());
    match c
        .run(move |s| Ok(crate::notify::delete_channel(s, &notify, &name, &actor)))
        .await
    {
        Ok(Ok(())) => see_other("/admin?msg=done"),
        Ok(Err(e)) => c.error(StatusCode::BAD_REQUEST, &e),
        Err(r) => r,
    }
}

/// Shortest password a person may choose.
pub const MIN_PASSWORD_CHARS: usize = 12;

pub async fn account(c: Ctx) -> Response {
    let body = html! {
        section {
            h2 { (c.t("acc.change")) }
            form method="post" action="/account" {
                (csrf(&c))
                p { label { (c.t("acc.current")) br; input type="password" name="current" autocomplete="current-password" required; } }
                p { label { (c.t("acc.new")) br; input type="password" name="new" autocomplete="new-password" required minlength=(MIN_PASSWORD_CHARS); } }
                p { label { (c.t("acc.repeat")) br; input type="password" name="repeat" autocomplete="new-password" required minlength=(MIN_PASSWORD_CHARS); } }
                button type="submit" { (c.t("a.save")) }
            }
        }
    };
    layout::page(&c, c.t("acc.title"), "", body).into_response()
}

pub async fn change_password(c: Ctx, body: axum::body::Bytes) -> Response {
    let form = match c.form(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let raw = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (current, new, repeat) = (raw("current"), raw("new"), raw("repeat"));
    if new != repeat {
        return c.error(StatusCode::BAD_REQUEST, c.t("acc.mismatch"));
    }
    if new.chars().count() < MIN_PASSWORD_CHARS {
        return c.error(StatusCode::BAD_REQUEST, c.t("acc.short"));
    }
    let hash = c.user.password_hash.clone();
    let ok = tokio::task::spawn_blocking(move || crate::auth::verify_password(&current, &hash))
        .await
        .unwrap_or(false);
    if !ok {
        return c.error(StatusCode::FORBIDDEN, c.t("login.wrong"));
    }
    let new_hash = match tokio::task::spawn_blocking(move || crate::auth::hash_password(&new)).await {
        Ok(Ok(h)) => h,
        _ => return c.error(StatusCode::INTERNAL_SERVER_ERROR, "hash"),
    };
    let (name, keep) = (c.user.name.clone(), c.session_hash.clone());
    match c
        .run(move |s| s.set_user_password(&name, &new_hash, Some(&keep), &name))
        .await
    {
        Ok(()) => see_other("/account?msg=done"),
        Err(r) => r,
    }
}

pub async fn reset_password(c: Ctx, Path(name): Path<String>, body: axum::body::Bytes) -> Response {
    if let Err(r) = c.form(&body) {
        return r;
    }
    if let Err(r) = c.require(&["admin"]) {
        return r;
    }
    let password = crate::auth::generate_password();
    let hash = match crate::auth::hash_password(&password) {
        Ok(h) => h,
        Err(e) => return c.error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let actor = c.user.name.clone();
    match c
        .run(move |s| s.set_user_password(&name, &hash, None, &actor))
        .await
    {
        Ok(()) => see_other(&format!("/admin?password={}", urlencode(&password))),
        Err(r) => r,
    }
}
