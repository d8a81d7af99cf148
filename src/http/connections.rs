//! A district's connections to its source systems. The secret goes in once, sealed, and never
//! comes back out: answers say `"secret": "set"`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::config::Secret;
use crate::domain::connection::{ConnectionConfig, ConnectionSecrets};
use crate::domain::connection_input::{
    check_name, AuthInput, ConnectionInput, Field, FieldError, InputErrors, ScheduleInput,
};
use crate::domain::scope::Scope;
use crate::store::connections::{self, Sealed, StoredConnection};

/// A connection as the API (and the CLI's `--json`) shows it: its configuration, its state,
/// and never its secret.
pub fn connection_json(stored: &StoredConnection) -> Value {
    let mut view = serde_json::to_value(&stored.config).expect("configuration serializes");
    view["secret"] = json!("set");
    if stored.sealed_api_key.is_some() {
        view["api_key"] = json!("set");
    }
    view["delta_cursor"] = json!(stored.delta_cursor);
    view["last_full_at"] = json!(stored.last_full_at);
    view["created_at"] = json!(stored.created_at);
    view["updated_at"] = json!(stored.updated_at);
    view
}

/// The JSON pointer of a field in the request body.
pub fn pointer(field: Field) -> String {
    match field {
        Field::Name => "/name".into(),
        Field::Kind => "/kind".into(),
        Field::Version => "/version".into(),
        Field::BaseUrl => "/base_url".into(),
        Field::PageSize => "/page_size".into(),
        Field::AuthMethod => "/auth/type".into(),
        Field::TokenUrl => "/auth/token_url".into(),
        Field::ClientId => "/auth/client_id".into(),
        Field::ClientAuth => "/auth/client_auth".into(),
        Field::Scopes => "/auth/scopes".into(),
        Field::Scope(i) => format!("/auth/scopes/{i}"),
        Field::ConsumerKey => "/auth/consumer_key".into(),
        Field::SignatureMethod => "/auth/signature_method".into(),
        Field::Secret => "/secret".into(),
        Field::ApiKeyHeader => "/auth/api_key_header".into(),
        Field::ApiKey => "/api_key".into(),
        Field::RequestsPerSecond => "/limits/requests_per_second".into(),
        Field::MaxInFlight => "/limits/max_in_flight".into(),
        Field::TimeoutSecs => "/limits/timeout_secs".into(),
        Field::DeltaSchedule => "/schedule/delta".into(),
        Field::FullSchedule => "/schedule/full".into(),
    }
}

