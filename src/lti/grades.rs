//! AGS line items and scores posted for a class (reference §11, R9). The class's course
//! context (recorded by a launch carrying the AGS claim) says where its line items are and which
//! scopes the platform granted; only those are asked for. A line item is found by its
//! `resource_id` (else its label) among the context's line items, page after page, and made
//! when missing and the scope allows; with only a coupled `lineitem` that one is used. Each
//! score goes to `{line item}/scores` (inserted into the path, ahead of any query) for the
//! user's platform id (`sub`, from their launches or the memberships), stamped with a
//! millisecond timestamp later than the last one sent for that line item and user.

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Method, Url};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::platform_http::{shown, ServiceError};
use super::service_tokens::{
    CallError, ServiceCaller, ServiceTokenError, ServiceTokens, SCOPE_LINEITEM,
    SCOPE_LINEITEM_READONLY, SCOPE_SCORE,
};
use super::tool_key_store;
use crate::auth::secrets::SecretBox;
use crate::store::lti as platforms;
use crate::store::lti_contexts::{self, ContextRow};
use crate::store::{Db, StoreError};

pub const LINEITEM_MEDIA_TYPE: &str = "application/vnd.ims.lis.v2.lineitem+json";
pub const LINEITEMS_MEDIA_TYPE: &str = "application/vnd.ims.lis.v2.lineitemcontainer+json";
pub const SCORE_MEDIA_TYPE: &str = "application/vnd.ims.lis.v1.score+json";
/// The most scores one request posts.
pub const MAX_SCORES: usize = 1000;
/// The most line item pages read looking for one.
const MAX_LINEITEM_PAGES: usize = 100;

const ACTIVITY: [&str; 5] = [
    "Initialized",
    "Started",
    "InProgress",
    "Submitted",
    "Completed",
];
const GRADING: [&str; 5] = [
    "FullyGraded",
    "Pending",
    "PendingManual",
    "Failed",
    "NotReady",
];

/// The line item scores go to.
#[derive(Debug, Clone, PartialEq)]
pub struct LineItemSpec {
    pub label: String,
    pub score_maximum: f64,
    pub resource_id: Option<String>,
    pub tag: Option<String>,
}

/// One student's score.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreInput {
    /// The rostered user's sourcedId.
    pub user: String,
    pub score_given: Option<f64>,
    pub activity_progress: String,
    pub grading_progress: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScorePost {
    pub line_item: LineItemSpec,
    pub scores: Vec<ScoreInput>,
}

/// A score not posted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub user: String,
    pub reason: String,
}

/// What a post did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreOutcome {
    /// The line item's URL (its `id`).
    pub line_item: String,
    pub created: bool,
    pub posted: usize,
    pub skipped: Vec<Skipped>,
}

/// Why scores could not be posted.
#[derive(Debug, thiserror::Error)]
pub enum GradeError {
    #[error(
        "class {0:?} has no course that offered grades: a launch from its course (with the \
         Assignment and Grade Services claim) records where they go"
    )]
    NoContext(String),
    #[error("the platform did not grant {0}: ask its administrator to allow it")]
    ScopeMissing(&'static str),
    #[error(
        "no line item with resource_id {0:?} exists and the platform lets the gateway read \
         only the launch's own line item"
    )]
    LineItemNotFound(String),
    #[error("{url}{pointer}: {message}")]
    BadAnswer {
        url: String,
        pointer: String,
        message: String,
    },
    #[error("{posted} score(s) were posted before this failure: {source}")]
    Interrupted {
        posted: usize,
        #[source]
        source: ServiceError,
    },
    #[error(transparent)]
    Token(#[from] ServiceTokenError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CallError> for GradeError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Token(t) => GradeError::Token(t),
            CallError::Service(s) => GradeError::Service(s),
        }
    }
}

