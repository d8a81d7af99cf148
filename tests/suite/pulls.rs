//! Black-box tests of REST pulls, on SQLite and PostgreSQL: the `rostergate` binary adds a
//! connection to the in-library OneRoster provider and pulls from it with `sync pull --json`;
//! the roster is read back through the HTTP read API of a gateway on the same database.

use crate::common;

use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::{json_of, printed, TestApp, MASTER_KEY, OPERATOR_TOKEN};
use reqwest::Url;
use rostergate::domain::connection::DELTA_OVERLAP_SECS;
use rostergate::sources::oneroster::rest::delta_filter;
use rostergate::synthetic::provider::{
    AuthKind, Class, ClientAuthStyle, Collection, FaultAction, FaultTrigger, Oauth1Settings,
    Oauth2Settings, OneRosterVersion, Provider, ProviderAuth, ProviderConfig, RequestLog, Roster,
    SignatureMethod, TotalCount,
};
use serde_json::{json, Value};

const CLIENT_ID: &str = "district-client";
const CLIENT_SECRET: &str = "s3cret/with+odd=chars";
const CONSUMER_KEY: &str = "consumer-key";
const CONSUMER_SECRET: &str = "consumer&secret";
const CONNECTION: &str = "sis";

/// How the provider wants requests authenticated, and so how the connection is set up.
#[derive(Debug, Clone, Copy)]
enum Auth {
    Oauth1(SignatureMethod),
    Oauth2(ClientAuthStyle),
}

impl Auth {
    fn provider(self) -> ProviderAuth {
        match self {
            Auth::Oauth1(method) => ProviderAuth::Oauth1(Oauth1Settings {
                consumer_key: CONSUMER_KEY.into(),
                consumer_secret: CONSUMER_SECRET.into(),
                method,
            }),
            Auth::Oauth2(style) => {
                let mut settings = Oauth2Settings::new(CLIENT_ID, CLIENT_SECRET);
                settings.client_auth = style;
                ProviderAuth::Oauth2(settings)
            }
        }
    }

    /// The `connection add` flags of this scheme, with `secret` as the secret.
    fn flags(self, provider: &Provider, secret: &str) -> Vec<String> {
        let flags: Vec<&str> = match self {
            Auth::Oauth1(method) => vec![
                "--auth",
                "oauth1",
                "--consumer-key",
                CONSUMER_KEY,
                "--consumer-secret",
                secret,
                "--signature-method",
                match method {
                    SignatureMethod::HmacSha256 => "HMAC-SHA256",
                    SignatureMethod::HmacSha1 => "HMAC-SHA1",
                },
            ],
            Auth::Oauth2(style) => vec![
                "--auth",
                "oauth2",
                "--client-id",
                CLIENT_ID,
                "--client-secret",
                secret,
                "--client-auth",
                match style {
                    ClientAuthStyle::Basic => "basic",
                    ClientAuthStyle::Body => "body",
                },
            ],
        };
        let mut flags: Vec<String> = flags.into_iter().map(str::to_string).collect();
        if let Auth::Oauth2(_) = self {
            flags.extend(["--token-url".to_string(), provider.token_url()]);
        }
        flags
    }

    /// How the provider sees the connection's data requests.
    fn data_requests(self) -> AuthKind {
        match self {
            Auth::Oauth1(_) => AuthKind::Oauth1,
            Auth::Oauth2(_) => AuthKind::Bearer,
        }
    }
}

const OAUTH2: Auth = Auth::Oauth2(ClientAuthStyle::Basic);

fn version_flag(version: OneRosterVersion) -> &'static str {
    match version {
        OneRosterVersion::V1_1 => "1.1",
        OneRosterVersion::V1_2 => "1.2",
    }
}

/// A district of the gateway, its connection to a provider, and the provider.
struct Pulls<'a> {
    app: &'a TestApp,
    district: String,
    provider: Provider,
    work: tempfile::TempDir,
}

/// What the test changes about a pull's setup.
struct Setup {
    district: &'static str,
    /// The district's settings, as the districts API takes them.
    settings: Value,
    config: ProviderConfig,
    roster: Roster,
    auth: Auth,
    /// The secret the connection is given (the provider expects the right one).
    secret: Option<&'static str>,
    /// More `connection add` flags (`--page-size 2`, `--timeout-secs 1`).
    flags: &'static [&'static str],
}

