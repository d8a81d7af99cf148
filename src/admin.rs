//! Administrative actions shared by the CLI and the HTTP API.

use crate::auth::clients::{self, NewCredentials};
use crate::domain::district::{
    District, DistrictError, DistrictName, DistrictSettings, Slug, Timezone,
};
use crate::domain::scope::{self, Scope, UnknownScope};
use crate::store::{self, Db, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    District(#[from] DistrictError),
    #[error(transparent)]
    Scope(#[from] UnknownScope),
    #[error("a client needs at least one scope")]
    NoScopes,
    #[error("client name must be 1-100 characters")]
    BadClientName,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn create_district(
    db: &Db,
    slug: &str,
    name: &str,
    timezone: &str,
    settings: Option<DistrictSettings>,
) -> Result<District, AdminError> {
    let slug = Slug::parse(slug)?;
    let name = DistrictName::parse(name)?;
    let timezone = Timezone::parse(timezone)?;
    let settings = settings.unwrap_or_default().validate()?;
    Ok(store::districts::create(db, &slug, &name, timezone, &settings).await?)
}

/// Creates an API client; the returned secret is never stored or shown again.
pub async fn create_client(
    db: &Db,
    district: &District,
    name: &str,
    scopes: &str,
) -> Result<(NewCredentials, Vec<Scope>), AdminError> {
    let scopes = Scope::parse_list(scopes)?;
    if scopes.is_empty() {
        return Err(AdminError::NoScopes);
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AdminError::BadClientName);
    }
    let credentials = clients::generate();
    store::clients::insert(
        db,
        &credentials.client_id,
        district.id,
        name,
        &scope::join(&scopes),
        &clients::hash_secret(&credentials.client_secret),
    )
    .await?;
    Ok((credentials, scopes))
}
