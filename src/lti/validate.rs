//! An LTI 1.3 id_token checked before anyone is signed in (shared/reference/lti13.md §5).
//!
//! [`validate`] runs the reference's checks 2–21 in its order and stops at the first failure,
//! each failure a [`LaunchError`] variant with its own stable [`LaunchError::code`]. Check 1 (the
//! state) is the caller's: it consumes the state record atomically and hands over the nonce,
//! target_link_uri and deployment id the login stored ([`Expected`]).
//!
//! Why this order: nothing in a token is believed before its signature is (checks 2–6 are the
//! cheapest way to refuse garbage and forgeries; the claims of an unsigned token are never
//! read), then whom it is for and when (7–11), then that it answers *this* login (12), then what
//! kind of LTI message it is and the claims that message needs (13–20). The order also fixes
//! which code a token with several faults gets, which is what the tests pin.
//!
//! `jsonwebtoken` only verifies the signature here ([`jsonwebtoken::crypto::verify`]): its claim
//! validation would check `aud` as "any value intersects" (no extra-audience or `azp` rule),
//! never looks at `iat`, and would check `exp` before `iss`/`aud`, out of the reference's order.
//! The algorithm is this module's allow-list ([`ALGORITHM`]), never the header's.
//!
//! Claims the gateway does not use are ignored (check 21); optional claims that are malformed
//! read as absent rather than refusing a launch the platform meant to be valid.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::{Map, Value};

use super::{KeyError, KeySource, Registration, UnknownDeployments};

#[cfg(test)]
mod tests;

/// The one signing algorithm launches may use (Cert §4.2: RSA-256 only, symmetric forbidden).
pub const ALGORITHM: Algorithm = Algorithm::RS256;
/// How late an `exp` may be and still pass (Sec §5.1.2: "no more than a few minutes").
pub const EXP_LEEWAY_SECS: i64 = 60;
/// How far ahead of our clock an `iat` may be (a platform clock running slightly fast).
pub const IAT_AHEAD_SECS: i64 = 60;
/// How old an `iat` may be: the login (and its state) lives at most ten minutes.
pub const IAT_MAX_AGE_SECS: i64 = 600;
/// The longest `deployment_id` and `resource_link.id` (Core §3.1.3, §3.2.3).
pub const MAX_ID_LEN: usize = 255;

/// The only LTI version accepted.
pub const LTI_VERSION: &str = "1.3.0";

const CLAIM_VERSION: &str = "https://purl.imsglobal.org/spec/lti/claim/version";
const CLAIM_MESSAGE_TYPE: &str = "https://purl.imsglobal.org/spec/lti/claim/message_type";
const CLAIM_DEPLOYMENT_ID: &str = "https://purl.imsglobal.org/spec/lti/claim/deployment_id";
const CLAIM_ROLES: &str = "https://purl.imsglobal.org/spec/lti/claim/roles";
const CLAIM_RESOURCE_LINK: &str = "https://purl.imsglobal.org/spec/lti/claim/resource_link";
const CLAIM_TARGET_LINK_URI: &str = "https://purl.imsglobal.org/spec/lti/claim/target_link_uri";
const CLAIM_CONTEXT: &str = "https://purl.imsglobal.org/spec/lti/claim/context";
const CLAIM_LIS: &str = "https://purl.imsglobal.org/spec/lti/claim/lis";
const CLAIM_LAUNCH_PRESENTATION: &str =
    "https://purl.imsglobal.org/spec/lti/claim/launch_presentation";
const CLAIM_CUSTOM: &str = "https://purl.imsglobal.org/spec/lti/claim/custom";
const CLAIM_DEEP_LINKING: &str =
    "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings";
const CLAIM_NRPS: &str = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice";
const CLAIM_AGS: &str = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint";

const MEMBERSHIP_ROLE: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership";
const TEST_USER_ROLE: &str = "http://purl.imsglobal.org/vocab/lti/system/person#TestUser";
/// Context roles a platform may send by their simple name (Core §A.2.3.1).
const SHORT_CONTEXT_ROLES: [&str; 8] = [
    "Administrator",
    "ContentDeveloper",
    "Instructor",
    "Learner",
    "Mentor",
    "Manager",
    "Member",
    "Officer",
];

/// What the token is checked against, besides its signature.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub registration: &'a Registration,
    /// The nonce stored with the consumed state.
    pub nonce: &'a str,
    /// The login's (unsigned) target_link_uri.
    pub login_target_link_uri: &'a str,
    /// The deployment id the login named (`lti_deployment_id`, or Canvas's `deployment_id`).
    pub login_deployment_id: Option<&'a str>,
    /// The tool's own launch URLs. A target_link_uri is the tool's when, after normalisation
    /// (scheme and host lower-cased, default port dropped, empty path as `/`), it equals one of
    /// them, or has the same origin and a path at or below one of theirs at a `/` boundary (so
    /// deep-linked resources such as `…/lti/launch/r/42` pass for `…/lti/launch`, and
    /// `…/lti/launchpad` does not). A tool URL with a query or fragment matches only exactly.
    /// URLs with userinfo, `.`/`..` segments, backslashes, whitespace or a scheme other than
    /// http(s) are never the tool's.
    pub tool_urls: &'a [String],
    /// Seconds since the epoch.
    pub now: i64,
}