impl Setup {
    fn new(version: OneRosterVersion, auth: Auth) -> Setup {
        Setup {
            district: "lincoln",
            settings: json!({}),
            config: ProviderConfig::new(version, auth.provider()),
            roster: Roster::small_school(),
            auth,
            secret: None,
            flags: &[],
        }
    }

    fn flags(mut self, flags: &'static [&'static str]) -> Setup {
        self.flags = flags;
        self
    }

    /// Creates the district, starts the provider and adds the connection (schedules off, so
    /// only the test pulls; a high request rate, so paging is not slowed).
    async fn start(self, app: &TestApp) -> Pulls<'_> {
        app.create_district_with(self.district, self.settings).await;
        let provider = Provider::start(self.config, self.roster).await.unwrap();
        let pulls = Pulls {
            app,
            district: self.district.to_string(),
            provider,
            work: tempfile::tempdir().unwrap(),
        };
        let secret = self.secret.unwrap_or(match self.auth {
            Auth::Oauth1(_) => CONSUMER_SECRET,
            Auth::Oauth2(_) => CLIENT_SECRET,
        });
        let version = version_flag(pulls.provider.config().version);
        let mut args: Vec<String> = [
            "connection",
            "add",
            "--district",
            self.district,
            "--name",
            CONNECTION,
            "--kind",
            "oneroster-rest",
            "--version",
            version,
            "--delta-schedule",
            "off",
            "--full-schedule",
            "off",
            "--requests-per-second",
            "1000",
            "--base-url",
        ]
        .into_iter()
        .map(str::to_string)
        .collect();
        args.push(pulls.provider.base_url());
        args.extend(self.auth.flags(&pulls.provider, secret));
        args.extend(self.flags.iter().map(|f| f.to_string()));
        let out = pulls.cli(args).await;
        assert!(out.status.success(), "connection add: {}", printed(&out));
        pulls
    }
}

impl Pulls<'_> {
    /// Runs `rostergate ARGS` on the app's database and key, with retries shrunk.
    async fn cli<S: AsRef<std::ffi::OsStr>>(&self, args: Vec<S>) -> Output {
        let mut command = common::rostergate_command(&self.app.db.url, self.work.path());
        command
            .args(args)
            .env("ROSTERGATE_SECRET_KEY", MASTER_KEY)
            .env("ROSTERGATE_DATA_DIR", self.app.data_dir.path())
            .env("ROSTERGATE_OUTBOUND__INITIAL_BACKOFF_MS", "10")
            .env("ROSTERGATE_OUTBOUND__MAX_BACKOFF_SECS", "1");
        // The provider and the gateway run on this test's runtime: wait off it.
        tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
            .await
            .unwrap()
    }

    /// `sync pull --json [extra…]`: the exit code and the report.
    async fn pull(&self, extra: &[&str]) -> (i32, Value) {
        let mut args = vec![
            "sync",
            "pull",
            "--district",
            &self.district,
            "--connection",
            CONNECTION,
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = self.cli(args).await;
        (out.status.code().unwrap_or(-1), json_of(&out))
    }

    /// `sync approve|discard RUN --json`: the exit code and the report.
    async fn decide(&self, verb: &str, run_id: &str) -> (i32, Value) {
        let args = vec!["sync", verb, "--district", &self.district, run_id, "--json"];
        let out = self.cli(args).await;
        (out.status.code().unwrap_or(-1), json_of(&out))
    }

    /// The connection's delta cursor, as `connection list --json` shows it.
    async fn cursor(&self) -> Value {
        let args = vec!["connection", "list", "--district", &self.district, "--json"];
        let out = self.cli(args).await;
        assert!(out.status.success(), "{}", printed(&out));
        json_of(&out)["connections"][0]["delta_cursor"].clone()
    }

    /// Every record the read API lists, type by type.
    async fn roster(&self) -> Value {
        let mut all = serde_json::Map::new();
        for kind in Collection::ALL.map(Collection::plural) {
            let path = format!("/api/v1/districts/{}/{kind}?limit=10000", self.district);
            let (status, body) = self.app.get(&path, OPERATOR_TOKEN).await;
            assert_eq!(status, 200, "{body}");
            all.insert(kind.to_string(), body[kind].clone());
        }
        Value::Object(all)
    }

    /// One record as the read API shows it (null when absent).
    async fn record(&self, collection: Collection, sourced_id: &str) -> Value {
        let (kind, one) = (collection.plural(), collection.singular());
        let path = format!("/api/v1/districts/{}/{kind}/{sourced_id}", self.district);
        let (_, body) = self.app.get(&path, OPERATOR_TOKEN).await;
        body[one].clone()
    }

    fn data_requests(&self) -> Vec<RequestLog> {
        let requests = self.provider.requests();
        requests
            .into_iter()
            .filter(|r| r.path != "/token")
            .collect()
    }

    fn token_requests(&self) -> usize {
        let requests = self.provider.requests();
        requests.iter().filter(|r| r.path == "/token").count()
    }

    /// Asserts that a report created every record the provider serves.
    fn assert_created_all(&self, report: &Value) {
        for collection in Collection::ALL {
            let kind = collection.plural();
            let served = self.provider.data().count(collection) as u64;
            assert_eq!(common::count(report, kind, "created"), served, "{kind}");
        }
    }

    async fn stop(self) {
        self.provider.stop().await;
    }
}