/// Reads a request body; every problem is named by its JSON pointer.
pub fn read_request(body: &Value) -> Result<ScorePost, Vec<(String, String)>> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut problem =
        |at: &str, message: &str| problems.push((at.to_string(), message.to_string()));
    let Some(object) = body.as_object() else {
        return Err(vec![(String::new(), "must be an object".into())]);
    };
    for key in object.keys() {
        if key != "line_item" && key != "scores" {
            problem(
                &format!("/{}", escape(key)),
                "is not a member of a score post",
            );
        }
    }
    let line_item = read_line_item(object.get("line_item"), &mut problem);
    let scores = match object.get("scores") {
        Some(Value::Array(items)) if items.is_empty() => {
            problem("/scores", "must hold at least one score");
            Vec::new()
        }
        Some(Value::Array(items)) if items.len() > MAX_SCORES => {
            problem(
                "/scores",
                &format!("at most {MAX_SCORES} scores per request"),
            );
            Vec::new()
        }
        Some(Value::Array(items)) => {
            let mut seen = HashSet::new();
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let score = read_score(item, &format!("/scores/{i}"), &mut problem)?;
                    if !seen.insert(score.user.clone()) {
                        problem(&format!("/scores/{i}/user"), "is listed twice");
                        return None;
                    }
                    Some(score)
                })
                .collect()
        }
        _ => {
            problem("/scores", "is required (an array)");
            Vec::new()
        }
    };
    match line_item {
        Some(line_item) if problems.is_empty() => Ok(ScorePost { line_item, scores }),
        _ => Err(problems),
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn text_member(
    object: &Map<String, Value>,
    at: &str,
    name: &str,
    max: usize,
    problem: &mut impl FnMut(&str, &str),
) -> Option<String> {
    match object.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => {
            problem(&format!("{at}/{name}"), "must not be blank");
            None
        }
        Some(Value::String(s)) if s.chars().count() > max => {
            problem(
                &format!("{at}/{name}"),
                &format!("at most {max} characters"),
            );
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            problem(&format!("{at}/{name}"), "must be a string");
            None
        }
    }
}

fn read_line_item(
    value: Option<&Value>,
    problem: &mut impl FnMut(&str, &str),
) -> Option<LineItemSpec> {
    let Some(object) = value.and_then(Value::as_object) else {
        problem("/line_item", "is required (an object)");
        return None;
    };
    for key in object.keys() {
        if !["label", "score_maximum", "resource_id", "tag"].contains(&key.as_str()) {
            problem(
                &format!("/line_item/{}", escape(key)),
                "is not a member of a line item",
            );
        }
    }
    let label = text_member(object, "/line_item", "label", 255, problem);
    if !object.contains_key("label") {
        problem("/line_item/label", "is required");
    }
    let score_maximum = match object.get("score_maximum").and_then(Value::as_f64) {
        Some(m) if m > 0.0 && m.is_finite() && m <= 1e9 => Some(m),
        Some(_) => {
            problem("/line_item/score_maximum", "must be more than 0");
            None
        }
        None => {
            problem(
                "/line_item/score_maximum",
                "is required (a number more than 0)",
            );
            None
        }
    };
    let resource_id = text_member(object, "/line_item", "resource_id", 255, problem);
    let tag = text_member(object, "/line_item", "tag", 255, problem);
    Some(LineItemSpec {
        label: label?,
        score_maximum: score_maximum?,
        resource_id,
        tag,
    })
}