/// A launch that passed every check: what a handler needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub message_type: MessageType,
    /// The platform's stable user id (the NRPS `user_id`).
    pub sub: String,
    pub deployment_id: String,
    pub deployment: DeploymentStatus,
    /// The `roles` claim as sent (may be empty or hold `""`).
    pub roles: Vec<String>,
    /// The context role the gateway acts on (§7); institution and system roles never map.
    pub role: LaunchRole,
    /// Canvas "Student View" and the like: not to be rostered or counted.
    pub test_user: bool,
    /// Present on resource link launches; a deep linking request may have none.
    pub resource_link: Option<ResourceLink>,
    pub context: Option<Context>,
    pub lis: Option<Lis>,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub email: Option<String>,
    /// The signed target: the only URL a launch may redirect to.
    pub target_link_uri: String,
    /// `launch_presentation.return_url`.
    pub return_url: Option<String>,
    /// Custom parameters; non-string scalars arrive as their JSON text.
    pub custom: BTreeMap<String, String>,
    /// Present exactly when `message_type` is [`MessageType::DeepLinking`].
    pub deep_linking: Option<DeepLinkingSettings>,
    pub names_roles: Option<NamesRoleService>,
    pub grades: Option<GradeService>,
}

/// The LTI messages the gateway handles (check 14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// `LtiResourceLinkRequest`.
    ResourceLink,
    /// `LtiDeepLinkingRequest`.
    DeepLinking,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::ResourceLink => "LtiResourceLinkRequest",
            MessageType::DeepLinking => "LtiDeepLinkingRequest",
        }
    }
}

/// Whether the launch's deployment is one the registration lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStatus {
    Known,
    /// Not listed, admitted by [`UnknownDeployments::Pending`] until an administrator claims it.
    Pending,
}

/// The gateway's reading of the context roles (§7): the most privileged one wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchRole {
    /// `membership#Administrator`: a class administrator.
    Administrator,
    /// `membership#Instructor` (or any instructor sub-role but the co-teaching ones).
    Teacher,
    /// `membership/Instructor#TeachingAssistant` or `#SecondaryInstructor` without
    /// `#PrimaryInstructor`.
    CoTeacher,
    /// `membership#Mentor`: a guardian or coach view.
    Mentor,
    /// `membership#Learner`.
    Student,
    /// Unknown, empty, or only roles that grant nothing (ContentDeveloper, Member, …).
    None,
}

impl LaunchRole {
    /// The role as a session names it.
    pub fn as_str(self) -> &'static str {
        match self {
            LaunchRole::Administrator => "administrator",
            LaunchRole::Teacher => "teacher",
            LaunchRole::CoTeacher => "co_teacher",
            LaunchRole::Mentor => "mentor",
            LaunchRole::Student => "student",
            LaunchRole::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceLink {
    pub id: String,
    pub title: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub id: String,
    pub label: Option<String>,
    pub title: Option<String>,
}

/// The join keys to OneRoster sourcedIds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lis {
    pub person_sourcedid: Option<String>,
    pub course_section_sourcedid: Option<String>,
    pub course_offering_sourcedid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeepLinkingSettings {
    pub deep_link_return_url: String,
    pub accept_types: Vec<String>,
    pub accept_presentation_document_targets: Vec<String>,
    pub accept_multiple: Option<bool>,
    /// Opaque; to be echoed verbatim in the response.
    pub data: Option<Value>,
}

/// The NRPS claim: the launch offers the context's membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamesRoleService {
    pub context_memberships_url: String,
    pub service_versions: Vec<String>,
}

/// The AGS claim: what the launch lets the tool do with grades.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GradeService {
    pub scope: Vec<String>,
    pub lineitems: Option<String>,
    pub lineitem: Option<String>,
}