/// The `filter` of a logged request, decoded.
fn filter_of(request: &RequestLog) -> Option<String> {
    let url = Url::parse(&format!("http://provider/?{}", request.query)).unwrap();
    let filter = url.query_pairs().find(|(name, _)| name == "filter");
    filter.map(|(_, value)| value.into_owned())
}

/// The path segment a data request asked for: `users` for `…/v1p1/users`.
fn collection_of(request: &RequestLog) -> &str {
    request.path.rsplit('/').next().unwrap_or_default()
}

/// The filter a delta pull sends after a full pull of the small school.
fn small_school_delta_filter() -> String {
    let modified = chrono::DateTime::parse_from_rfc3339(Roster::SMALL_SCHOOL_MODIFIED).unwrap();
    let since = modified.to_utc() - chrono::Duration::seconds(DELTA_OVERLAP_SECS);
    delta_filter(since)
}

/// The small school with every record but the district org last modified a month earlier: a
/// delta right after the first pull (whose overlap reaches back a few minutes before the
/// newest record) brings back that org and what changed since, nothing else.
fn settled_small_school() -> Roster {
    let mut roster = Roster::small_school();
    let bases = roster.orgs.iter_mut().map(|r| &mut r.base);
    let bases = bases
        .chain(roster.academic_sessions.iter_mut().map(|r| &mut r.base))
        .chain(roster.courses.iter_mut().map(|r| &mut r.base))
        .chain(roster.classes.iter_mut().map(|r| &mut r.base))
        .chain(roster.users.iter_mut().map(|r| &mut r.base))
        .chain(roster.enrollments.iter_mut().map(|r| &mut r.base));
    for base in bases.filter(|b| b.sourced_id != "org-district") {
        base.date_last_modified -= chrono::Duration::days(30);
    }
    roster
}

/// Records of a type a run created, updated or deleted.
fn changed(report: &Value, kind: &str) -> u64 {
    ["created", "updated", "deleted"]
        .iter()
        .map(|change| common::count(report, kind, change))
        .sum()
}

/// The small school's second class, renamed.
fn renamed_class() -> Class {
    let mut class = Roster::small_school().classes[1].clone();
    class.title = "Algebra I - Period 2 (moved)".into();
    class
}