/// Refusals of a body, each at a JSON pointer: `422` with `code` and one detail per problem.
pub(crate) fn refusal(code: &'static str, problems: Vec<(String, String)>) -> ApiError {
    let message = problems
        .iter()
        .map(|(at, m)| match at.as_str() {
            "" => format!("the body {m}"),
            at => format!("{at}: {m}"),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let details = problems
        .into_iter()
        .map(|(at, m)| json!({ "pointer": at, "message": m }))
        .collect();
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_details(details)
}

fn invalid_fields(errors: InputErrors) -> ApiError {
    refusal(
        "invalid_field",
        errors
            .0
            .into_iter()
            .map(|e| (pointer(e.field), e.message))
            .collect(),
    )
}

/// A JSON object read member by member, noting every member of the wrong type, missing or
/// unknown, at its pointer. Every member the contract does not call valid is refused here.
/// Other JSON bodies (LTI platforms) are read with it too.
pub(crate) struct Reader<'v, 'p> {
    at: String,
    object: Option<&'v Map<String, Value>>,
    problems: &'p mut Vec<(String, String)>,
}

/// `~` and `/` escaped as RFC 6901 says, for a member name in a pointer.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

impl<'v, 'p> Reader<'v, 'p> {
    pub(crate) fn new(
        at: String,
        value: &'v Value,
        problems: &'p mut Vec<(String, String)>,
    ) -> Self {
        let object = value.as_object();
        if object.is_none() {
            problems.push((at.clone(), "must be an object".into()));
        }
        Reader {
            at,
            object,
            problems,
        }
    }

    pub(crate) fn refuse_unknown(&mut self, known: &[&str]) {
        for key in self.object.into_iter().flat_map(|o| o.keys()) {
            if !known.contains(&key.as_str()) {
                self.problems.push((
                    format!("{}/{}", self.at, escape(key)),
                    format!("unknown field (known: {})", known.join(", ")),
                ));
            }
        }
    }

    /// A member, `null` included: only schedules may be `null`, so it is a wrong type elsewhere.
    fn member(&self, key: &str) -> Option<&'v Value> {
        self.object?.get(key)
    }

    fn note(&mut self, key: &str, message: &str) {
        self.problems
            .push((format!("{}/{key}", self.at), message.to_string()));
    }

    pub(crate) fn opt_string(&mut self, key: &str) -> Option<String> {
        let value = self.member(key)?;
        match value.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.note(key, "must be a string");
                None
            }
        }
    }

    /// A required string; missing ones are noted only when the object itself is there.
    pub(crate) fn string(&mut self, key: &str) -> String {
        if self.object.is_some() && self.member(key).is_none() {
            self.note(key, "is required");
        }
        self.opt_string(key).unwrap_or_default()
    }

    fn opt_integer(&mut self, key: &str) -> Option<i64> {
        let value = self.member(key)?;
        match value.as_i64() {
            Some(n) => Some(n),
            None => {
                self.note(key, "must be a whole number");
                None
            }
        }
    }

    pub(crate) fn strings(&mut self, key: &str) -> Vec<String> {
        let Some(value) = self.member(key) else {
            return Vec::new();
        };
        let Some(items) = value.as_array() else {
            self.note(key, "must be an array of strings");
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) => out.push(s.to_string()),
                None => self.note(&format!("{key}/{i}"), "must be a string"),
            }
        }
        out
    }

    /// Absent: the default; `null` or `"off"`: off; otherwise a schedule's text.
    fn schedule(&mut self, key: &str) -> ScheduleInput {
        match self.object.and_then(|o| o.get(key)) {
            None => ScheduleInput::Default,
            Some(Value::Null) => ScheduleInput::Off,
            Some(Value::String(s)) => ScheduleInput::from_text(s),
            Some(_) => {
                self.note(key, "must be a string or null");
                ScheduleInput::Default
            }
        }
    }
}

/// Reads a create body into a connection's input, or refuses it naming every bad member.
fn input_from_json(body: &Value) -> Result<ConnectionInput, ApiError> {
    let mut problems = Vec::new();
    let mut top = Reader::new(String::new(), body, &mut problems);
    top.refuse_unknown(&[
        "name",
        "kind",
        "version",
        "base_url",
        "page_size",
        "auth",
        "secret",
        "api_key",
        "limits",
        "schedule",
    ]);
    let name = top.string("name");
    let kind = top.string("kind");
    // Optional: an assessment-rest connection has one version; validation says when one is
    // missing.
    let version = top.opt_string("version").unwrap_or_default();
    let base_url = top.string("base_url");
    let page_size = top.opt_integer("page_size");
    let secret = top.opt_string("secret").map(Secret::new);
    let api_key = top.opt_string("api_key").map(Secret::new);
    let auth_value = top.member("auth");
    if top.object.is_some() && auth_value.is_none() {
        top.note("auth", "is required");
    }
    let limits_value = top.member("limits");
    let schedule_value = top.member("schedule");
    drop(top);

    let mut auth = AuthInput::default();
    if let Some(value) = auth_value {
        let mut r = Reader::new("/auth".into(), value, &mut problems);
        r.refuse_unknown(&[
            "type",
            "token_url",
            "client_id",
            "client_auth",
            "scopes",
            "consumer_key",
            "signature_method",
            "api_key_header",
        ]);
        auth = AuthInput {
            method: r.string("type"),
            token_url: r.opt_string("token_url"),
            client_id: r.opt_string("client_id"),
            client_auth: r.opt_string("client_auth"),
            scopes: r.strings("scopes"),
            consumer_key: r.opt_string("consumer_key"),
            signature_method: r.opt_string("signature_method"),
            api_key_header: r.opt_string("api_key_header"),
        };
    }
    let (mut requests_per_second, mut max_in_flight, mut timeout_secs) = (None, None, None);
    if let Some(value) = limits_value {
        let mut r = Reader::new("/limits".into(), value, &mut problems);
        r.refuse_unknown(&["requests_per_second", "max_in_flight", "timeout_secs"]);
        requests_per_second = r.opt_integer("requests_per_second");
        max_in_flight = r.opt_integer("max_in_flight");
        timeout_secs = r.opt_integer("timeout_secs");
    }
    let (mut delta_schedule, mut full_schedule) = (ScheduleInput::Default, ScheduleInput::Default);
    if let Some(value) = schedule_value {
        let mut r = Reader::new("/schedule".into(), value, &mut problems);
        r.refuse_unknown(&["delta", "full"]);
        delta_schedule = r.schedule("delta");
        full_schedule = r.schedule("full");
    }
    if !problems.is_empty() {
        return Err(refusal("invalid_body", problems));
    }
    Ok(ConnectionInput {
        name,
        kind,
        version,
        base_url,
        page_size,
        auth,
        secret,
        api_key,
        requests_per_second,
        max_in_flight,
        timeout_secs,
        delta_schedule,
        full_schedule,
    })
}