/// Why a launch was refused: one variant per failure the reference names, in check order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    // Check 2.
    #[error("the id_token is not a JWT: {0}")]
    MalformedJwt(&'static str),
    // Check 3.
    #[error("the id_token header alg is {0:?}, expected \"RS256\"")]
    DisallowedAlgorithm(String),
    // Check 4.
    #[error("the id_token header has no kid")]
    MissingKid,
    // Check 5.
    #[error("the platform's key set has no key with kid {0:?}")]
    UnknownKid(String),
    #[error("the platform's key for kid {kid:?} cannot be had: {reason}")]
    KeyUnavailable { kid: String, reason: String },
    // Check 6.
    #[error("the id_token signature does not verify with the platform's key {0:?}")]
    BadSignature(String),
    // Check 7.
    #[error("the iss claim is {found}, expected {expected:?}")]
    WrongIssuer { expected: String, found: String },
    // Check 8.
    #[error("the aud claim is {found}, expected it to contain the client id {expected:?}")]
    WrongAudience { expected: String, found: String },
    #[error("the aud claim names {0:?} besides our client id; no other audience is trusted")]
    UntrustedAudience(String),
    // Check 9.
    #[error("the aud claim has several values and no azp claim names our client id")]
    MissingAzp,
    #[error("the azp claim is {found}, expected {expected:?}")]
    WrongAzp { expected: String, found: String },
    // Check 10.
    #[error("the exp claim is missing")]
    MissingExp,
    #[error("the exp claim {exp} is past (now {now}, leeway 60 s)")]
    Expired { exp: i64, now: i64 },
    // Check 11.
    #[error("the iat claim is missing")]
    MissingIat,
    #[error("the iat claim {iat} is in the future (now {now}, leeway 60 s)")]
    IatInFuture { iat: i64, now: i64 },
    #[error("the iat claim {iat} is more than 600 s old (now {now})")]
    IatTooOld { iat: i64, now: i64 },
    // Check 12.
    #[error("the nonce claim is missing")]
    MissingNonce,
    #[error("the nonce claim is not the nonce of this login")]
    NonceMismatch,
    // Check 13.
    #[error("the LTI version claim ({CLAIM_VERSION}) is missing, expected \"1.3.0\"")]
    MissingLtiVersion,
    #[error("the LTI version claim is {0}, expected \"1.3.0\"")]
    WrongLtiVersion(String),
    // Check 14.
    #[error("the message_type claim ({CLAIM_MESSAGE_TYPE}) is missing")]
    MissingMessageType,
    #[error(
        "the message_type claim is {0}, expected \"LtiResourceLinkRequest\" or \"LtiDeepLinkingRequest\""
    )]
    UnsupportedMessageType(String),
    // Check 15.
    #[error("the deployment_id claim ({CLAIM_DEPLOYMENT_ID}) is missing")]
    MissingDeploymentId,
    #[error("the deployment_id claim is {0} characters long, expected at most 255")]
    DeploymentIdTooLong(usize),
    #[error("the deployment_id {0:?} is not one of this registration's deployments")]
    UnknownDeployment(String),
    #[error("the deployment_id claim is {found:?}, but the login named deployment {expected:?}")]
    DeploymentMismatch { expected: String, found: String },
    // Check 16.
    #[error("the roles claim ({CLAIM_ROLES}) is missing")]
    MissingRoles,
    // Check 17.
    #[error("the resource_link claim has no id ({CLAIM_RESOURCE_LINK})")]
    MissingResourceLinkId,
    #[error("the resource_link id is {0} characters long, expected at most 255")]
    ResourceLinkIdTooLong(usize),
    // Check 18.
    #[error("the sub claim is missing (anonymous launches are refused)")]
    MissingSub,
    // Check 19.
    #[error("the target_link_uri claim ({CLAIM_TARGET_LINK_URI}) is missing")]
    MissingTargetLinkUri,
    #[error("the target_link_uri claim is {found:?}, but the login asked for {expected:?}")]
    TargetLinkUriMismatch { expected: String, found: String },
    #[error("the target_link_uri claim {0:?} is not one of the tool's launch URLs")]
    ForeignTargetLinkUri(String),
    // Check 20.
    #[error("the deep_linking_settings claim ({CLAIM_DEEP_LINKING}) is missing")]
    MissingDeepLinkingSettings,
    #[error("the deep_linking_settings claim has no valid {0}")]
    IncompleteDeepLinkingSettings(&'static str),
    // Any check: a claim present with the wrong JSON shape.
    #[error("the {claim} claim is malformed, expected {expected}")]
    InvalidClaim {
        claim: &'static str,
        expected: &'static str,
    },
}