on_every_backend!(
    a_full_pull_applies_on_both_versions_with_every_auth_scheme,
    |app| {
        let cases = [
            (
                "1.1 OAuth 1.0a HMAC-SHA256",
                OneRosterVersion::V1_1,
                Auth::Oauth1(SignatureMethod::HmacSha256),
            ),
            (
                "1.1 OAuth 1.0a HMAC-SHA1",
                OneRosterVersion::V1_1,
                Auth::Oauth1(SignatureMethod::HmacSha1),
            ),
            ("1.1 OAuth 2", OneRosterVersion::V1_1, OAUTH2),
            ("1.2 OAuth 2 Basic", OneRosterVersion::V1_2, OAUTH2),
            (
                "1.2 OAuth 2 body",
                OneRosterVersion::V1_2,
                Auth::Oauth2(ClientAuthStyle::Body),
            ),
        ];
        let districts = ["d-1", "d-2", "d-3", "d-4", "d-5"];
        for ((name, version, auth), district) in cases.into_iter().zip(districts) {
            let setup = Setup {
                district,
                ..Setup::new(version, auth)
            };
            let pulls = setup.start(&app).await;
            let (code, report) = pulls.pull(&[]).await;
            assert_eq!(code, 0, "{name}: {report}");
            assert_eq!(report["status"], "applied", "{name}");
            assert_eq!(report["source"], "oneroster_rest", "{name}");
            pulls.assert_created_all(&report);
            let data = pulls.data_requests();
            let mut asked: Vec<&str> = data.iter().map(collection_of).collect();
            asked.dedup();
            assert_eq!(asked, Collection::ALL.map(Collection::plural), "{name}");
            for request in &data {
                assert_eq!(request.auth, auth.data_requests(), "{name}: {request:?}");
                assert_eq!(request.status, 200, "{name}: {request:?}");
            }
            let tokens: Vec<AuthKind> = pulls
                .provider
                .requests()
                .iter()
                .filter(|r| r.path == "/token")
                .map(|r| r.auth)
                .collect();
            let expected_tokens = match auth {
                Auth::Oauth1(_) => vec![],
                Auth::Oauth2(ClientAuthStyle::Basic) => vec![AuthKind::Basic],
                Auth::Oauth2(ClientAuthStyle::Body) => vec![AuthKind::None],
            };
            assert_eq!(tokens, expected_tokens, "{name}");
            if version == OneRosterVersion::V1_2 {
                // Each user of the small school has one org: one role each.
                let users = pulls.provider.data().count(Collection::Users) as u64;
                assert_eq!(common::count(&report, "roles", "created"), users, "{name}");
            }
            let teacher = pulls.record(Collection::Users, "tch-1").await;
            assert_eq!(teacher["givenName"], "Ada", "{name}");
            if version == OneRosterVersion::V1_1 {
                assert_eq!(teacher["role"], "teacher", "{name}");
            }
            pulls.stop().await;
        }
    }
);

on_every_backend!(
    every_record_arrives_whatever_the_paging_headers_say,
    |app| {
        let base = || ProviderConfig::new(OneRosterVersion::V1_1, OAUTH2.provider());
        let school = Roster::small_school;
        let district = || Roster::generated(60, 7).unwrap();
        let two: &[&str] = &["--page-size", "2"];
        let cases = [
            ("Link headers", base(), school(), two),
            (
                "no Link headers",
                ProviderConfig {
                    link_header: false,
                    ..base()
                },
                school(),
                two,
            ),
            (
                "limit capped below the page size, with Link",
                ProviderConfig {
                    max_page_size: Some(2),
                    ..base()
                },
                school(),
                &["--page-size", "5"],
            ),
            (
                "limit capped below the page size, no Link",
                ProviderConfig {
                    max_page_size: Some(2),
                    link_header: false,
                    ..base()
                },
                school(),
                &["--page-size", "5"],
            ),
            (
                "X-Total-Count too small",
                ProviderConfig {
                    total_count: TotalCount::Wrong(1),
                    link_header: false,
                    ..base()
                },
                school(),
                two,
            ),
            (
                "X-Total-Count too large",
                ProviderConfig {
                    total_count: TotalCount::Wrong(1000),
                    link_header: false,
                    ..base()
                },
                school(),
                two,
            ),
            (
                "a generated district, capped, no Link, no X-Total-Count",
                ProviderConfig {
                    max_page_size: Some(25),
                    link_header: false,
                    total_count: TotalCount::Absent,
                    ..base()
                },
                district(),
                &["--page-size", "40"],
            ),
        ];
        let districts = ["d-1", "d-2", "d-3", "d-4", "d-5", "d-6", "d-7"];
        for ((name, config, roster, flags), district) in cases.into_iter().zip(districts) {
            let setup = Setup {
                district,
                config,
                roster,
                flags,
                ..Setup::new(OneRosterVersion::V1_1, OAUTH2)
            };
            let pulls = setup.start(&app).await;
            let (code, report) = pulls.pull(&[]).await;
            assert_eq!(code, 0, "{name}: {report}");
            pulls.assert_created_all(&report);
            let user_pages = pulls
                .data_requests()
                .iter()
                .filter(|r| collection_of(r) == "users")
                .count();
            assert!(user_pages >= 3, "{name}: users in {user_pages} pages");
            let path = format!("/api/v1/districts/{district}/users");
            let (_, users) = pulls.app.get(&path, OPERATOR_TOKEN).await;
            let served = pulls.provider.data().count(Collection::Users);
            assert_eq!(users["total"], served, "{name}");
            pulls.stop().await;
        }
    }
);

