//! NRPS memberships as a roster source (reference §10, R8). Every course context a launch
//! offered memberships for is read whole (following `Link: rel="next"` verbatim), and what it
//! says goes through the sync engine as one delta run (source `lti-nrps`) of enrollments:
//!
//! - a member whose `lis_person_sourcedid` is a rostered user is linked to it (so that later
//!   launches and grades find them), and, when the context maps to a rostered class the roster
//!   does not already enroll them in, enrolled there as `nrps:{platform}:{class}:{user}`;
//! - an enrollment made that way goes when its member leaves, or turns `Inactive`/`Deleted`;
//! - the SIS's own enrollments are never touched, and members with no rostered account (no
//!   sourcedId, or one the roster lacks) are not provisioned: each is a warning of the run.
//!
//! A context that cannot be read fails the pull before anything is staged: nothing applies.

use chrono::{DateTime, Utc};
use reqwest::{Method, Url};
use tokio::sync::mpsc;

use super::platform_http::{shown, ServiceError};
use super::service_tokens::{
    CallError, ServiceCaller, ServiceTokenError, ServiceTokens, SCOPE_NRPS,
};
use super::tool_key_store;
use crate::auth::secrets::SecretBox;
use crate::domain::district::District;
use crate::domain::problem::ProblemLog;
use crate::domain::records::{Mode, RecordKind, SourceRecord};
use crate::domain::run::{Origin, Plan, PlannedKind};
use crate::sources::lti_nrps::{
    map_members, read_page, ClassRoster, Member, MEMBERSHIP_MEDIA_TYPE,
};
use crate::store::lti::{self as platforms};
use crate::store::lti_contexts;
use crate::store::{roster, Db, StoreError};
use crate::sync::engine::RunOptions;
use crate::sync::input::{Feed, SourceEnd};
use crate::sync::report::RunReport;
use crate::sync::{Engine, SyncError};

/// The run's source name.
pub const SOURCE: &str = "lti-nrps";
/// The most pages and members read of one context: a course is far smaller.
pub const MAX_PAGES: usize = 500;
pub const MAX_MEMBERS: usize = 50_000;

/// Why a memberships pull did not run.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error(
        "no course of district {0} has offered its memberships yet: a launch from the course \
         (with the Names and Role Provisioning Services claim) records where to read them"
    )]
    NoContexts(String),
    #[error(transparent)]
    Token(#[from] ServiceTokenError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("{url}{pointer}: {message}")]
    Page {
        url: String,
        pointer: String,
        message: String,
    },
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CallError> for MembershipError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Token(t) => MembershipError::Token(t),
            CallError::Service(s) => MembershipError::Service(s),
        }
    }
}

/// The outcome of a pull: the sync run, and how much was read.
#[derive(Debug)]
pub struct MembershipPull {
    pub run: RunReport,
    pub contexts: usize,
    pub members: usize,
    pub linked: usize,
}

/// Pulls every context of the district that offers memberships, and syncs what they say.
pub async fn pull(
    db: &Db,
    engine: &Engine,
    secrets: &SecretBox,
    tokens: &ServiceTokens,
    district: &District,
    now: DateTime<Utc>,
) -> Result<MembershipPull, MembershipError> {
    let contexts = lti_contexts::with_memberships(db, district.id).await?;
    if contexts.is_empty() {
        return Err(MembershipError::NoContexts(district.slug.to_string()));
    }
    let keys = tool_key_store::load_or_create(db, secrets)
        .await
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut problems = ProblemLog::new(100);
    let mut records = Vec::new();
    let mut links = Vec::new();
    let mut member_count = 0;
    for context in &contexts {
        let Some(platform) = platforms::platform_by_id(db, context.platform_id).await? else {
            continue;
        };
        let url = context.memberships_url.as_deref().unwrap_or_default();
        let members = fetch_members(tokens, &platform, &keys, url).await?;
        member_count += members.len();
        let class = match &context.class_sourced_id {
            Some(class) => class_roster(db, district.id, class).await?,
            None => None,
        };
        let sourced_ids: Vec<&str> = members
            .iter()
            .filter_map(|m| m.lis_person_sourcedid.as_deref())
            .collect();
        let rostered = roster::live_users_among(db, district.id, &sourced_ids).await?;
        let endpoint = format!("GET {}", shown(url));
        let mapped = map_members(
            platform.id,
            &members,
            class.as_ref(),
            &rostered,
            (&endpoint, &mut problems),
        );
        records.extend(mapped.records);
        links.extend(
            mapped
                .links
                .into_iter()
                .map(|(sub, user)| (platform.id, sub, user)),
        );
    }
    for (platform_id, sub, user) in &links {
        lti_contexts::link_member(db, (*platform_id, district.id), sub, user, now).await?;
    }
    let run = sync(engine, district, records, problems).await?;
    Ok(MembershipPull {
        run,
        contexts: contexts.len(),
        members: member_count,
        linked: links.len(),
    })
}

