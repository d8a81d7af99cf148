//! What a launch says: [`LaunchSpec`], a builder whose `Default` is a valid instructor
//! resource-link launch, and the id_token claims made from it.
//!
//! Tampering is done after the claims are built: [`LaunchSpec::extra_claims`] replace or add
//! top-level claims, then [`LaunchSpec::remove_claims`] drop them, so any payload the
//! certification suite sends can be expressed without a second code path.

use serde_json::{json, Map, Value};

use super::claim;

/// One launch: who, in what role, of which message, into which context, and how to spoil it.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchSpec {
    /// The platform's user id (`sub`).
    pub sub: String,
    pub roles: Vec<String>,
    pub message: LaunchMessage,
    /// The signed (and login) target; None: the config's `tool_redirect_uri`, else
    /// [`DEFAULT_TARGET_LINK_URI`].
    pub target_link_uri: Option<String>,
    /// Sent on resource-link launches only.
    pub resource_link: ResourceLinkSpec,
    pub context: Option<ContextSpec>,
    pub lis: Option<LisSpec>,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub email: Option<String>,
    /// The `custom` claim; left out when empty.
    pub custom: Map<String, Value>,
    pub names_roles: Option<NamesRolesSpec>,
    pub grades: Option<GradesSpec>,
    /// Overrides the config's deployment id, in the claim and in the login.
    pub deployment_id: Option<String>,
    /// `exp` = now + this many seconds (default 300; negative for an expired token).
    pub exp_offset: i64,
    /// `iat` = now + this many seconds (default 0).
    pub iat_offset: i64,
    /// Signs with a key the platform never publishes (its `kid` is unknown to the JWKS).
    pub sign_with_unknown_key: bool,
    /// Top-level claims added or replaced after the spec's own are built.
    pub extra_claims: Map<String, Value>,
    /// Top-level claims removed last (after `extra_claims`).
    pub remove_claims: Vec<String>,
    /// The login names the deployment as Canvas does (`deployment_id`, plus `canvas_region`
    /// and `canvas_environment`) instead of `lti_deployment_id`.
    pub canvas_style: bool,
}

/// The target when neither the spec nor the config names one.
pub const DEFAULT_TARGET_LINK_URI: &str = "https://tool.example.org/lti/launch";

/// The LTI message a launch carries.
#[derive(Debug, Clone, PartialEq)]
pub enum LaunchMessage {
    /// `LtiResourceLinkRequest`.
    ResourceLink,
    /// `LtiDeepLinkingRequest` with its settings claim (and no resource link).
    DeepLinking(DeepLinkingSpec),
}