on_every_backend!(
    a_pull_outlasts_rate_limits_server_errors_and_timeouts,
    |app| {
        let cases = [
            (
                "429 with Retry-After: 1",
                FaultAction::TooManyRequests {
                    retry_after_secs: 1,
                },
                1,
                vec![429, 200],
            ),
            (
                "500 twice",
                FaultAction::Status(500),
                2,
                vec![500, 500, 200],
            ),
            ("503 once", FaultAction::Status(503), 1, vec![503, 200]),
            (
                "a connection dropped mid-answer",
                FaultAction::DropConnection,
                1,
                vec![200, 200],
            ),
            (
                "an answer slower than the timeout",
                FaultAction::Delay(Duration::from_secs(3)),
                1,
                vec![200],
            ),
        ];
        let districts = ["d-1", "d-2", "d-3", "d-4", "d-5"];
        for ((name, fault, times, statuses), district) in cases.into_iter().zip(districts) {
            let setup = Setup {
                district,
                ..Setup::new(OneRosterVersion::V1_2, OAUTH2)
            };
            let pulls = setup.flags(&["--timeout-secs", "1"]).start(&app).await;
            let waits = matches!(
                fault,
                FaultAction::TooManyRequests { .. } | FaultAction::Delay(_)
            );
            pulls.provider.faults().on_path("users", fault, times);
            let started = Instant::now();
            let (code, report) = pulls.pull(&[]).await;
            let took = started.elapsed();
            assert_eq!(code, 0, "{name}: {report}");
            pulls.assert_created_all(&report);
            assert_eq!(pulls.provider.faults().pending(), 0, "{name}");
            // The delayed answer is never logged: the gateway hung up on it.
            let users: Vec<u16> = pulls
                .data_requests()
                .iter()
                .filter(|r| collection_of(r) == "users" && r.query.ends_with("offset=0"))
                .map(|r| r.status)
                .collect();
            assert_eq!(users, statuses, "{name}");
            if waits {
                assert!(took >= Duration::from_secs(1), "{name}: took {took:?}");
            }
            pulls.stop().await;
        }
    }
);

on_every_backend!(
    a_page_that_cannot_be_read_fails_the_pull_naming_where_and_applies_nothing,
    |app| {
        // The third user of six, at collection offset 2 (two users a page).
        let cases = [
            (
                "malformed JSON",
                FaultAction::MalformedJson,
                1,
                json!({"endpoint": "GET /users", "offset": 2}),
                "not a OneRoster collection",
            ),
            (
                "a record without its role",
                FaultAction::MissingField("role".into()),
                1,
                json!({"endpoint": "GET /users", "offset": 2, "sourcedId": "stu-3", "field": "role"}),
                "missing",
            ),
            (
                "500 on every try",
                FaultAction::Status(500),
                6,
                json!({"endpoint": "GET /users", "offset": 2}),
                "6 attempts",
            ),
            (
                "429 asking to wait an hour",
                FaultAction::TooManyRequests {
                    retry_after_secs: 3600,
                },
                1,
                json!({"endpoint": "GET /users", "offset": 2}),
                "3600 s",
            ),
            (
                "403",
                FaultAction::Status(403),
                1,
                json!({"endpoint": "GET /users", "offset": 2}),
                "403",
            ),
        ];
        let districts = ["d-1", "d-2", "d-3", "d-4", "d-5"];
        for ((name, fault, times, at, says), district) in cases.into_iter().zip(districts) {
            let setup = Setup {
                district,
                ..Setup::new(OneRosterVersion::V1_1, OAUTH2)
            };
            let pulls = setup.flags(&["--page-size", "2"]).start(&app).await;
            let (code, report) = pulls.pull(&[]).await;
            assert_eq!(code, 0, "{name}: {report}");
            let before = pulls.roster().await;
            let cursor = pulls.cursor().await;
            // A change that would show if anything were applied.
            pulls.provider.data().upsert(renamed_class());
            let trigger = FaultTrigger::Page {
                path: "users".into(),
                offset: 2,
            };
            pulls.provider.faults().push(trigger, fault, times);
            let (code, report) = pulls.pull(&["--full"]).await;
            assert_eq!(code, 1, "{name}: {report}");
            assert_eq!(report["status"], "failed", "{name}");
            let errors = report["errors"].as_array().unwrap();
            assert_eq!(errors.len(), 1, "{name}: {report}");
            for (key, value) in at.as_object().unwrap() {
                assert_eq!(&errors[0][key], value, "{name}: {key} in {}", errors[0]);
            }
            let message = errors[0]["message"].as_str().unwrap();
            assert!(message.contains(says), "{name}: {message}");
            assert_eq!(pulls.provider.faults().pending(), 0, "{name}: tries");
            assert_eq!(pulls.roster().await, before, "{name}");
            assert_eq!(pulls.cursor().await, cursor, "{name}");
            pulls.stop().await;
        }
    }
);