fn read_score(value: &Value, at: &str, problem: &mut impl FnMut(&str, &str)) -> Option<ScoreInput> {
    let Some(object) = value.as_object() else {
        problem(at, "must be a score object");
        return None;
    };
    for key in object.keys() {
        if ![
            "user",
            "score_given",
            "activity_progress",
            "grading_progress",
            "comment",
        ]
        .contains(&key.as_str())
        {
            problem(
                &format!("{at}/{}", escape(key)),
                "is not a member of a score",
            );
        }
    }
    let user = text_member(object, at, "user", 255, problem);
    if !object.contains_key("user") {
        problem(&format!("{at}/user"), "is required");
    }
    let score_given = match object.get("score_given") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(g) if g >= 0.0 && g.is_finite() && g <= 1e9 => Ok(Some(g)),
            _ => Err(()),
        },
    };
    if score_given.is_err() {
        problem(&format!("{at}/score_given"), "must be a number, 0 or more");
    }
    let mut progress = |name: &str, allowed: &[&str], default: &str| match object.get(name) {
        None | Some(Value::Null) => Some(default.to_string()),
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => Some(s.clone()),
        Some(_) => {
            problem(
                &format!("{at}/{name}"),
                &format!("must be one of {}", allowed.join(", ")),
            );
            None
        }
    };
    // A final score by default (AGS §4.7): Completed and FullyGraded.
    let activity_progress = progress("activity_progress", &ACTIVITY, "Completed");
    let grading_progress = progress("grading_progress", &GRADING, "FullyGraded");
    let comment = text_member(object, at, "comment", 1000, problem);
    Some(ScoreInput {
        user: user?,
        score_given: score_given.ok()?,
        activity_progress: activity_progress?,
        grading_progress: grading_progress?,
        comment,
    })
}