impl LaunchError {
    /// A stable, snake_case reason code for logs, metrics and the error page.
    pub fn code(&self) -> &'static str {
        use LaunchError::*;
        match self {
            MalformedJwt(_) => "malformed_jwt",
            DisallowedAlgorithm(_) => "disallowed_alg",
            MissingKid => "missing_kid",
            UnknownKid(_) => "unknown_kid",
            KeyUnavailable { .. } => "key_unavailable",
            BadSignature(_) => "bad_signature",
            WrongIssuer { .. } => "wrong_issuer",
            WrongAudience { .. } => "wrong_audience",
            UntrustedAudience(_) => "untrusted_audience",
            MissingAzp => "missing_azp",
            WrongAzp { .. } => "wrong_azp",
            MissingExp => "missing_exp",
            Expired { .. } => "expired",
            MissingIat => "missing_iat",
            IatInFuture { .. } => "iat_in_future",
            IatTooOld { .. } => "iat_too_old",
            MissingNonce => "missing_nonce",
            NonceMismatch => "nonce_mismatch",
            MissingLtiVersion => "missing_lti_version",
            WrongLtiVersion(_) => "wrong_lti_version",
            MissingMessageType => "missing_message_type",
            UnsupportedMessageType(_) => "unsupported_message_type",
            MissingDeploymentId => "missing_deployment_id",
            DeploymentIdTooLong(_) => "deployment_id_too_long",
            UnknownDeployment(_) => "unknown_deployment",
            DeploymentMismatch { .. } => "deployment_mismatch",
            MissingRoles => "missing_roles",
            MissingResourceLinkId => "missing_resource_link_id",
            ResourceLinkIdTooLong(_) => "resource_link_id_too_long",
            MissingSub => "missing_sub",
            MissingTargetLinkUri => "missing_target_link_uri",
            TargetLinkUriMismatch { .. } => "target_link_uri_mismatch",
            ForeignTargetLinkUri(_) => "foreign_target_link_uri",
            MissingDeepLinkingSettings => "missing_deep_linking_settings",
            IncompleteDeepLinkingSettings(_) => "incomplete_deep_linking_settings",
            InvalidClaim { .. } => "invalid_claim",
        }
    }

    /// The HTTP status (§5): 401 when the token is not trusted or not meant for this login,
    /// 400 when it is malformed or lacks a claim, 503 when the platform's keys cannot be had
    /// (the platform's fault, and a retry may pass).
    pub fn status(&self) -> u16 {
        use LaunchError::*;
        match self {
            DisallowedAlgorithm(_)
            | MissingKid
            | UnknownKid(_)
            | BadSignature(_)
            | WrongIssuer { .. }
            | WrongAudience { .. }
            | UntrustedAudience(_)
            | MissingAzp
            | WrongAzp { .. }
            | Expired { .. }
            | IatInFuture { .. }
            | IatTooOld { .. }
            | NonceMismatch
            | UnknownDeployment(_)
            | DeploymentMismatch { .. }
            | TargetLinkUriMismatch { .. } => 401,
            KeyUnavailable { .. } => 503,
            MalformedJwt(_)
            | MissingExp
            | MissingIat
            | MissingNonce
            | MissingLtiVersion
            | WrongLtiVersion(_)
            | MissingMessageType
            | UnsupportedMessageType(_)
            | MissingDeploymentId
            | DeploymentIdTooLong(_)
            | MissingRoles
            | MissingResourceLinkId
            | ResourceLinkIdTooLong(_)
            | MissingSub
            | MissingTargetLinkUri
            | ForeignTargetLinkUri(_)
            | MissingDeepLinkingSettings
            | IncompleteDeepLinkingSettings(_)
            | InvalidClaim { .. } => 400,
        }
    }
}

/// Checks `id_token` (§5 checks 2–21, in order) and reads the launch out of it.
pub async fn validate(
    id_token: &str,
    expected: &Expected<'_>,
    keys: &impl KeySource,
) -> Result<Launch, LaunchError> {
    let jwt = Jwt::split(id_token)?; // 2
    check_algorithm(&jwt.header)?; // 3
    let kid = kid(id_token)?; // 4
    let key = keys.key(&kid).await.map_err(|e| match e {
        // 5 (the source has already refetched once)
        KeyError::UnknownKid(kid) => LaunchError::UnknownKid(clip(&kid)),
        KeyError::Unavailable(reason) => LaunchError::KeyUnavailable {
            kid: clip(&kid),
            reason,
        },
    })?;
    jwt.verify(&kid, &key)?; // 6
    let claims = &jwt.payload;
    let registration = expected.registration;
    check_issuer(claims, &registration.issuer)?; // 7
    check_audience(claims, &registration.client_id)?; // 8, 9
    check_times(claims, expected.now)?; // 10, 11
    check_nonce(claims, expected.nonce)?; // 12
    check_version(claims)?; // 13
    let message_type = message_type(claims)?; // 14
    let (deployment_id, deployment) = deployment(claims, expected)?; // 15
    let roles = roles(claims)?; // 16
    let resource_link = resource_link(claims, message_type)?; // 17
    let sub = sub(claims)?; // 18
    let target_link_uri = target_link_uri(claims, expected)?; // 19
    let deep_linking = match message_type {
        MessageType::DeepLinking => Some(deep_linking_settings(claims)?), // 20
        MessageType::ResourceLink => None,
    };

    // 21: the rest is optional and read leniently.
    let (role, test_user) = map_roles(&roles);
    let object = |name: &str| claims.get(name).and_then(Value::as_object);
    Ok(Launch {
        message_type,
        sub,
        deployment_id,
        deployment,
        role,
        test_user,
        roles,
        resource_link,
        context: object(CLAIM_CONTEXT).and_then(|c| {
            Some(Context {
                id: text(c, "id")?,
                label: text(c, "label"),
                title: text(c, "title"),
            })
        }),
        lis: object(CLAIM_LIS).map(|l| Lis {
            person_sourcedid: text(l, "person_sourcedid"),
            course_section_sourcedid: text(l, "course_section_sourcedid"),
            course_offering_sourcedid: text(l, "course_offering_sourcedid"),
        }),
        name: text(claims, "name"),
        given_name: text(claims, "given_name"),
        family_name: text(claims, "family_name"),
        email: text(claims, "email"),
        target_link_uri,
        return_url: object(CLAIM_LAUNCH_PRESENTATION).and_then(|p| text(p, "return_url")),
        custom: object(CLAIM_CUSTOM).map(custom).unwrap_or_default(),
        deep_linking,
        names_roles: object(CLAIM_NRPS).and_then(|n| {
            Some(NamesRoleService {
                context_memberships_url: text(n, "context_memberships_url")?,
                service_versions: strings(n.get("service_versions")).unwrap_or_default(),
            })
        }),
        grades: object(CLAIM_AGS).map(|a| GradeService {
            scope: strings(a.get("scope")).unwrap_or_default(),
            lineitems: text(a, "lineitems"),
            lineitem: text(a, "lineitem"),
        }),
    })
}