pub(crate) fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "connection {} not found",
        crate::domain::problem::quoted(name)
    ))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.as_str()))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::Admin).await?;
    let all = connections::list(&state.db, district.id).await?;
    let listed: Vec<Value> = all.iter().map(connection_json).collect();
    Ok(HttpResponse::Ok().json(json!({ "connections": listed })))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.as_str()))]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::Admin).await?;
    let (config, secrets) = input_from_json(&body)?.validate().map_err(invalid_fields)?;
    let (secret, api_key) = state
        .secrets
        .seal_connection(district.id, &config.name, &secrets);
    let sealed = Sealed {
        secret: &secret,
        api_key: api_key.as_deref(),
    };
    let stored = connections::insert(&state.db, district.id, &config, sealed).await?;
    tracing::info!(connection = %stored.config.name, "connection created");
    Ok(HttpResponse::Created()
        .insert_header((
            "Location",
            format!(
                "/api/v1/districts/{}/connections/{}",
                district.slug, stored.config.name
            ),
        ))
        .json(connection_json(&stored)))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, name) = path.into_inner();
    let district = caller.district(&state, &district, Scope::Admin).await?;
    let stored = connections::find(&state.db, district.id, &name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    Ok(HttpResponse::Ok().json(connection_json(&stored)))
}

/// A replacing body's checked configuration and secret: valid as a new one would be, and
/// naming the connection of the path (a connection is never renamed this way).
fn validate_replacement(
    input: &ConnectionInput,
    path_name: &str,
) -> Result<(ConnectionConfig, ConnectionSecrets), InputErrors> {
    let mismatch = (input.name != path_name).then(|| FieldError {
        field: Field::Name,
        message: "must be the connection's name in the URL (a connection cannot be renamed)".into(),
    });
    match (input.validate(), mismatch) {
        (Ok(valid), None) => Ok(valid),
        (Ok(_), Some(mismatch)) => Err(InputErrors(vec![mismatch])),
        (Err(mut errors), Some(mismatch)) => {
            if !errors.0.iter().any(|e| e.field == Field::Name) {
                errors.0.insert(0, mismatch);
            }
            Err(errors)
        }
        (Err(errors), None) => Err(errors),
    }
}