/// `{line item}{suffix}`: the suffix goes on the path, ahead of any query string.
pub fn service_url(line_item: &Url, suffix: &str) -> Url {
    let mut url = line_item.clone();
    let path = format!("{}{suffix}", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

/// A score as AGS wants it.
pub fn score_body(score: &ScoreInput, sub: &str, maximum: f64, stamp: DateTime<Utc>) -> Value {
    let mut body = json!({
        "userId": sub,
        "activityProgress": score.activity_progress,
        "gradingProgress": score.grading_progress,
        "timestamp": stamp.to_rfc3339_opts(SecondsFormat::Millis, true),
    });
    if let Some(given) = score.score_given {
        body["scoreGiven"] = json!(given);
        body["scoreMaximum"] = json!(maximum);
    }
    if let Some(comment) = &score.comment {
        body["comment"] = json!(comment);
    }
    body
}

/// Posts `post`'s scores for a class.
pub async fn post_scores(
    db: &Db,
    secrets: &SecretBox,
    tokens: &ServiceTokens,
    (district_id, class): (i64, &str),
    post: &ScorePost,
    now: DateTime<Utc>,
) -> Result<ScoreOutcome, GradeError> {
    let context = lti_contexts::for_class(db, district_id, class)
        .await?
        .ok_or_else(|| GradeError::NoContext(class.to_string()))?;
    let platform = platforms::platform_by_id(db, context.platform_id)
        .await?
        .ok_or_else(|| GradeError::NoContext(class.to_string()))?;
    let granted = context.ags_scopes();
    if !granted.contains(&SCOPE_SCORE) {
        return Err(GradeError::ScopeMissing(SCOPE_SCORE));
    }
    let keys = tool_key_store::load_or_create(db, secrets)
        .await
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let caller = ServiceCaller {
        tokens,
        platform: &platform,
        keys: &keys,
    };
    let (line_item, created) = line_item(&caller, &context, &granted, &post.line_item).await?;
    let scores_url = service_url(&line_item, "/scores");
    let mut outcome = ScoreOutcome {
        line_item: line_item.to_string(),
        created,
        posted: 0,
        skipped: Vec::new(),
    };
    for score in &post.scores {
        let Some(sub) = lti_contexts::sub_of_user(db, platform.id, &score.user).await? else {
            outcome.skipped.push(Skipped {
                user: score.user.clone(),
                reason: "the user has not launched the tool from this platform, nor been \
                         listed in a memberships pull"
                    .into(),
            });
            continue;
        };
        let stamp =
            lti_contexts::next_score_timestamp(db, platform.id, line_item.as_str(), &sub, now)
                .await?;
        let body = score_body(score, &sub, post.line_item.score_maximum, stamp);
        match caller
            .send(
                Method::POST,
                &scores_url,
                &[SCOPE_SCORE],
                "application/json",
                Some((SCORE_MEDIA_TYPE, &body)),
            )
            .await
        {
            Ok(_) => outcome.posted += 1,
            // The platform refused this score (a 4xx): the others may still go.
            Err(CallError::Service(e)) if !e.transient() && !e.unauthorized() => {
                outcome.skipped.push(Skipped {
                    user: score.user.clone(),
                    reason: e.to_string(),
                })
            }
            Err(CallError::Service(e)) => {
                return Err(GradeError::Interrupted {
                    posted: outcome.posted,
                    source: e,
                })
            }
            Err(CallError::Token(e)) => return Err(e.into()),
        }
    }
    Ok(outcome)
}

/// The line item to post to, and whether it was made now.
async fn line_item(
    caller: &ServiceCaller<'_>,
    context: &ContextRow,
    granted: &[&str],
    spec: &LineItemSpec,
) -> Result<(Url, bool), GradeError> {
    let http = caller.tokens.http();
    let Some(container) = &context.lineitems_url else {
        // Only the launch's own column: scores go there.
        let coupled = context.lineitem_url.as_deref().unwrap_or_default();
        return Ok((http.check_url(coupled)?, false));
    };
    let read_scope = [SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY]
        .into_iter()
        .find(|s| granted.contains(s))
        .ok_or(GradeError::ScopeMissing(SCOPE_LINEITEM_READONLY))?;
    let mut next = Some(http.check_url(container)?);
    if let (Some(url), Some(resource_id)) = (next.as_mut(), &spec.resource_id) {
        url.query_pairs_mut()
            .append_pair("resource_id", resource_id);
    }
    let mut pages = 0;
    while let Some(url) = next.take() {
        pages += 1;
        if pages > MAX_LINEITEM_PAGES {
            break;
        }
        let answer = caller
            .send(Method::GET, &url, &[read_scope], LINEITEMS_MEDIA_TYPE, None)
            .await?;
        let Value::Array(items) = &answer.body else {
            return Err(GradeError::BadAnswer {
                url: shown(url.as_str()),
                pointer: String::new(),
                message: "a line item container must be an array".into(),
            });
        };
        if let Some(found) = items.iter().find(|item| matches(item, spec)) {
            return Ok((item_url(found, &url, "")?, false));
        }
        next = answer.next;
    }
    if !granted.contains(&SCOPE_LINEITEM) {
        return Err(GradeError::LineItemNotFound(
            spec.resource_id
                .clone()
                .unwrap_or_else(|| spec.label.clone()),
        ));
    }
    let url = http.check_url(container)?;
    let mut body = json!({"label": spec.label, "scoreMaximum": spec.score_maximum});
    if let Some(resource_id) = &spec.resource_id {
        body["resourceId"] = json!(resource_id);
    }
    if let Some(tag) = &spec.tag {
        body["tag"] = json!(tag);
    }
    let answer = caller
        .send(
            Method::POST,
            &url,
            &[SCOPE_LINEITEM],
            LINEITEM_MEDIA_TYPE,
            Some((LINEITEM_MEDIA_TYPE, &body)),
        )
        .await?;
    Ok((item_url(&answer.body, &url, "")?, true))
}

/// Is this line item the one asked for: the same resource id (and tag, when given), or with no
/// resource id, the same label.
fn matches(item: &Value, spec: &LineItemSpec) -> bool {
    let member = |name: &str| item.get(name).and_then(Value::as_str);
    let tag_ok = spec
        .tag
        .as_deref()
        .is_none_or(|tag| member("tag") == Some(tag));
    match &spec.resource_id {
        Some(resource_id) => member("resourceId") == Some(resource_id.as_str()) && tag_ok,
        None => member("label") == Some(spec.label.as_str()) && tag_ok,
    }
}

fn item_url(item: &Value, from: &Url, pointer: &str) -> Result<Url, GradeError> {
    let bad = |message: &str| GradeError::BadAnswer {
        url: shown(from.as_str()),
        pointer: format!("{pointer}/id"),
        message: message.to_string(),
    };
    let id = item
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a line item must have its URL as id"))?;
    let url = Url::parse(id).map_err(|_| bad("is not a URL"))?;
    // A line item lives on the platform that listed it.
    if url.origin() != from.origin() {
        return Err(bad("is on another host than the line item container"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests;