on_every_backend!(a_token_expiring_mid_pull_is_renewed_once, |app| {
    let mut settings = Oauth2Settings::new(CLIENT_ID, CLIENT_SECRET);
    // Six data requests (one page per collection: the provider pages with links, and a page
    // without `next` is the last): the fifth finds the first token dead, the second lasts to
    // the end.
    settings.revoke_after_requests = Some(4);
    let setup = Setup {
        config: ProviderConfig::new(OneRosterVersion::V1_2, ProviderAuth::Oauth2(settings)),
        ..Setup::new(OneRosterVersion::V1_2, OAUTH2)
    };
    let pulls = setup.start(&app).await;
    let (code, report) = pulls.pull(&[]).await;
    assert_eq!(code, 0, "{report}");
    pulls.assert_created_all(&report);
    assert_eq!(pulls.token_requests(), 2);
    let refused = pulls.data_requests();
    let refused: Vec<_> = refused.iter().filter(|r| r.status == 401).collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    pulls.stop().await;
});

on_every_backend!(
    a_wrong_client_secret_fails_the_pull_clearly_without_showing_a_secret,
    |app| {
        const WRONG: &str = "Wrong-Client-Secret-77";
        let setup = Setup {
            secret: Some(WRONG),
            ..Setup::new(OneRosterVersion::V1_2, OAUTH2)
        };
        let pulls = setup.start(&app).await;
        let args = vec![
            "sync",
            "pull",
            "--district",
            "lincoln",
            "--connection",
            CONNECTION,
            "--json",
        ];
        let out = pulls.cli(args).await;
        let all = printed(&out);
        assert_eq!(out.status.code(), Some(1), "{all}");
        let report = json_of(&out);
        assert_eq!(report["status"], "failed");
        let message = report["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&pulls.provider.token_url()) && message.contains("invalid_client"),
            "{report}"
        );
        assert_eq!(report["errors"][0]["endpoint"], "GET /orgs", "{report}");
        for secret in [WRONG, CLIENT_SECRET] {
            assert!(!all.contains(secret), "{secret} printed: {all}");
        }
        assert_eq!(pulls.roster().await["users"], json!([]));
        assert_eq!(pulls.token_requests(), 1, "a refused secret is not retried");
        pulls.stop().await;
    }
);

