//! The tool's key set at rest: made on first use, sealed with the master key, rotated on an
//! administrator's word (`rostergate keys rotate`). One set serves the whole gateway.

use chrono::{DateTime, Utc};

use crate::auth::secrets::{SecretBox, SecretError};
use crate::lti::tool_keys::{ToolKey, ToolKeyError, ToolKeySet};
use crate::store::lti::{self, KeyPosition, StoredToolKey};
use crate::store::{Db, StoreError};

/// Why the tool's keys could not be had. None of these carries key material.
#[derive(Debug, thiserror::Error)]
pub enum ToolKeyStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] ToolKeyError),
    /// Most often another master key than the one the keys were sealed with.
    #[error("the stored tool key {kid} does not open: {source}")]
    Sealed { kid: String, source: SecretError },
    #[error("the stored tool key {0} is not the key of that kid")]
    KidMismatch(String),
    #[error("the stored tool keys are not one current and one next key: {0}")]
    Incomplete(String),
}

/// The stored set, or a new one stored first when there is none.
pub async fn load_or_create(db: &Db, secrets: &SecretBox) -> Result<ToolKeySet, ToolKeyStoreError> {
    let stored = lti::load_tool_keys(db).await?;
    if !stored.is_empty() {
        return open_set(secrets, &stored);
    }
    // Generation is a one-off; a gateway racing this one may store its own set first, in
    // which case this one is dropped and the winner's is read back.
    let fresh = ToolKeySet::generate(Utc::now())?;
    let (current, next) = sealed_pair(secrets, &fresh);
    lti::insert_tool_key_set_if_absent(db, &current, &next).await?;
    open_set(secrets, &lti::load_tool_keys(db).await?)
}

/// Retires the current key, makes the next one current and publishes a new next, created
/// `now`; the set as saved.
pub async fn rotate(
    db: &Db,
    secrets: &SecretBox,
    now: DateTime<Utc>,
) -> Result<ToolKeySet, ToolKeyStoreError> {
    let mut set = load_or_create(db, secrets).await?;
    set.rotate(now)?;
    let (current, next) = sealed_pair(secrets, &set);
    lti::save_tool_key_set(db, &current, &next).await?;
    Ok(set)
}

fn sealed(secrets: &SecretBox, key: &ToolKey, position: KeyPosition) -> StoredToolKey {
    StoredToolKey {
        kid: key.kid().to_string(),
        sealed_key: secrets.seal_tool_key(key.kid(), &key.to_bytes()),
        position,
        created_at: key.created_at(),
    }
}

fn sealed_pair(secrets: &SecretBox, set: &ToolKeySet) -> (StoredToolKey, StoredToolKey) {
    (
        sealed(secrets, set.current(), KeyPosition::Current),
        sealed(secrets, set.next(), KeyPosition::Next),
    )
}

/// The set from its stored keys (current first), each opened and checked against its kid.
fn open_set(
    secrets: &SecretBox,
    stored: &[StoredToolKey],
) -> Result<ToolKeySet, ToolKeyStoreError> {
    let positions: Vec<KeyPosition> = stored.iter().map(|k| k.position).collect();
    if positions != [KeyPosition::Current, KeyPosition::Next] {
        return Err(ToolKeyStoreError::Incomplete(format!(
            "found {}",
            stored
                .iter()
                .map(|k| format!("{} ({})", k.kid, k.position.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let keys = stored
        .iter()
        .map(|k| open_key(secrets, k))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ToolKeySet::from_keys(keys)?)
}

fn open_key(secrets: &SecretBox, stored: &StoredToolKey) -> Result<ToolKey, ToolKeyStoreError> {
    let der = secrets
        .open_tool_key(&stored.kid, &stored.sealed_key)
        .map_err(|source| ToolKeyStoreError::Sealed {
            kid: stored.kid.clone(),
            source,
        })?;
    let key = ToolKey::from_bytes(&der, stored.created_at)?;
    // The kid is derived from the key; a row whose kid says otherwise was tampered with.
    if key.kid() != stored.kid {
        return Err(ToolKeyStoreError::KidMismatch(stored.kid.clone()));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::MasterKey;

    fn secret_box(master: &str) -> SecretBox {
        SecretBox::new(&MasterKey::from_secret(master).unwrap())
    }

    async fn memory_db() -> (Db, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        (Db::connect_and_migrate(&url).await.unwrap(), dir)
    }

    #[tokio::test]
    async fn the_first_use_makes_a_set_and_later_ones_read_it_back() {
        let (db, _dir) = memory_db().await;
        let sb = secret_box(&"m".repeat(32));
        let made = load_or_create(&db, &sb).await.unwrap();
        let again = load_or_create(&db, &sb).await.unwrap();
        assert_eq!(made.jwks(), again.jwks());
        assert_ne!(made.current().kid(), made.next().kid());
        let stored = lti::load_tool_keys(&db).await.unwrap();
        assert_eq!(stored.len(), 2);
        for key in &stored {
            let clear = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                sb.open_tool_key(&key.kid, &key.sealed_key).unwrap(),
            );
            assert!(!key.sealed_key.contains(&clear[..64]));
        }
    }

    #[tokio::test]
    async fn a_rotation_promotes_the_next_key_and_keeps_two() {
        let (db, _dir) = memory_db().await;
        let sb = secret_box(&"m".repeat(32));
        let before = load_or_create(&db, &sb).await.unwrap();
        let after = rotate(&db, &sb, Utc::now()).await.unwrap();
        assert_eq!(after.current().kid(), before.next().kid());
        assert_ne!(after.next().kid(), before.current().kid());
        let read = load_or_create(&db, &sb).await.unwrap();
        assert_eq!(read.jwks(), after.jwks());
        assert_eq!(lti::load_tool_keys(&db).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn another_master_key_or_a_swapped_kid_is_refused() {
        let (db, _dir) = memory_db().await;
        let sb = secret_box(&"m".repeat(32));
        load_or_create(&db, &sb).await.unwrap();
        let other = secret_box(&"o".repeat(32));
        assert!(matches!(
            load_or_create(&db, &other).await,
            Err(ToolKeyStoreError::Sealed {
                source: SecretError::Rejected,
                ..
            })
        ));
        // Keys swapped between rows do not open under each other's kid.
        let mut stored = lti::load_tool_keys(&db).await.unwrap();
        let (a, b) = (stored[0].sealed_key.clone(), stored[1].sealed_key.clone());
        stored[0].sealed_key = b;
        stored[1].sealed_key = a;
        lti::save_tool_key_set(&db, &stored[0], &stored[1])
            .await
            .unwrap();
        assert!(matches!(
            load_or_create(&db, &sb).await,
            Err(ToolKeyStoreError::Sealed { .. })
        ));
    }
}