/// The three parts of a compact JWS, header and payload parsed (check 2).
struct Jwt<'t> {
    header: Map<String, Value>,
    payload: Map<String, Value>,
    signing_input: &'t str,
    signature: &'t str,
}

impl<'t> Jwt<'t> {
    fn split(token: &'t str) -> Result<Jwt<'t>, LaunchError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(LaunchError::MalformedJwt(
                "expected three base64url segments separated by '.'",
            ));
        };
        let object = |segment: &str, what: &'static str| {
            URL_SAFE_NO_PAD
                .decode(segment)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
                .ok_or(LaunchError::MalformedJwt(what))
        };
        Ok(Jwt {
            header: object(header, "the header is not a base64url-encoded JSON object")?,
            payload: object(
                payload,
                "the payload is not a base64url-encoded JSON object",
            )?,
            signing_input: &token[..header.len() + 1 + payload.len()],
            signature,
        })
    }

    /// Check 6, with the configured algorithm.
    fn verify(&self, kid: &str, key: &DecodingKey) -> Result<(), LaunchError> {
        if key.family() != AlgorithmFamily::Rsa {
            return Err(LaunchError::KeyUnavailable {
                kid: clip(kid),
                reason: "the platform's key is not an RSA key".into(),
            });
        }
        // A signature that is not even base64url is as bad as one that does not verify.
        match jsonwebtoken::crypto::verify(
            self.signature,
            self.signing_input.as_bytes(),
            key,
            ALGORITHM,
        ) {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(LaunchError::BadSignature(clip(kid))),
        }
    }
}

/// Check 3: the header's `alg` must be the configured one; it only ever picks a refusal.
fn check_algorithm(header: &Map<String, Value>) -> Result<(), LaunchError> {
    match header.get("alg") {
        Some(Value::String(alg)) if alg == "RS256" => Ok(()),
        Some(Value::String(alg)) => Err(LaunchError::DisallowedAlgorithm(clip(alg))),
        Some(other) => Err(LaunchError::DisallowedAlgorithm(shown(other))),
        None => Err(LaunchError::MalformedJwt("the header has no alg")),
    }
}

/// Check 4: the `kid`, even for a platform with one key (Sec §6.3).
fn kid(token: &str) -> Result<String, LaunchError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| LaunchError::MalformedJwt("the header is not a JOSE header"))?;
    match header.kid {
        Some(kid) if !kid.is_empty() => Ok(kid),
        _ => Err(LaunchError::MissingKid),
    }
}

/// Check 7: exact, case-sensitive.
fn check_issuer(claims: &Map<String, Value>, issuer: &str) -> Result<(), LaunchError> {
    match claims.get("iss") {
        Some(Value::String(iss)) if iss == issuer => Ok(()),
        found => Err(LaunchError::WrongIssuer {
            expected: issuer.to_string(),
            found: found.map_or_else(|| "absent".to_string(), shown),
        }),
    }
}