on_every_backend!(a_delta_pull_asks_for_changes_and_applies_only_them, |app| {
    let setup = Setup {
        roster: settled_small_school(),
        ..Setup::new(OneRosterVersion::V1_1, OAUTH2)
    };
    let pulls = setup.start(&app).await;
    let (code, report) = pulls.pull(&[]).await;
    assert_eq!(code, 0, "{report}");
    let before = pulls.roster().await;
    let data = pulls.provider.data();
    assert!(data.mark_tobedeleted(Collection::Users, "stu-4"));
    data.upsert(renamed_class());
    pulls.provider.clear_requests();

    let (code, report) = pulls.pull(&[]).await;
    assert_eq!(code, 0, "{report}");
    let requests = pulls.data_requests();
    let mut filters: Vec<(&str, Option<String>)> = requests
        .iter()
        .map(|r| (collection_of(r), filter_of(r)))
        .collect();
    filters.dedup();
    let expected: Vec<(&str, Option<String>)> = Collection::ALL
        .iter()
        .map(|c| (c.plural(), Some(small_school_delta_filter())))
        .collect();
    assert_eq!(filters, expected);
    // Only what the source sent changed: the student, the class; the org came back as it was.
    assert_eq!(common::count(&report, "users", "deleted"), 1, "{report}");
    assert_eq!(common::count(&report, "classes", "updated"), 1, "{report}");
    assert_eq!(common::count(&report, "orgs", "unchanged"), 1, "{report}");
    for kind in ["orgs", "academicSessions", "courses", "enrollments"] {
        assert_eq!(changed(&report, kind), 0, "{kind}: {report}");
    }
    assert_eq!(changed(&report, "users") + changed(&report, "classes"), 2);
    let student = pulls.record(Collection::Users, "stu-4").await;
    assert_eq!(student["rosterStatus"], "No Longer Rostered");
    let class = pulls.record(Collection::Classes, "cls-math-2").await;
    assert_eq!(class["title"], "Algebra I - Period 2 (moved)");
    let after = pulls.roster().await;
    let untouched = |roster: &Value, kind: &str, changed: &str| -> Vec<Value> {
        let records = roster[kind].as_array().unwrap().iter();
        records
            .filter(|r| r["sourcedId"] != changed)
            .cloned()
            .collect()
    };
    for (kind, changed) in [
        ("orgs", ""),
        ("academicSessions", ""),
        ("courses", ""),
        ("classes", "cls-math-2"),
        ("users", "stu-4"),
        ("enrollments", ""),
    ] {
        assert_eq!(
            untouched(&after, kind, changed),
            untouched(&before, kind, changed),
            "{kind}"
        );
    }
    pulls.stop().await;
});

on_every_backend!(
    a_full_pull_removes_what_the_source_no_longer_returns,
    |app| {
        let pulls = Setup::new(OneRosterVersion::V1_2, OAUTH2).start(&app).await;
        let (code, report) = pulls.pull(&[]).await;
        assert_eq!(code, 0, "{report}");
        let data = pulls.provider.data();
        assert!(data.remove(Collection::Users, "stu-4"));
        assert!(data.remove(Collection::Enrollments, "enr-07"));
        let (code, report) = pulls.pull(&["--full"]).await;
        assert_eq!(code, 0, "{report}");
        assert_eq!(common::count(&report, "users", "deleted"), 1, "{report}");
        assert_eq!(common::count(&report, "roles", "deleted"), 1, "{report}");
        assert_eq!(common::count(&report, "enrollments", "deleted"), 1);
        assert_eq!(common::count(&report, "users", "unchanged"), 5);
        let student = pulls.record(Collection::Users, "stu-4").await;
        assert_eq!(student["rosterStatus"], "No Longer Rostered");
        assert_eq!(
            pulls.record(Collection::Enrollments, "enr-07").await,
            Value::Null
        );
        assert_eq!(
            pulls.record(Collection::Users, "stu-3").await["rosterStatus"],
            "Rostered"
        );
        pulls.stop().await;
    }
);

on_every_backend!(
    a_held_pull_applies_only_when_approved_and_moves_the_cursor_only_then,
    |app| {
        let setup = Setup {
            settings: json!({ "threshold_min_changes": 1 }),
            ..Setup::new(
                OneRosterVersion::V1_1,
                Auth::Oauth1(SignatureMethod::HmacSha256),
            )
        };
        let pulls = setup.start(&app).await;
        let (code, report) = pulls.pull(&[]).await;
        assert_eq!(code, 0, "{report}");
        let before = pulls.roster().await;
        let cursor = pulls.cursor().await;
        assert_eq!(cursor, json!("2026-08-01T12:00:00Z"));
        // One student of four leaving is more than 10% of the users.
        let data = pulls.provider.data();
        assert!(data.mark_tobedeleted(Collection::Users, "stu-4"));
        assert!(data.mark_tobedeleted(Collection::Enrollments, "enr-07"));

        // Held, then discarded: nothing applied, the cursor where it was.
        let (code, held) = pulls.pull(&[]).await;
        assert_eq!(code, 3, "{held}");
        assert_eq!(held["status"], "held");
        assert!(!held["held_reasons"].as_array().unwrap().is_empty());
        assert_eq!(pulls.roster().await, before);
        assert_eq!(pulls.cursor().await, cursor);
        let (code, discarded) = pulls
            .decide("discard", held["run_id"].as_str().unwrap())
            .await;
        assert_eq!(code, 0, "{discarded}");
        assert_eq!(pulls.roster().await, before);
        assert_eq!(pulls.cursor().await, cursor);

        // The next pull starts from the same cursor, and is held again; approved, it applies.
        pulls.provider.clear_requests();
        let (code, held) = pulls.pull(&[]).await;
        assert_eq!(code, 3, "{held}");
        for request in pulls.data_requests() {
            assert_eq!(filter_of(&request), Some(small_school_delta_filter()));
        }
        let (code, approved) = pulls
            .decide("approve", held["run_id"].as_str().unwrap())
            .await;
        assert_eq!(code, 0, "{approved}");
        assert_eq!(approved["status"], "applied");
        let student = pulls.record(Collection::Users, "stu-4").await;
        assert_eq!(student["rosterStatus"], "No Longer Rostered");
        let moved = pulls.cursor().await;
        assert!(
            moved.as_str().unwrap() > cursor.as_str().unwrap(),
            "{moved} after {cursor}"
        );

        // Pulls after it start from the new cursor.
        pulls.provider.clear_requests();
        let (code, report) = pulls.pull(&[]).await;
        assert_eq!(code, 0, "{report}");
        let filter = filter_of(&pulls.data_requests()[0]).unwrap();
        assert_ne!(filter, small_school_delta_filter());
        pulls.stop().await;
    }
);