/// Replaces a connection's configuration and secret. Its cursor survives when the source
/// stays the same (a rotated secret, a new token URL), so the next pull need not be full.
#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn replace(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (district, name) = path.into_inner();
    let district = caller.district(&state, &district, Scope::Admin).await?;
    // No connection can have a name the rules refuse: the path names nothing there is.
    if check_name(&name).is_err() {
        return Err(not_found(&name));
    }
    let (config, secrets) =
        validate_replacement(&input_from_json(&body)?, &name).map_err(invalid_fields)?;
    let (secret, api_key) = state
        .secrets
        .seal_connection(district.id, &config.name, &secrets);
    let sealed = Sealed {
        secret: &secret,
        api_key: api_key.as_deref(),
    };
    let stored = connections::replace(&state.db, district.id, &config, sealed)
        .await?
        .ok_or_else(|| not_found(&name))?;
    tracing::info!(
        connection = %stored.config.name,
        cursor_kept = stored.delta_cursor.is_some(),
        "connection replaced"
    );
    Ok(HttpResponse::Ok().json(connection_json(&stored)))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, name) = path.into_inner();
    let district = caller.district(&state, &district, Scope::Admin).await?;
    if connections::delete(&state.db, district.id, &name).await? {
        tracing::info!(connection = %name, "connection removed");
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(not_found(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointers(body: Value) -> Vec<String> {
        let error = input_from_json(&body).expect_err("refused");
        error
            .details
            .iter()
            .map(|d| d["pointer"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn wrong_types_and_unknown_members_are_refused_at_their_pointers() {
        let cases = [
            (json!([]), vec![""]),
            (
                json!({"name": 1, "kind": "oneroster-rest", "version": "1.2", "base_url": "x", "auth": {"type": "oauth2"}}),
                vec!["/name"],
            ),
            (
                json!({"name": "a", "version": 1.2, "base_url": "x", "auth": {"type": "oauth2"}, "page_size": "10"}),
                vec!["/kind", "/version", "/page_size"],
            ),
            (
                json!({"name": "a", "kind": "k", "version": "1.2", "base_url": "x", "auth": {"type": "oauth2", "scopes": ["a", 2], "x/y": 1}}),
                vec!["/auth/x~1y", "/auth/scopes/1"],
            ),
            (
                json!({"name": "a", "kind": "k", "version": "1.2", "base_url": "x", "auth": "oauth2", "limits": {"max_in_flight": 1.5}, "schedule": {"delta": 3}}),
                vec!["/auth", "/limits/max_in_flight", "/schedule/delta"],
            ),
            (
                json!({"name": "a", "kind": "k", "version": "1.2", "base_url": "x", "extra": true}),
                vec!["/extra", "/auth"],
            ),
            (
                json!({"name": null, "kind": "k", "version": "1.2", "base_url": "x", "page_size": null,
                    "auth": {"type": "oauth2", "scopes": null}, "limits": null}),
                vec!["/name", "/page_size", "/auth/scopes", "/limits"],
            ),
        ];
        for (body, want) in cases {
            assert_eq!(pointers(body.clone()), want, "{body}");
        }
    }

    #[test]
    fn a_replacement_must_name_the_connection_of_its_path() {
        let body = |name: &str, page_size: i64| {
            json!({"name": name, "kind": "oneroster-rest", "version": "1.2",
                "base_url": "https://sis.example.org", "page_size": page_size,
                "auth": {"type": "oauth2", "token_url": "https://sis.example.org/token",
                    "client_id": "gateway"}, "secret": "s"})
        };
        let fields = |body: Value| -> Vec<Field> {
            match validate_replacement(&input_from_json(&body).unwrap(), "sis") {
                Ok(_) => Vec::new(),
                Err(errors) => errors.0.into_iter().map(|e| e.field).collect(),
            }
        };
        assert_eq!(fields(body("sis", 10)), []);
        assert_eq!(fields(body("other", 10)), [Field::Name]);
        assert_eq!(fields(body("other", 0)), [Field::Name, Field::PageSize]);
        // A name that is invalid anyway is refused once.
        assert_eq!(fields(body("Not A Name", 10)), [Field::Name]);
    }

    #[test]
    fn schedules_absent_null_and_off_read_as_default_off_and_off() {
        let body = json!({"name": "a", "kind": "k", "version": "1.2", "base_url": "x",
            "auth": {"type": "oauth2"}, "schedule": {"delta": null, "full": "off"}});
        let input = input_from_json(&body).unwrap();
        assert_eq!(input.delta_schedule, ScheduleInput::Off);
        assert_eq!(input.full_schedule, ScheduleInput::Off);
        let body = json!({"name": "a", "kind": "k", "version": "1.2", "base_url": "x",
            "auth": {"type": "oauth2"}, "schedule": {"full": "daily 02:30"}});
        let input = input_from_json(&body).unwrap();
        assert_eq!(input.delta_schedule, ScheduleInput::Default);
        assert_eq!(
            input.full_schedule,
            ScheduleInput::Text("daily 02:30".into())
        );
    }
}