/// Checks 8 and 9. The gateway trusts no audience but its own client id, so an extra value is
/// refused outright; `azp` then matters for an array of several values (ours repeated) and,
/// when present, must be ours whatever the shape of `aud`.
fn check_audience(claims: &Map<String, Value>, client_id: &str) -> Result<(), LaunchError> {
    let wrong = |found: Option<&Value>| LaunchError::WrongAudience {
        expected: client_id.to_string(),
        found: found.map_or_else(|| "absent".to_string(), shown),
    };
    let aud = claims.get("aud");
    let audiences: Vec<&str> = match aud {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many
            .iter()
            .map(|v| v.as_str().ok_or_else(|| wrong(aud)))
            .collect::<Result<_, _>>()?,
        found => return Err(wrong(found)),
    };
    if !audiences.contains(&client_id) {
        return Err(wrong(aud));
    }
    if let Some(other) = audiences.iter().find(|a| **a != client_id) {
        return Err(LaunchError::UntrustedAudience(clip(other)));
    }
    match claims.get("azp") {
        None if audiences.len() > 1 => Err(LaunchError::MissingAzp),
        None => Ok(()),
        Some(Value::String(azp)) if azp == client_id => Ok(()),
        Some(found) => Err(LaunchError::WrongAzp {
            expected: client_id.to_string(),
            found: shown(found),
        }),
    }
}

/// Checks 10 and 11.
fn check_times(claims: &Map<String, Value>, now: i64) -> Result<(), LaunchError> {
    let exp = seconds(claims, "exp")?.ok_or(LaunchError::MissingExp)?;
    if now > exp + EXP_LEEWAY_SECS {
        return Err(LaunchError::Expired { exp, now });
    }
    let iat = seconds(claims, "iat")?.ok_or(LaunchError::MissingIat)?;
    if iat > now + IAT_AHEAD_SECS {
        return Err(LaunchError::IatInFuture { iat, now });
    }
    if iat < now - IAT_MAX_AGE_SECS {
        return Err(LaunchError::IatTooOld { iat, now });
    }
    Ok(())
}

/// A NumericDate claim: an integer or a float (fractions dropped).
fn seconds(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, LaunchError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(LaunchError::InvalidClaim {
                claim: name,
                expected: "seconds since the epoch",
            }),
        Some(_) => Err(LaunchError::InvalidClaim {
            claim: name,
            expected: "seconds since the epoch",
        }),
    }
}

/// Check 12; the caller has consumed the state (and so the nonce) already.
fn check_nonce(claims: &Map<String, Value>, nonce: &str) -> Result<(), LaunchError> {
    match claims.get("nonce") {
        None | Some(Value::Null) => Err(LaunchError::MissingNonce),
        Some(Value::String(found)) if found.is_empty() => Err(LaunchError::MissingNonce),
        Some(Value::String(found))
            if !nonce.is_empty()
                && crate::auth::secrets_equal(found.as_bytes(), nonce.as_bytes()) =>
        {
            Ok(())
        }
        Some(_) => Err(LaunchError::NonceMismatch),
    }
}

/// Check 13.
fn check_version(claims: &Map<String, Value>) -> Result<(), LaunchError> {
    match claims.get(CLAIM_VERSION) {
        None | Some(Value::Null) => Err(LaunchError::MissingLtiVersion),
        Some(Value::String(v)) if v == LTI_VERSION => Ok(()),
        Some(found) => Err(LaunchError::WrongLtiVersion(shown(found))),
    }
}

/// Check 14.
fn message_type(claims: &Map<String, Value>) -> Result<MessageType, LaunchError> {
    match claims.get(CLAIM_MESSAGE_TYPE) {
        None | Some(Value::Null) => Err(LaunchError::MissingMessageType),
        Some(Value::String(t)) if t.is_empty() => Err(LaunchError::MissingMessageType),
        Some(Value::String(t)) if t == "LtiResourceLinkRequest" => Ok(MessageType::ResourceLink),
        Some(Value::String(t)) if t == "LtiDeepLinkingRequest" => Ok(MessageType::DeepLinking),
        Some(found) => Err(LaunchError::UnsupportedMessageType(shown(found))),
    }
}

/// Check 15: present, short, known (or admitted as pending), and the one the login named.
fn deployment(
    claims: &Map<String, Value>,
    expected: &Expected<'_>,
) -> Result<(String, DeploymentStatus), LaunchError> {
    let id = required_text(claims, CLAIM_DEPLOYMENT_ID, "deployment_id", "a string")?
        .ok_or(LaunchError::MissingDeploymentId)?;
    let len = id.chars().count();
    if len > MAX_ID_LEN {
        return Err(LaunchError::DeploymentIdTooLong(len));
    }
    if !id.is_ascii() {
        return Err(LaunchError::InvalidClaim {
            claim: "deployment_id",
            expected: "ASCII characters",
        });
    }
    let registration = expected.registration;
    let status = if registration.deployment_ids.contains(&id) {
        DeploymentStatus::Known
    } else {
        match registration.unknown_deployments {
            UnknownDeployments::Refuse => return Err(LaunchError::UnknownDeployment(id)),
            UnknownDeployments::Pending => DeploymentStatus::Pending,
        }
    };
    match expected.login_deployment_id {
        Some(login) if login != id => Err(LaunchError::DeploymentMismatch {
            expected: clip(login),
            found: id,
        }),
        _ => Ok((id, status)),
    }
}