async fn sync(
    engine: &Engine,
    district: &District,
    records: Vec<SourceRecord>,
    problems: ProblemLog,
) -> Result<RunReport, SyncError> {
    let plan = Plan {
        kinds: vec![PlannedKind {
            kind: RecordKind::Enrollments,
            mode: Mode::Delta,
            label: "NRPS memberships".into(),
            origin: Origin::Endpoint,
            digest: None,
            carried: false,
            unstaged_unchanged: None,
        }],
    };
    let (sender, feed) = mpsc::channel(2);
    // Both fit the channel: nothing waits for the engine to read.
    let _ = sender
        .send(Feed::Records(RecordKind::Enrollments, records))
        .await;
    let _ = sender.send(Feed::Done(RecordKind::Enrollments)).await;
    drop(sender);
    let end = async move { SourceEnd::from(problems) };
    engine
        .run(district, SOURCE, plan, feed, end, RunOptions::default())
        .await
}

/// Every member of a context, page after page; a refused token is renewed once.
async fn fetch_members(
    tokens: &ServiceTokens,
    platform: &platforms::PlatformRow,
    keys: &super::tool_keys::ToolKeySet,
    url: &str,
) -> Result<Vec<Member>, MembershipError> {
    let mut next: Option<Url> = Some(tokens.http().check_url(url)?);
    let mut members = Vec::new();
    let mut pages = 0;
    let mut context_id: Option<String> = None;
    let caller = ServiceCaller {
        tokens,
        platform,
        keys,
    };
    while let Some(page_url) = next.take() {
        pages += 1;
        if pages > MAX_PAGES {
            return Err(page_problem(
                url,
                "",
                format!("more than {MAX_PAGES} pages"),
            ));
        }
        let answer = caller
            .send(
                Method::GET,
                &page_url,
                &[SCOPE_NRPS],
                MEMBERSHIP_MEDIA_TYPE,
                None,
            )
            .await?;
        let page = read_page(&answer.body)
            .map_err(|(pointer, message)| page_problem(page_url.as_str(), &pointer, message))?;
        // Every page must be of the same context: a platform answering another's is refused.
        match (&context_id, &page.context_id) {
            (Some(first), Some(this)) if first != this => {
                return Err(page_problem(
                    page_url.as_str(),
                    "/context/id",
                    format!("is {this:?}, but the first page's was {first:?}"),
                ))
            }
            (None, Some(this)) => context_id = Some(this.clone()),
            _ => {}
        }
        members.extend(page.members);
        if members.len() > MAX_MEMBERS {
            return Err(page_problem(
                url,
                "",
                format!("more than {MAX_MEMBERS} members"),
            ));
        }
        next = match answer.next {
            Some(n) => Some(tokens.http().check_url(n.as_str())?),
            None => None,
        };
    }
    Ok(members)
}

fn page_problem(url: &str, pointer: &str, message: String) -> MembershipError {
    MembershipError::Page {
        url: shown(url),
        pointer: pointer.to_string(),
        message,
    }
}

async fn class_roster(
    db: &Db,
    district_id: i64,
    class: &str,
) -> Result<Option<ClassRoster>, StoreError> {
    let school: Option<(Option<String>,)> = db
        .conn()
        .fetch_optional(
            "SELECT school_sourced_id FROM classes WHERE district_id = $1 AND sourced_id = $2 \
             AND deleted_at IS NULL",
            &crate::args![district_id, class],
        )
        .await?;
    let Some((school,)) = school else {
        return Ok(None);
    };
    let enrollments: Vec<(String, Option<String>)> = db
        .conn()
        .fetch_all(
            "SELECT sourced_id, user_sourced_id FROM enrollments WHERE district_id = $1 \
             AND class_sourced_id = $2 AND deleted_at IS NULL",
            &crate::args![district_id, class],
        )
        .await?;
    Ok(Some(ClassRoster {
        class: class.to_string(),
        school,
        enrollments: enrollments
            .into_iter()
            .filter_map(|(id, user)| user.map(|u| (id, u)))
            .collect(),
    }))
}