on_every_backend!(
    a_held_pull_approved_after_its_connection_moved_to_another_source_leaves_the_new_cursor_alone,
    |app| {
        let setup = Setup {
            settings: json!({ "threshold_min_changes": 1 }),
            ..Setup::new(OneRosterVersion::V1_2, OAUTH2)
        };
        let pulls = setup.start(&app).await;
        let (code, report) = pulls.pull(&[]).await;
        assert_eq!(code, 0, "{report}");
        assert!(pulls.data_requests().len() > 1);
        let data = pulls.provider.data();
        assert!(data.mark_tobedeleted(Collection::Users, "stu-4"));
        assert!(data.mark_tobedeleted(Collection::Enrollments, "enr-07"));
        let (code, held) = pulls.pull(&[]).await;
        assert_eq!(code, 3, "{held}");
        // Meanwhile the district points the connection at another SIS: its cursor is reset.
        let path = format!(
            "/api/v1/districts/{}/connections/{CONNECTION}",
            pulls.district
        );
        let (status, mut body) = app.get(&path, OPERATOR_TOKEN).await;
        assert_eq!(status, 200, "{body}");
        for key in [
            "secret",
            "delta_cursor",
            "last_full_at",
            "created_at",
            "updated_at",
        ] {
            body.as_object_mut().unwrap().remove(key);
        }
        body["base_url"] = json!(format!("{}/elsewhere", pulls.provider.base_url()));
        body["secret"] = json!(CLIENT_SECRET);
        let replaced = app
            .client
            .put(app.url(&path))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(replaced.status(), 200, "{}", replaced.text().await.unwrap());
        assert_eq!(pulls.cursor().await, Value::Null);
        // The held run of the old source still applies, but leaves the new source's cursor.
        let (code, approved) = pulls
            .decide("approve", held["run_id"].as_str().unwrap())
            .await;
        assert_eq!(code, 0, "{approved}");
        assert_eq!(approved["status"], "applied");
        assert_eq!(pulls.cursor().await, Value::Null);
        pulls.stop().await;
    }
);

on_every_backend!(a_dry_run_applies_nothing_and_leaves_the_cursor, |app| {
    let pulls = Setup::new(OneRosterVersion::V1_2, OAUTH2).start(&app).await;
    let empty = pulls.roster().await;
    let (code, report) = pulls.pull(&["--dry-run"]).await;
    assert_eq!(code, 4, "{report}");
    assert_eq!(report["status"], "dry_run");
    pulls.assert_created_all(&report);
    assert_eq!(pulls.roster().await, empty);
    assert_eq!(pulls.cursor().await, Value::Null);

    let (code, report) = pulls.pull(&[]).await;
    assert_eq!(code, 0, "{report}");
    let before = pulls.roster().await;
    let cursor = pulls.cursor().await;
    pulls.provider.data().upsert(renamed_class());
    let (code, report) = pulls.pull(&["--dry-run"]).await;
    assert_eq!(code, 4, "{report}");
    assert_eq!(common::count(&report, "classes", "updated"), 1, "{report}");
    assert_eq!(pulls.roster().await, before);
    assert_eq!(pulls.cursor().await, cursor);
    pulls.stop().await;
});