/// Check 16: present, an array of strings; empty and unknown values are fine.
fn roles(claims: &Map<String, Value>) -> Result<Vec<String>, LaunchError> {
    match claims.get(CLAIM_ROLES) {
        None | Some(Value::Null) => Err(LaunchError::MissingRoles),
        found => strings(found).ok_or(LaunchError::InvalidClaim {
            claim: "roles",
            expected: "an array of strings",
        }),
    }
}

/// Check 17: a resource link launch must say which link; a deep linking request need not.
fn resource_link(
    claims: &Map<String, Value>,
    message_type: MessageType,
) -> Result<Option<ResourceLink>, LaunchError> {
    let link = match claims.get(CLAIM_RESOURCE_LINK) {
        Some(Value::Object(link)) => link,
        None | Some(Value::Null) if message_type == MessageType::DeepLinking => return Ok(None),
        None | Some(Value::Null) => return Err(LaunchError::MissingResourceLinkId),
        Some(_) => {
            return Err(LaunchError::InvalidClaim {
                claim: "resource_link",
                expected: "an object with an id",
            })
        }
    };
    let Some(id) = required_text(link, "id", "resource_link.id", "a string")? else {
        return match message_type {
            MessageType::ResourceLink => Err(LaunchError::MissingResourceLinkId),
            MessageType::DeepLinking => Ok(None),
        };
    };
    let len = id.chars().count();
    if len > MAX_ID_LEN {
        return Err(LaunchError::ResourceLinkIdTooLong(len));
    }
    Ok(Some(ResourceLink {
        id,
        title: text(link, "title"),
    }))
}

/// Check 18.
fn sub(claims: &Map<String, Value>) -> Result<String, LaunchError> {
    required_text(claims, "sub", "sub", "a string")?.ok_or(LaunchError::MissingSub)
}

/// Check 19: the signed target is the one the login asked for, and it is ours.
fn target_link_uri(
    claims: &Map<String, Value>,
    expected: &Expected<'_>,
) -> Result<String, LaunchError> {
    let target = required_text(claims, CLAIM_TARGET_LINK_URI, "target_link_uri", "a URL")?
        .ok_or(LaunchError::MissingTargetLinkUri)?;
    let login = expected.login_target_link_uri;
    let parsed = NormalUrl::parse(&target);
    let same = target == login || (parsed.is_some() && parsed == NormalUrl::parse(login));
    if !same {
        return Err(LaunchError::TargetLinkUriMismatch {
            expected: clip(login),
            found: clip(&target),
        });
    }
    if !is_tool_url(&target, expected.tool_urls) {
        return Err(LaunchError::ForeignTargetLinkUri(clip(&target)));
    }
    Ok(target)
}

/// Check 20: somewhere to return to, and what may be returned.
fn deep_linking_settings(claims: &Map<String, Value>) -> Result<DeepLinkingSettings, LaunchError> {
    let settings = match claims.get(CLAIM_DEEP_LINKING) {
        None | Some(Value::Null) => return Err(LaunchError::MissingDeepLinkingSettings),
        Some(Value::Object(settings)) => settings,
        Some(_) => {
            return Err(LaunchError::IncompleteDeepLinkingSettings(
                "object (it is not a JSON object)",
            ))
        }
    };
    let list = |name: &'static str| {
        strings(settings.get(name)).ok_or(LaunchError::IncompleteDeepLinkingSettings(name))
    };
    Ok(DeepLinkingSettings {
        deep_link_return_url: text(settings, "deep_link_return_url").ok_or(
            LaunchError::IncompleteDeepLinkingSettings("deep_link_return_url"),
        )?,
        accept_types: list("accept_types")?,
        accept_presentation_document_targets: list("accept_presentation_document_targets")?,
        accept_multiple: settings.get("accept_multiple").and_then(Value::as_bool),
        data: settings.get("data").filter(|d| !d.is_null()).cloned(),
    })
}

/// Whether `url` is one of `tool_urls` or a path under one (see [`Expected::tool_urls`]): what
/// a launch's signed target_link_uri must be, and what a login's unsigned one is checked
/// against before anything is stored.
pub fn is_tool_url(url: &str, tool_urls: &[String]) -> bool {
    NormalUrl::parse(url).is_some_and(|target| {
        tool_urls
            .iter()
            .filter_map(|tool| NormalUrl::parse(tool))
            .any(|tool| target.is_at_or_under(&tool))
    })
}

