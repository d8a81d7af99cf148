//! `rostergate push-secret add|list|revoke`: a district's secrets for signed roster pushes.
//! `add` prints the new `whsec_…` secret once; it is stored sealed and never printed again.

use std::process::ExitCode;

use super::{db, output, CliError, CliResult};
use crate::auth::keys::MasterKey;
use crate::auth::push_secrets;
use crate::auth::secrets::SecretBox;
use crate::config::Settings;
use crate::store::districts;
use crate::store::push_secrets::{self as stored, PushSecret};

fn revoked_text(s: &PushSecret) -> String {
    s.revoked_at.map_or_else(
        || "live".to_string(),
        |t| format!("revoked {}", t.to_rfc3339()),
    )
}

pub async fn add(settings: Settings, district: &str, json_out: bool) -> CliResult {
    let secrets = SecretBox::new(&MasterKey::load(&settings)?);
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let created = push_secrets::create(&db, &secrets, district.id).await;
    db.close().await;
    let (stored, secret) = created?;
    let text = secret.to_text();
    if json_out {
        output::line(serde_json::json!({
            "id": stored.id,
            "secret": text.expose(),
            "district": district.slug,
            "created_at": stored.created_at,
        }))?;
    } else {
        output::text(&format!(
            "id:     {}\nsecret: {}\n\
             The secret is shown only now: give it to the system that pushes rosters to district {}.\n",
            stored.id,
            text.expose(),
            district.slug
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn list(settings: Settings, district: &str, json_out: bool) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let all = stored::list(&db, district.id).await;
    db.close().await;
    let all = all?;
    if json_out {
        output::line(serde_json::json!({ "push_secrets": all }))?;
    } else {
        for s in &all {
            output::line(format_args!(
                "{}\tcreated {}\t{}",
                s.id,
                s.created_at.to_rfc3339(),
                revoked_text(s)
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn revoke(settings: Settings, district: &str, id: &str) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let revoked = stored::revoke(&db, district.id, id).await;
    db.close().await;
    if revoked? {
        output::line(format_args!(
            "revoked push secret {id} of district {}: pushes signed with it are refused",
            district.slug
        ))?;
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::msg(format!(
            "no live push secret {id:?} in district {}",
            district.slug
        )))
    }
}
