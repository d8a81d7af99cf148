//! A district's secrets for signed roster pushes: made, sealed and stored in one step, and
//! opened as the live set a push's Standard Webhooks signature is verified against.

use uuid::Uuid;

use crate::auth::secrets::{SecretBox, SecretError};
use crate::events::signing::{SecretParseError, WebhookSecret};
use crate::store::push_secrets::{self, PushSecret};
use crate::store::{Db, StoreError};

/// Why a district's live secrets could not be read. Names the secret's id, never its value.
#[derive(Debug, thiserror::Error)]
pub enum PushSecretError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("push secret {id}: {source}")]
    Sealed { id: String, source: SecretError },
    #[error("push secret {id}: {source}")]
    Invalid {
        id: String,
        source: SecretParseError,
    },
}

/// Makes a new secret for the district and stores it sealed; the secret is returned only here.
pub async fn create(
    db: &Db,
    secrets: &SecretBox,
    district_id: i64,
) -> Result<(PushSecret, WebhookSecret), StoreError> {
    let secret = WebhookSecret::generate();
    let id = Uuid::new_v4().to_string();
    let sealed = secrets.seal_push_secret(district_id, &id, &secret.to_text());
    let stored = push_secrets::insert(db, district_id, &id, &sealed).await?;
    Ok((stored, secret))
}

/// The district's live secrets, opened: what a push's signature may match.
pub async fn live_secrets(
    db: &Db,
    secrets: &SecretBox,
    district_id: i64,
) -> Result<Vec<WebhookSecret>, PushSecretError> {
    push_secrets::live(db, district_id)
        .await?
        .into_iter()
        .map(|row| {
            let text = secrets
                .open_push_secret(district_id, &row.id, &row.sealed_secret)
                .map_err(|source| PushSecretError::Sealed {
                    id: row.id.clone(),
                    source,
                })?;
            WebhookSecret::parse(text.expose())
                .map_err(|source| PushSecretError::Invalid { id: row.id, source })
        })
        .collect()
}