/// Maps the roles claim to the context role the gateway acts on, and the test-user flag (§7).
/// Only context (membership) roles count, full or by simple name; institution and system roles
/// stay informational, and unknown or empty values grant nothing.
pub fn map_roles(roles: &[String]) -> (LaunchRole, bool) {
    let (mut admin, mut instructor, mut primary, mut co_teacher, mut mentor, mut learner) =
        (false, false, false, false, false, false);
    for role in roles {
        let Some((principal, sub_role)) = context_role(role) else {
            continue;
        };
        match principal {
            "Administrator" => admin = true,
            "Instructor" => {
                instructor = true;
                match sub_role {
                    Some("PrimaryInstructor") => primary = true,
                    Some("TeachingAssistant" | "SecondaryInstructor") => co_teacher = true,
                    _ => {}
                }
            }
            "Mentor" => mentor = true,
            "Learner" => learner = true,
            _ => {}
        }
    }
    let role = if admin {
        LaunchRole::Administrator
    } else if instructor && co_teacher && !primary {
        LaunchRole::CoTeacher
    } else if instructor {
        LaunchRole::Teacher
    } else if mentor {
        LaunchRole::Mentor
    } else if learner {
        LaunchRole::Student
    } else {
        LaunchRole::None
    };
    (role, roles.iter().any(|r| r == TEST_USER_ROLE))
}

/// `membership#Principal`, `membership/Principal#SubRole`, or a simple name.
fn context_role(role: &str) -> Option<(&str, Option<&str>)> {
    match role.strip_prefix(MEMBERSHIP_ROLE) {
        Some(rest) => match rest.strip_prefix('#') {
            Some(principal) => Some((principal, None)),
            None => {
                let (principal, sub_role) = rest.strip_prefix('/')?.split_once('#')?;
                Some((principal, Some(sub_role)))
            }
        },
        None => SHORT_CONTEXT_ROLES.contains(&role).then_some((role, None)),
    }
}

/// A URL reduced to what decides whether two name the same resource (see
/// [`Expected::tool_urls`]).
#[derive(Debug, PartialEq, Eq)]
struct NormalUrl {
    scheme: String,
    authority: String,
    path: String,
    /// `?query#fragment`, as sent.
    rest: String,
}

impl NormalUrl {
    fn parse(url: &str) -> Option<NormalUrl> {
        if url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        {
            return None;
        }
        let (scheme, after) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "https" => ":443",
            "http" => ":80",
            _ => return None,
        };
        let (authority, rest) = after.split_at(after.find(['/', '?', '#']).unwrap_or(after.len()));
        // Userinfo is how `https://tool@evil.example/` looks like ours and is not.
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let authority = authority.to_ascii_lowercase();
        let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
        let (path, rest) = rest.split_at(rest.find(['?', '#']).unwrap_or(rest.len()));
        // A dot segment would climb out of the tool's path once the browser resolves it.
        let dot = |segment: &str| {
            let segment = segment.to_ascii_lowercase().replace("%2e", ".");
            segment == "." || segment == ".."
        };
        if path.split('/').any(dot) {
            return None;
        }
        Some(NormalUrl {
            scheme,
            authority: authority.to_string(),
            path: if path.is_empty() { "/" } else { path }.to_string(),
            rest: rest.to_string(),
        })
    }

    fn is_at_or_under(&self, tool: &NormalUrl) -> bool {
        if self.scheme != tool.scheme || self.authority != tool.authority {
            return false;
        }
        if !tool.rest.is_empty() {
            return self.path == tool.path && self.rest == tool.rest;
        }
        match self.path.strip_prefix(&tool.path) {
            Some(below) => below.is_empty() || tool.path.ends_with('/') || below.starts_with('/'),
            None => false,
        }
    }
}

/// A required string claim: `Ok(None)` when absent, null or empty, an error when not a string.
fn required_text(
    object: &Map<String, Value>,
    key: &str,
    claim: &'static str,
    expected: &'static str,
) -> Result<Option<String>, LaunchError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(LaunchError::InvalidClaim { claim, expected }),
    }
}

/// An optional string: absent, empty or not a string all read as `None`.
fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    object
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// An array of strings, or `None` when absent or anything else.
fn strings(value: Option<&Value>) -> Option<Vec<String>> {
    value?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Custom parameters: strings as sent, other scalars as their JSON text, the rest dropped.
fn custom(object: &Map<String, Value>) -> BTreeMap<String, String> {
    object
        .iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k.clone(), s.clone())),
            Value::Number(_) | Value::Bool(_) => Some((k.clone(), v.to_string())),
            _ => None,
        })
        .collect()
}

/// At most this many characters of a token's value go into an error (and so into logs).
const SHOWN_CHARS: usize = 80;

fn clip(s: &str) -> String {
    match s.char_indices().nth(SHOWN_CHARS) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

/// A claim value for an error message: strings quoted, anything else as JSON, clipped.
fn shown(value: &Value) -> String {
    clip(&value.to_string())
}