impl LaunchMessage {
    pub fn message_type(&self) -> &'static str {
        match self {
            LaunchMessage::ResourceLink => "LtiResourceLinkRequest",
            LaunchMessage::DeepLinking(_) => "LtiDeepLinkingRequest",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeepLinkingSpec {
    /// None: the platform's own `/deep_links`, which records what the tool posts back.
    pub deep_link_return_url: Option<String>,
    pub accept_types: Vec<String>,
    pub accept_presentation_document_targets: Vec<String>,
    pub accept_multiple: Option<bool>,
    /// Opaque; the tool echoes it in its response.
    pub data: Option<Value>,
}

impl Default for DeepLinkingSpec {
    fn default() -> Self {
        DeepLinkingSpec {
            deep_link_return_url: None,
            accept_types: vec!["ltiResourceLink".into()],
            accept_presentation_document_targets: vec!["iframe".into(), "window".into()],
            accept_multiple: Some(true),
            data: Some(Value::String("synthetic-deep-link-data".into())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceLinkSpec {
    pub id: String,
    pub title: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextSpec {
    pub id: String,
    pub label: Option<String>,
    pub title: Option<String>,
}

/// The join keys to OneRoster sourcedIds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LisSpec {
    pub person_sourcedid: Option<String>,
    pub course_section_sourcedid: Option<String>,
}

/// The NRPS claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamesRolesSpec {
    pub context_memberships_url: String,
}

/// The AGS claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GradesSpec {
    pub scope: Vec<String>,
    pub lineitems: Option<String>,
    pub lineitem: Option<String>,
}

impl Default for LaunchSpec {
    /// A teacher opening a resource link in their class, every claim the gateway reads present.
    fn default() -> Self {
        LaunchSpec {
            sub: "teacher-0001".into(),
            roles: vec![claim::ROLE_INSTRUCTOR.into()],
            message: LaunchMessage::ResourceLink,
            target_link_uri: None,
            resource_link: ResourceLinkSpec {
                id: "resource-link-0001".into(),
                title: Some("Reading growth".into()),
            },
            context: Some(ContextSpec {
                id: "context-0001".into(),
                label: Some("MATH-7".into()),
                title: Some("Grade 7 Mathematics".into()),
            }),
            lis: Some(LisSpec {
                person_sourcedid: Some("teacher-sourcedid-0001".into()),
                course_section_sourcedid: Some("class-sourcedid-0001".into()),
            }),
            name: Some("Avery Teacher".into()),
            given_name: Some("Avery".into()),
            family_name: Some("Teacher".into()),
            email: Some("avery.teacher@example.edu".into()),
            custom: Map::new(),
            names_roles: None,
            grades: None,
            deployment_id: None,
            exp_offset: 300,
            iat_offset: 0,
            sign_with_unknown_key: false,
            extra_claims: Map::new(),
            remove_claims: Vec::new(),
            canvas_style: false,
        }
    }
}

impl LaunchSpec {
    /// A student in the same class.
    pub fn learner() -> Self {
        LaunchSpec {
            sub: "student-0001".into(),
            roles: vec![claim::ROLE_LEARNER.into()],
            lis: Some(LisSpec {
                person_sourcedid: Some("student-sourcedid-0001".into()),
                course_section_sourcedid: Some("class-sourcedid-0001".into()),
            }),
            name: Some("Blake Student".into()),
            given_name: Some("Blake".into()),
            family_name: Some("Student".into()),
            email: Some("blake.student@example.edu".into()),
            ..LaunchSpec::default()
        }
    }

    /// A teacher's deep linking request with default settings.
    pub fn deep_linking() -> Self {
        LaunchSpec::default().with_message(LaunchMessage::DeepLinking(DeepLinkingSpec::default()))
    }

    pub fn with_sub(mut self, sub: impl Into<String>) -> Self {
        self.sub = sub.into();
        self
    }

    pub fn with_roles<S: Into<String>>(mut self, roles: impl IntoIterator<Item = S>) -> Self {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_message(mut self, message: LaunchMessage) -> Self {
        self.message = message;
        self
    }

    pub fn with_target_link_uri(mut self, uri: impl Into<String>) -> Self {
        self.target_link_uri = Some(uri.into());
        self
    }

    pub fn with_resource_link(mut self, id: impl Into<String>, title: Option<&str>) -> Self {
        self.resource_link = ResourceLinkSpec {
            id: id.into(),
            title: title.map(Into::into),
        };
        self
    }

    pub fn with_context(mut self, id: impl Into<String>, label: &str, title: &str) -> Self {
        self.context = Some(ContextSpec {
            id: id.into(),
            label: Some(label.into()),
            title: Some(title.into()),
        });
        self
    }

    pub fn with_lis(mut self, person_sourcedid: &str, course_section_sourcedid: &str) -> Self {
        self.lis = Some(LisSpec {
            person_sourcedid: Some(person_sourcedid.into()),
            course_section_sourcedid: Some(course_section_sourcedid.into()),
        });
        self
    }

    /// `name`, `given_name` and `family_name`.
    pub fn with_name(mut self, given: &str, family: &str) -> Self {
        self.name = Some(format!("{given} {family}"));
        self.given_name = Some(given.into());
        self.family_name = Some(family.into());
        self
    }

    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    pub fn with_custom(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.custom.insert(name.into(), value.into());
        self
    }

    pub fn with_names_roles(mut self, context_memberships_url: impl Into<String>) -> Self {
        self.names_roles = Some(NamesRolesSpec {
            context_memberships_url: context_memberships_url.into(),
        });
        self
    }

    pub fn with_grades(mut self, grades: GradesSpec) -> Self {
        self.grades = Some(grades);
        self
    }

    pub fn with_deployment_id(mut self, deployment_id: impl Into<String>) -> Self {
        self.deployment_id = Some(deployment_id.into());
        self
    }

    pub fn with_exp_offset(mut self, seconds: i64) -> Self {
        self.exp_offset = seconds;
        self
    }

    pub fn with_iat_offset(mut self, seconds: i64) -> Self {
        self.iat_offset = seconds;
        self
    }

    pub fn signed_with_unknown_key(mut self) -> Self {
        self.sign_with_unknown_key = true;
        self
    }

    pub fn with_extra_claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra_claims.insert(name.into(), value.into());
        self
    }

    pub fn without_claim(mut self, name: impl Into<String>) -> Self {
        self.remove_claims.push(name.into());
        self
    }

    pub fn canvas_style(mut self) -> Self {
        self.canvas_style = true;
        self
    }
}

/// What the platform fills in around a spec when it signs.
pub(super) struct Issue<'a> {
    pub issuer: &'a str,
    pub aud: &'a str,
    pub nonce: &'a str,
    pub deployment_id: &'a str,
    pub target_link_uri: &'a str,
    /// Where a deep linking response goes when the spec names no return URL.
    pub deep_link_return_url: &'a str,
    /// Seconds since the epoch.
    pub now: i64,
}

/// The id_token payload for `spec`.
pub(super) fn claims(spec: &LaunchSpec, issue: &Issue<'_>) -> Map<String, Value> {
    let mut c = Map::new();
    let mut put = |name: &str, value: Value| {
        c.insert(name.to_string(), value);
    };
    put("iss", issue.issuer.into());
    put("sub", spec.sub.as_str().into());
    put("aud", issue.aud.into());
    // Single audience, so azp is optional (Sec §5.1.2); platforms commonly send it anyway.
    put("azp", issue.aud.into());
    put("exp", (issue.now + spec.exp_offset).into());
    put("iat", (issue.now + spec.iat_offset).into());
    put("nonce", issue.nonce.into());
    put(claim::VERSION, claim::LTI_VERSION.into());
    put(claim::MESSAGE_TYPE, spec.message.message_type().into());
    put(claim::DEPLOYMENT_ID, issue.deployment_id.into());
    put(claim::TARGET_LINK_URI, issue.target_link_uri.into());
    put(claim::ROLES, json!(spec.roles));
    match &spec.message {
        LaunchMessage::ResourceLink => {
            let mut link = json!({ "id": spec.resource_link.id });
            if let Some(title) = &spec.resource_link.title {
                link["title"] = title.as_str().into();
            }
            put(claim::RESOURCE_LINK, link);
        }
        LaunchMessage::DeepLinking(dl) => {
            let mut settings = json!({
                "deep_link_return_url": dl
                    .deep_link_return_url
                    .as_deref()
                    .unwrap_or(issue.deep_link_return_url),
                "accept_types": dl.accept_types,
                "accept_presentation_document_targets": dl.accept_presentation_document_targets,
            });
            if let Some(multiple) = dl.accept_multiple {
                settings["accept_multiple"] = multiple.into();
            }
            if let Some(data) = &dl.data {
                settings["data"] = data.clone();
            }
            put(claim::DEEP_LINKING_SETTINGS, settings);
        }
    }
    if let Some(context) = &spec.context {
        put(
            claim::CONTEXT,
            without_nulls(json!({
                "id": context.id,
                "label": context.label,
                "title": context.title,
                "type": [claim::CONTEXT_COURSE_OFFERING],
            })),
        );
    }
    if let Some(lis) = &spec.lis {
        put(
            claim::LIS,
            without_nulls(json!({
                "person_sourcedid": lis.person_sourcedid,
                "course_section_sourcedid": lis.course_section_sourcedid,
            })),
        );
    }
    put(
        claim::TOOL_PLATFORM,
        json!({
            "guid": "rostergate-synthetic-platform",
            "name": "Synthetic LMS",
            "product_family_code": "synthetic",
            "version": "1.0",
        }),
    );
    put(
        claim::LAUNCH_PRESENTATION,
        json!({ "document_target": "iframe", "locale": "en-US" }),
    );
    let person = [
        ("name", &spec.name),
        ("given_name", &spec.given_name),
        ("family_name", &spec.family_name),
        ("email", &spec.email),
    ];
    for (name, value) in person {
        if let Some(value) = value {
            put(name, value.as_str().into());
        }
    }
    if !spec.custom.is_empty() {
        put(claim::CUSTOM, Value::Object(spec.custom.clone()));
    }
    if let Some(nrps) = &spec.names_roles {
        put(
            claim::NAMES_ROLES,
            json!({
                "context_memberships_url": nrps.context_memberships_url,
                "service_versions": ["2.0"],
            }),
        );
    }
    if let Some(ags) = &spec.grades {
        put(
            claim::GRADES,
            without_nulls(json!({
                "scope": ags.scope,
                "lineitems": ags.lineitems,
                "lineitem": ags.lineitem,
            })),
        );
    }
    for (name, value) in &spec.extra_claims {
        c.insert(name.clone(), value.clone());
    }
    for name in &spec.remove_claims {
        c.remove(name);
    }
    c
}

/// An object with its null members left out: absent, as platforms send optional fields.
fn without_nulls(mut value: Value) -> Value {
    if let Value::Object(members) = &mut value {
        members.retain(|_, v| !v.is_null());
    }
    value
}
