//! Webhook delivery, black-box: provisioning events reach a subscriber served by the test on
//! 127.0.0.1, signed (every signature checked with `events::signing::verify`), with the
//! envelope as body; failures are retried until delivered; 410 and a long run of failures
//! disable a subscription, whose events then wait until it is enabled again; events about one
//! subject arrive in order; a gateway killed mid-delivery delivers after a restart; replays; the
//! delivery log; private targets refused at connect time; and on PostgreSQL two gateways
//! delivering each event once. On both databases unless said otherwise.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::Utc;
use rostergate::auth::keys::MasterKey;
use rostergate::auth::secrets::SecretBox;
use rostergate::events::signing::{verify, SignedHeaders, WebhookSecret};
use rostergate::store::subscriptions::NewSubscription;
use rostergate::store::{districts, Db};
use serde_json::{json, Value};

use crate::common::{
    backends, school, Backend, Bundle, TestApp, TestDb, MASTER_KEY, OPERATOR_TOKEN,
};

/// A gateway that may call the test's subscriber, looks for work often and retries soon.
const FAST: &[(&str, &str)] = &[
    ("ROSTERGATE_OUTBOUND__ALLOW_PRIVATE_TARGETS", "true"),
    ("ROSTERGATE_WEBHOOKS__POLL_INTERVAL_MS", "50"),
    (
        "ROSTERGATE_WEBHOOKS__RETRY_SCHEDULE_SECS",
        "0.2,0.2,0.2,0.2,0.2,0.2",
    ),
    ("ROSTERGATE_WEBHOOKS__JITTER_FRACTION", "0"),
    ("ROSTERGATE_WEBHOOKS__REQUEST_TIMEOUT_SECS", "1"),
];

// ---------------------------------------------------------------------------------------------
// The subscriber

/// One request the subscriber received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    id: String,
    body: Value,
    content_type: String,
    /// The signature check against the path's secret.
    verified: Result<(), String>,
    answered: u16,
    at: Instant,
}

impl Received {
    fn event_type(&self) -> &str {
        self.body["type"].as_str().unwrap_or_default()
    }
    fn subject(&self) -> &str {
        self.body["subject"].as_str().unwrap_or_default()
    }
    fn user(&self) -> &str {
        self.body["data"]["user_sourced_id"]
            .as_str()
            .unwrap_or_default()
    }
}

/// How the subscriber answers a request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    RetryAfter(u16, u64),
    /// Waits, then answers 200.
    Stall(Duration),
}

/// What the script is told about a request: how many times (this one included) its path has
/// received its event id, and whose event it is.
struct Seen<'a> {
    nth: usize,
    user: &'a str,
}

type Script = Arc<dyn Fn(&Seen<'_>) -> Reply + Send + Sync>;

struct SubscriberState {
    secrets: Mutex<HashMap<String, Vec<WebhookSecret>>>,
    log: Mutex<Vec<Received>>,
    script: Mutex<Script>,
}

#[derive(Clone)]
struct Subscriber {
    origin: String,
    state: Arc<SubscriberState>,
}

async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<SubscriberState>>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let path = req.path().to_string();
    let secrets = state
        .secrets
        .lock()
        .unwrap()
        .get(&path)
        .cloned()
        .unwrap_or_default();
    let verified = verify(
        &secrets,
        &SignedHeaders {
            id: id.as_deref(),
            timestamp: timestamp.as_deref(),
            signature: signature.as_deref(),
        },
        &body,
        Utc::now(),
    )
    .map_err(|e| e.to_string());
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = id.unwrap_or_default();
    let nth = {
        let log = state.log.lock().unwrap();
        1 + log.iter().filter(|r| r.path == path && r.id == id).count()
    };
    let script = state.script.lock().unwrap().clone();
    let user = body["data"]["user_sourced_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let reply = script(&Seen { nth, user: &user });
    let answered = match reply {
        Reply::Status(code) | Reply::RetryAfter(code, _) => code,
        Reply::Stall(_) => 200,
    };
    state.log.lock().unwrap().push(Received {
        path,
        id,
        body,
        content_type: header("content-type").unwrap_or_default(),
        verified,
        answered,
        at: Instant::now(),
    });
    let status = actix_web::http::StatusCode::from_u16(answered).unwrap();
    match reply {
        Reply::Status(_) => HttpResponse::build(status).body("thanks"),
        Reply::RetryAfter(_, secs) => HttpResponse::build(status)
            .insert_header(("Retry-After", secs.to_string()))
            .body("slow down"),
        Reply::Stall(wait) => {
            tokio::time::sleep(wait).await;
            HttpResponse::Ok().body("late")
        }
    }
}

impl Subscriber {
    async fn start() -> Subscriber {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(SubscriberState {
            secrets: Mutex::default(),
            log: Mutex::default(),
            script: Mutex::new(Arc::new(|_: &Seen<'_>| Reply::Status(200))),
        });
        let shared = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(handle))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Subscriber {
            origin: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    fn answer_with(&self, script: impl Fn(&Seen<'_>) -> Reply + Send + Sync + 'static) {
        *self.state.script.lock().unwrap() = Arc::new(script);
    }

    fn trust(&self, path: &str, secret: &str) {
        self.state.secrets.lock().unwrap().insert(
            path.to_string(),
            vec![WebhookSecret::parse(secret).unwrap()],
        );
    }

    fn log(&self, path: &str) -> Vec<Received> {
        self.state
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// The distinct event ids `path` answered 2xx to.
    fn delivered(&self, path: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .log(path)
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .map(|r| r.id)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Polls `check` every 20 ms until it holds; panics with `what` after `within`.
async fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Subscribes the subscriber's `path` to a district's events; the subscription id.
async fn subscribe(
    app: &TestApp,
    district: &str,
    subscriber: &Subscriber,
    path: &str,
    types: &[&str],
) -> String {
    let (status, made) = app
        .post_json(
            &format!("/api/v1/districts/{district}/subscriptions"),
            OPERATOR_TOKEN,
            &json!({ "url": subscriber.url(path), "event_types": types }),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    subscriber.trust(path, made["secret"].as_str().unwrap());
    made["id"].as_str().unwrap().to_string()
}

async fn import(app: &TestApp, district: &str, bundle: &Bundle) {
    let (status, report) = app.import(district, OPERATOR_TOKEN, bundle).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["status"], "applied", "{report}");
}

/// The school without one user (and their enrollments): that user is no longer rostered.
fn school_without(user: &str) -> Bundle {
    without(school(), user)
}

/// A bundle without one user and their enrollments.
fn without(base: Bundle, user: &str) -> Bundle {
    let keep = |file: &str| {
        base.get(file)
            .lines()
            .filter(|l| !l.starts_with(&format!("{user},")) && !l.contains(&format!(",{user},")))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    base.clone()
        .with("users.csv", &keep("users.csv"))
        .with("enrollments.csv", &keep("enrollments.csv"))
}

/// The district's events, from the events API: `evt_<id>` → the event.
async fn events_of(app: &TestApp, district: &str) -> BTreeMap<String, Value> {
    app.events(district)
        .await
        .into_iter()
        .map(|e| (e["id"].as_str().unwrap().to_string(), e))
        .collect()
}

async fn deliveries_of(
    app: &TestApp,
    district: &str,
    subscription: &str,
    query: &str,
) -> Vec<Value> {
    let (status, body) = app
        .get(
            &format!("/api/v1/districts/{district}/subscriptions/{subscription}/deliveries{query}"),
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().unwrap().clone()
}

async fn subscription_of(app: &TestApp, district: &str, id: &str) -> Value {
    let (status, body) = app
        .get(
            &format!("/api/v1/districts/{district}/subscriptions/{id}"),
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls the API until `check` holds for the subscription's deliveries.
async fn until_deliveries(
    app: &TestApp,
    district: &str,
    subscription: &str,
    what: &str,
    within: Duration,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let found = deliveries_of(app, district, subscription, "?limit=1000").await;
        if check(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {found:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn all_delivered(found: &[Value], n: usize) -> bool {
    found.len() == n && found.iter().all(|d| d["status"] == "delivered")
}

// ---------------------------------------------------------------------------------------------
// Tests

on_every_backend!(
    a_subscription_gets_its_districts_events_of_its_types_signed_with_the_envelope,
    with FAST,
    |app| {
        let subscriber = Subscriber::start().await;
        app.create_district("lincoln").await;
        app.create_district("grant").await;
        let accounts = subscribe(&app, "lincoln", &subscriber, "/accounts", &["account.provisioned"]).await;
        let everything = subscribe(&app, "lincoln", &subscriber, "/everything", &[]).await;
        subscribe(&app, "lincoln", &subscriber, "/changes", &["account.roster_status_changed"]).await;
        subscribe(&app, "grant", &subscriber, "/grant", &["account.provisioned"]).await;
        import(&app, "lincoln", &school()).await;

        let events = events_of(&app, "lincoln").await;
        let provisioned: Vec<&String> = events
            .iter()
            .filter(|(_, e)| e["type"] == "account.provisioned")
            .map(|(id, _)| id)
            .collect();
        assert_eq!(provisioned.len(), 5);
        until("the five account events", Duration::from_secs(20), || {
            subscriber.delivered("/accounts").len() == 5
        })
        .await;
        let got = subscriber.log("/accounts");
        assert_eq!(got.len(), 5, "each event once: {got:#?}");
        for r in &got {
            assert_eq!(r.verified, Ok(()), "{r:?}");
            assert_eq!(r.content_type, "application/json");
            assert_eq!(r.event_type(), "account.provisioned");
            assert_eq!(r.body["id"], r.id.as_str(), "the webhook-id is the event id");
            assert_eq!(r.body["district"], "lincoln");
            // The body is the envelope the events API serves, member for member.
            assert_eq!(&r.body, &events[&r.id]);
            assert!(r.body["occurred_at"].is_string(), "{}", r.body);
        }
        // Every catalogue event of the district, and nothing else.
        let catalogue: Vec<&String> = events
            .iter()
            .filter(|(_, e)| {
                let t = e["type"].as_str().unwrap();
                rostergate::events::catalogue::is_event_type(t)
            })
            .map(|(id, _)| id)
            .collect();
        until("every catalogue event", Duration::from_secs(20), || {
            subscriber.delivered("/everything").len() == catalogue.len()
        })
        .await;
        assert!(subscriber.log("/everything").iter().all(|r| r.verified.is_ok()
            && rostergate::events::catalogue::is_event_type(r.event_type())));
        let log = deliveries_of(&app, "lincoln", &everything, "").await;
        assert_eq!(log.len(), catalogue.len());
        // No roster status changed, and grant had no events at all.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(subscriber.log("/changes").is_empty());
        assert!(subscriber.log("/grant").is_empty());
        let log = deliveries_of(&app, "lincoln", &accounts, "?status=delivered").await;
        assert_eq!(log.len(), 5);
        assert!(log.iter().all(|d| d["attempts"] == 1 && d["last_status_code"] == 200));
    }
);

on_every_backend!(
    failed_attempts_are_retried_until_delivered_honouring_retry_after,
    with FAST,
    |app| {
        let subscriber = Subscriber::start().await;
        // 500, then 429 asking for a second, then too slow for the 1 s timeout, then 200.
        subscriber.answer_with(|seen| match seen.nth {
            1 => Reply::Status(500),
            2 => Reply::RetryAfter(429, 1),
            3 => Reply::Stall(Duration::from_millis(2500)),
            _ => Reply::Status(200),
        });
        app.create_district("lincoln").await;
        let id = subscribe(&app, "lincoln", &subscriber, "/flaky", &["account.provisioned"]).await;
        import(&app, "lincoln", &school()).await;
        let found = until_deliveries(&app, "lincoln", &id, "five deliveries", Duration::from_secs(30), |f| {
            all_delivered(f, 5)
        })
        .await;
        assert_eq!(subscriber.delivered("/flaky").len(), 5);
        for d in &found {
            assert_eq!(d["attempts"], 4, "{d}");
            let (status, one) = app
                .get(&format!("/api/v1/districts/lincoln/deliveries/{}", d["id"]), OPERATOR_TOKEN)
                .await;
            assert_eq!(status, 200, "{one}");
            let attempts = one["attempt_log"].as_array().unwrap();
            let codes: Vec<&Value> = attempts.iter().map(|a| &a["status_code"]).collect();
            assert_eq!(codes, [&json!(500), &json!(429), &Value::Null, &json!(200)], "{one}");
            assert!(attempts[2]["error"].as_str().unwrap().contains("timed out"), "{one}");
            assert_eq!(attempts[0]["error"], "HTTP 500");
            assert_eq!(attempts[0]["response_excerpt"], "thanks");
            let at = |i: usize| {
                chrono::DateTime::parse_from_rfc3339(attempts[i]["attempted_at"].as_str().unwrap()).unwrap()
            };
            // The 429 asked for a second: the next attempt waited at least that long.
            assert!(at(2) - at(1) >= chrono::Duration::milliseconds(950), "{one}");
        }
        let subscription = subscription_of(&app, "lincoln", &id).await;
        assert_eq!(subscription["status"], "enabled");
        assert_eq!(subscription["failing_since"], Value::Null, "a success ends the failure run");
        assert!(subscriber.log("/flaky").iter().all(|r| r.verified.is_ok()));
    }
);

on_every_backend!(
    gone_disables_the_subscription_and_later_events_wait_until_it_is_enabled,
    with FAST,
    |app| {
        let subscriber = Subscriber::start().await;
        subscriber.answer_with(|_| Reply::Status(410));
        app.create_district("lincoln").await;
        let id = subscribe(&app, "lincoln", &subscriber, "/gone", &["account.provisioned", "account.roster_status_changed"]).await;
        import(&app, "lincoln", &school()).await;
        until_deliveries(&app, "lincoln", &id, "the first 410", Duration::from_secs(20), |f| {
            f.iter().any(|d| d["status"] == "failed")
        })
        .await;
        let subscription = subscription_of(&app, "lincoln", &id).await;
        assert_eq!(subscription["status"], "disabled");
        assert!(subscription["disabled_reason"].as_str().unwrap().contains("410"), "{subscription}");
        // Let whatever was in flight settle, then the subscriber comes back.
        tokio::time::sleep(Duration::from_millis(300)).await;
        subscriber.answer_with(|_| Reply::Status(200));
        let before = subscriber.log("/gone").len();
        let failed: usize = deliveries_of(&app, "lincoln", &id, "?status=failed").await.len();
        assert!(failed >= 1);

        import(&app, "lincoln", &school_without("stu-3")).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(subscriber.log("/gone").len(), before, "nothing is sent while disabled");
        let waiting = deliveries_of(&app, "lincoln", &id, "?status=pending").await;
        assert!(
            waiting.iter().any(|d| d["event_type"] == "account.roster_status_changed"),
            "{waiting:#?}"
        );

        let (status, enabled) = app
            .post_json(&format!("/api/v1/districts/lincoln/subscriptions/{id}/enable"), OPERATOR_TOKEN, &json!({}))
            .await;
        assert_eq!(status, 200, "{enabled}");
        until("the waiting events after enabling", Duration::from_secs(20), || {
            subscriber
                .log("/gone")
                .iter()
                .any(|r| r.event_type() == "account.roster_status_changed" && r.answered == 200)
        })
        .await;
        // Failed deliveries stay failed: a 410 is final (a replay sends them again).
        assert_eq!(deliveries_of(&app, "lincoln", &id, "?status=failed").await.len(), failed);
    }
);

on_every_backend!(
    a_subscription_failing_for_the_configured_time_is_disabled,
    with & [
        ("ROSTERGATE_OUTBOUND__ALLOW_PRIVATE_TARGETS", "true"),
        ("ROSTERGATE_WEBHOOKS__POLL_INTERVAL_MS", "50"),
        (
            "ROSTERGATE_WEBHOOKS__RETRY_SCHEDULE_SECS",
            "0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2"
        ),
        ("ROSTERGATE_WEBHOOKS__JITTER_FRACTION", "0"),
        // 0.86 s.
        ("ROSTERGATE_WEBHOOKS__DISABLE_AFTER_DAYS", "0.00001"),
    ],
    |app| {
        let subscriber = Subscriber::start().await;
        subscriber.answer_with(|_| Reply::Status(500));
        app.create_district("lincoln").await;
        let id = subscribe(
            &app,
            "lincoln",
            &subscriber,
            "/down",
            &["account.provisioned"],
        )
        .await;
        import(&app, "lincoln", &school()).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        let subscription = loop {
            let s = subscription_of(&app, "lincoln", &id).await;
            if s["status"] == "disabled" {
                break s;
            }
            assert!(Instant::now() < deadline, "never disabled: {s}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let reason = subscription["disabled_reason"].as_str().unwrap();
        assert!(reason.contains("failed since"), "{reason}");
        assert!(subscription["failing_since"].is_string(), "{subscription}");
        // The deliveries themselves are kept, waiting.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let log = deliveries_of(&app, "lincoln", &id, "").await;
        assert_eq!(log.len(), 5);
        assert!(log.iter().all(|d| d["status"] == "pending"), "{log:#?}");
        let sent = subscriber.log("/down").len();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            subscriber.log("/down").len(),
            sent,
            "nothing is sent while disabled"
        );
    }
);

on_every_backend!(
    events_about_one_subject_arrive_in_order_while_other_subjects_proceed,
    with FAST,
    |app| {
        let subscriber = Subscriber::start().await;
        let hold = Arc::new(Mutex::new(true));
        let held = hold.clone();
        // stu-3's events fail while held; everyone else's succeed.
        subscriber.answer_with(move |seen| {
            if seen.user == "stu-3" && *held.lock().unwrap() {
                Reply::Status(503)
            } else {
                Reply::Status(200)
            }
        });
        app.create_district("lincoln").await;
        let id = subscribe(&app, "lincoln", &subscriber, "/ordered", &["account.provisioned", "account.roster_status_changed"]).await;
        import(&app, "lincoln", &school()).await;
        import(&app, "lincoln", &school_without("stu-3")).await;
        import(&app, "lincoln", &school()).await;
        // stu-3: provisioned, no longer rostered, rostered again; four others provisioned.
        until_deliveries(&app, "lincoln", &id, "seven deliveries", Duration::from_secs(20), |f| {
            f.len() == 7 && f.iter().filter(|d| d["status"] == "delivered").count() == 4
        })
        .await;
        let held_for = |subscriber: &Subscriber| -> Vec<Received> {
            subscriber.log("/ordered").into_iter().filter(|r| r.user() == "stu-3").collect()
        };
        until("stu-3's first event tried again", Duration::from_secs(20), || {
            held_for(&subscriber).len() >= 3
        })
        .await;
        let stu3 = held_for(&subscriber);
        assert!(
            stu3.iter().all(|r| r.event_type() == "account.provisioned"),
            "nothing later about stu-3 before its first event is delivered: {stu3:#?}"
        );
        *hold.lock().unwrap() = false;
        until_deliveries(&app, "lincoln", &id, "all seven delivered", Duration::from_secs(20), |f| {
            all_delivered(f, 7)
        })
        .await;
        let stu3: Vec<Received> = subscriber
            .log("/ordered")
            .into_iter()
            .filter(|r| r.user() == "stu-3" && r.answered == 200)
            .collect();
        let kinds: Vec<(&str, &Value)> = stu3
            .iter()
            .map(|r| (r.event_type(), &r.body["data"]["roster_status"]))
            .collect();
        assert_eq!(
            kinds,
            [
                ("account.provisioned", &Value::Null),
                ("account.roster_status_changed", &json!("No Longer Rostered")),
                ("account.roster_status_changed", &json!("Rostered")),
            ]
        );
        assert!(stu3.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(stu3.iter().all(|r| r.subject() == stu3[0].subject()));
    }
);

on_every_backend!(
    replays_send_one_event_or_a_time_range_again,
    with FAST,
    |app| {
        let subscriber = Subscriber::start().await;
        app.create_district("lincoln").await;
        app.create_district("grant").await;
        let started = Utc::now() - chrono::Duration::seconds(1);
        let id = subscribe(&app, "lincoln", &subscriber, "/replay", &["account.provisioned"]).await;
        let other = subscribe(&app, "grant", &subscriber, "/other", &["account.provisioned"]).await;
        import(&app, "lincoln", &school()).await;
        import(&app, "grant", &school()).await;
        until("the first five", Duration::from_secs(20), || subscriber.delivered("/replay").len() == 5).await;
        let first = subscriber.delivered("/replay")[0].clone();
        let replay = format!("/api/v1/districts/lincoln/subscriptions/{id}/replay");

        let (status, body) = app.post_json(&replay, OPERATOR_TOKEN, &json!({ "event_id": first })).await;
        assert_eq!((status, &body), (202, &json!({ "queued": 1 })));
        until("the replayed event", Duration::from_secs(20), || {
            subscriber.log("/replay").iter().filter(|r| r.id == first).count() == 2
        })
        .await;
        let until_now = Utc::now() + chrono::Duration::seconds(1);
        let (status, body) = app
            .post_json(&replay, OPERATOR_TOKEN, &json!({ "since": started.to_rfc3339(), "until": until_now.to_rfc3339() }))
            .await;
        assert_eq!((status, &body), (202, &json!({ "queued": 5 })));
        until("the replayed range", Duration::from_secs(20), || subscriber.log("/replay").len() == 11).await;
        assert!(subscriber.log("/replay").iter().all(|r| r.verified.is_ok() && r.body["district"] == "lincoln"));
        let (status, body) = app
            .post_json(&replay, OPERATOR_TOKEN, &json!({ "since": "2000-01-01T00:00:00Z", "until": "2000-01-02T00:00:00Z" }))
            .await;
        assert_eq!((status, &body), (202, &json!({ "queued": 0 })));

        // Bad input: named, and nothing queued.
        let grant_event = subscriber.delivered("/other")[0].clone();
        let non_account = events_of(&app, "lincoln")
            .await
            .into_iter()
            .find(|(_, e)| e["type"] != "account.provisioned")
            .map(|(id, _)| id);
        let mut cases = vec![
            (replay.clone(), json!({ "event_id": grant_event }), 404, None),
            (replay.clone(), json!({ "event_id": "evt_999999" }), 404, None),
            (replay.clone(), json!({ "event_id": "evt_x" }), 422, Some("/event_id")),
            (replay.clone(), json!({ "event_id": 5 }), 422, Some("/event_id")),
            (replay.clone(), json!({}), 422, Some("")),
            (replay.clone(), json!([1]), 422, Some("")),
            (replay.clone(), json!({ "since": "2026-01-01T00:00:00Z" }), 422, Some("/until")),
            (replay.clone(), json!({ "since": "monday", "until": "2026-01-01T00:00:00Z" }), 422, Some("/since")),
            (replay.clone(), json!({ "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z" }), 422, Some("/until")),
            (replay.clone(), json!({ "event_id": first, "extra": true }), 422, Some("/extra")),
            (replay.clone(), json!({ "event_id": "x".repeat(100_000) }), 422, Some("/event_id")),
            (format!("/api/v1/districts/lincoln/subscriptions/{other}/replay"), json!({ "event_id": first }), 404, None),
            ("/api/v1/districts/lincoln/subscriptions/nope/replay".into(), json!({ "event_id": first }), 404, None),
        ];
        if let Some(event) = non_account {
            cases.push((replay.clone(), json!({ "event_id": event }), 422, Some("/event_id")));
        }
        for (path, body, want, pointer) in cases {
            let (status, answer) = app.post_json(&path, OPERATOR_TOKEN, &body).await;
            assert_eq!(status, want, "{path} {body}: {answer}");
            if let Some(pointer) = pointer {
                assert_eq!(answer["error"]["details"][0]["pointer"], pointer, "{body}: {answer}");
            }
        }
        let response = app
            .client
            .post(app.url(&replay))
            .bearer_auth(OPERATOR_TOKEN)
            .header("Content-Type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422);
        assert_eq!(deliveries_of(&app, "lincoln", &id, "").await.len(), 11);

        // The log: newest first, paged, filtered; bad queries and ids refused.
        let page = deliveries_of(&app, "lincoln", &id, "?limit=4").await;
        let ids: Vec<i64> = page.iter().map(|d| d["id"].as_i64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
        let next = deliveries_of(&app, "lincoln", &id, &format!("?limit=4&after={}", ids[3])).await;
        assert!(next.iter().all(|d| d["id"].as_i64().unwrap() < ids[3]));
        assert_eq!(next.len(), 4);
        for (query, want) in [("?status=nope", 400), ("?limit=0", 400), ("?after=-1", 400), ("?bogus=1", 400)] {
            let (status, body) = app
                .get(&format!("/api/v1/districts/lincoln/subscriptions/{id}/deliveries{query}"), OPERATOR_TOKEN)
                .await;
            assert_eq!(status, want, "{query}: {body}");
        }
        for path in [
            "/api/v1/districts/lincoln/deliveries/0".to_string(),
            "/api/v1/districts/lincoln/deliveries/abc".to_string(),
            "/api/v1/districts/lincoln/deliveries/99999999".to_string(),
            format!("/api/v1/districts/grant/deliveries/{}", ids[0]),
            format!("/api/v1/districts/lincoln/subscriptions/{other}/deliveries"),
        ] {
            let (status, body) = app.get(&path, OPERATOR_TOKEN).await;
            assert_eq!(status, 404, "{path}: {body}");
        }
        let reader = app.token_for("lincoln", &["roster:read"]).await;
        let (status, _) = app
            .get(&format!("/api/v1/districts/lincoln/subscriptions/{id}/deliveries"), &reader)
            .await;
        assert_eq!(status, 403);
    }
);

fn secret_box() -> SecretBox {
    SecretBox::new(&MasterKey::from_secret(MASTER_KEY).unwrap())
}

on_every_backend!(
    a_private_target_is_refused_when_the_connection_is_made,
    with & [
        ("ROSTERGATE_WEBHOOKS__POLL_INTERVAL_MS", "50"),
        ("ROSTERGATE_WEBHOOKS__RETRY_SCHEDULE_SECS", "0.2"),
    ],
    |app| {
        let subscriber = Subscriber::start().await;
        app.create_district("lincoln").await;
        // Stored directly: the API refuses the URL up front, as it should. A name that
        // resolves to loopback is what DNS rebinding would give.
        let port = subscriber.origin.rsplit(':').next().unwrap().to_string();
        let db = Db::connect(&app.db.url).await.unwrap();
        let district = districts::get(&db, "lincoln").await.unwrap();
        let new = NewSubscription {
            url: format!("http://localhost:{port}/private"),
            event_types: vec!["account.provisioned".into()],
            description: String::new(),
        };
        let (stored, _) =
            rostergate::events::subscriptions::create(&db, &secret_box(), district.id, &new)
                .await
                .unwrap();
        db.close().await;
        import(&app, "lincoln", &school()).await;
        let found = until_deliveries(
            &app,
            "lincoln",
            &stored.id,
            "failed attempts",
            Duration::from_secs(20),
            |f| f.len() == 5 && f.iter().all(|d| d["status"] == "failed"),
        )
        .await;
        for d in &found {
            let error = d["last_error"].as_str().unwrap();
            assert!(
                error.contains("refused") && error.contains("loopback"),
                "{error}"
            );
            assert_eq!(d["last_status_code"], Value::Null);
        }
        assert!(
            subscriber.log("/private").is_empty(),
            "nothing reached the private address"
        );
    }
);

on_every_backend!(
    successes_are_recorded_in_bulk_only_for_the_lease_and_attempt_held,
    with & [("ROSTERGATE_WEBHOOKS__ENABLED", "false")],
    |app| {
        use rostergate::store::deliveries::{self, AttemptRecord, NewDelivery, Next};
        app.create_district("lincoln").await;
        let db = Db::connect(&app.db.url).await.unwrap();
        let district = districts::get(&db, "lincoln").await.unwrap();
        let new = NewSubscription {
            url: "https://hooks.example.org/in".into(),
            event_types: vec!["account.provisioned".into()],
            description: String::new(),
        };
        let (sub, _) =
            rostergate::events::subscriptions::create(&db, &secret_box(), district.id, &new)
                .await
                .unwrap();
        let queued: Vec<NewDelivery> = (1..=3)
            .map(|seq| NewDelivery {
                subscription_id: sub.id.clone(),
                event_seq: seq,
                subject_id: format!("subject-{seq}"),
            })
            .collect();
        let now = Utc::now();
        deliveries::queue(&db, district.id, &queued, now)
            .await
            .unwrap();
        let lease = now + chrono::Duration::seconds(60);
        let claimed = deliveries::claim(&db, "owner-a", lease, now, 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 3);
        let record = |c: &deliveries::Claimed, attempts: i64| AttemptRecord {
            delivery: deliveries::Claimed {
                attempts,
                ..c.clone()
            },
            attempted_at: now,
            status_code: Some(204),
            duration_ms: 3,
            error: None,
            response_excerpt: None,
            next: Next::Delivered,
        };
        let current: Vec<AttemptRecord> = claimed.iter().map(|c| record(c, 1)).collect();
        let stale = record(&claimed[0], 0);
        let all: Vec<&AttemptRecord> = current.iter().collect();

        // Another process's outcome, or an outcome of an earlier attempt, writes nothing.
        let mut tx = db.begin().await.unwrap();
        let written = deliveries::record_delivered(&mut tx, "owner-b", &all, now).await;
        assert_eq!(written.unwrap(), vec![]);
        let written = deliveries::record_delivered(&mut tx, "owner-a", &[&stale], now).await;
        assert_eq!(written.unwrap(), vec![]);
        tx.commit().await.unwrap();
        for c in &claimed {
            let d = deliveries::find(&db, district.id, c.id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(d.status, deliveries::DeliveryStatus::Delivering);
            assert!(deliveries::attempts(&db, c.id).await.unwrap().is_empty());
        }

        // The holder's outcomes are all written, each with its one attempt.
        let mut tx = db.begin().await.unwrap();
        let written = deliveries::record_delivered(&mut tx, "owner-a", &all, now)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(written.len(), 3);
        for c in &claimed {
            let d = deliveries::find(&db, district.id, c.id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(d.status, deliveries::DeliveryStatus::Delivered);
            assert_eq!(d.last_status_code, Some(204));
            assert!(d.finished_at.is_some());
            let attempts = deliveries::attempts(&db, c.id).await.unwrap();
            assert_eq!(attempts.len(), 1);
            assert_eq!(
                (attempts[0].attempt, attempts[0].status_code),
                (1, Some(204))
            );
        }
        db.close().await;
    }
);

// ---------------------------------------------------------------------------------------------
// Gateways as processes

struct Gateway {
    child: Child,
    address: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `rostergate serve` as a child process, once it is ready.
async fn start_gateway(db_url: &str, dir: &std::path::Path, extra: &[(&str, &str)]) -> Gateway {
    let port = free_port();
    let mut command = common::gateway_command(db_url, dir);
    command
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in FAST.iter().chain(extra) {
        command.env(k, v);
    }
    let gateway = Gateway {
        child: command.spawn().unwrap(),
        address: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{}/health/ready", gateway.address))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(Instant::now() < deadline, "the gateway did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gateway
}

/// A `TestApp` that talks to a gateway process (its database and data folder are the caller's).
fn app_for(gateway: &Gateway, db: TestDb) -> TestApp {
    TestApp {
        address: gateway.address.clone(),
        client: reqwest::Client::new(),
        db,
        data_dir: tempfile::tempdir().unwrap(),
    }
}

#[tokio::test]
async fn a_gateway_killed_mid_delivery_delivers_after_a_restart() {
    rostergate::outbound::tls::install_crypto_provider();
    for backend in backends().await {
        eprintln!("on {backend:?}");
        let subscriber = Subscriber::start().await;
        // Held long enough that the gateway dies with its requests in flight.
        subscriber.answer_with(|_| Reply::Stall(Duration::from_secs(30)));
        let dir = tempfile::tempdir().unwrap();
        let db = TestDb::new(backend).await;
        let url = db.url.clone();
        let slow = [
            ("ROSTERGATE_WEBHOOKS__REQUEST_TIMEOUT_SECS", "3"),
            ("ROSTERGATE_WEBHOOKS__LEASE_SECS", "1"),
        ];
        let mut first = start_gateway(&url, dir.path(), &slow).await;
        let app = app_for(&first, db);
        app.create_district("lincoln").await;
        let id = subscribe(
            &app,
            "lincoln",
            &subscriber,
            "/crash",
            &["account.provisioned"],
        )
        .await;
        import(&app, "lincoln", &school()).await;
        until("requests in flight", Duration::from_secs(20), || {
            subscriber.log("/crash").len() == 5
        })
        .await;
        first.child.kill().unwrap();
        first.child.wait().unwrap();
        subscriber.answer_with(|_| Reply::Status(200));

        let second = start_gateway(&url, dir.path(), &slow).await;
        let app = app_for(&second, app.db);
        until_deliveries(
            &app,
            "lincoln",
            &id,
            "every delivery after the restart",
            Duration::from_secs(30),
            |f| all_delivered(f, 5),
        )
        .await;
        let delivered: Vec<String> = subscriber
            .log("/crash")
            .into_iter()
            .filter(|r| r.answered == 200 && r.verified.is_ok())
            .map(|r| r.id)
            .collect();
        let mut distinct = delivered.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 5, "{delivered:?}");
        drop(second);
    }
}

/// A roster of `n` students in one class, for volume.
fn big_school(n: usize) -> Bundle {
    let mut users = school().get("users.csv").to_string();
    let mut enrollments = school().get("enrollments.csv").to_string();
    for i in 0..n {
        users.push_str(&format!(
            "bulk-{i},,,true,sch-1,student,bulk{i},,Bulk,Student{i},,B{i},bulk{i}@example.org,,,,09,\n"
        ));
        enrollments.push_str(&format!(
            "eb-{i},,,cls-1,sch-1,bulk-{i},student,,2026-08-01,2099-06-30\n"
        ));
    }
    school()
        .with("users.csv", &users)
        .with("enrollments.csv", &enrollments)
}

#[tokio::test]
async fn two_gateways_on_one_postgres_database_deliver_each_event_once_in_order_per_subject() {
    rostergate::outbound::tls::install_crypto_provider();
    if !backends().await.contains(&Backend::Postgres) {
        eprintln!("skipping: two gateways sharing a database need PostgreSQL (set ROSTERGATE_TEST_POSTGRES_URL)");
        return;
    }
    let subscriber = Subscriber::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Backend::Postgres).await;
    let url = db.url.clone();
    let batch = [("ROSTERGATE_WEBHOOKS__BATCH_SIZE", "20")];
    let one = start_gateway(&url, dir.path(), &batch).await;
    let two = start_gateway(&url, dir.path(), &batch).await;
    let app = app_for(&one, db);
    app.create_district("lincoln").await;
    let id = subscribe(&app, "lincoln", &subscriber, "/shared", &[]).await;
    import(&app, "lincoln", &big_school(300)).await;
    import(&app, "lincoln", &without(big_school(300), "stu-3")).await;
    import(&app, "lincoln", &big_school(300)).await;
    let events = events_of(&app, "lincoln").await;
    let wanted: Vec<&String> = events
        .iter()
        .filter(|(_, e)| {
            let t = e["type"].as_str().unwrap();
            rostergate::events::catalogue::is_event_type(t)
        })
        .map(|(id, _)| id)
        .collect();
    assert!(wanted.len() > 300, "{}", wanted.len());
    until("every event", Duration::from_secs(60), || {
        subscriber.delivered("/shared").len() == wanted.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = subscriber.log("/shared");
    assert_eq!(log.len(), wanted.len(), "each event exactly once");
    assert!(log.iter().all(|r| r.verified.is_ok()));
    // Per subject, in event order.
    let mut by_subject: HashMap<String, Vec<i64>> = HashMap::new();
    for r in &log {
        let seq: i64 = r.id.strip_prefix("evt_").unwrap().parse().unwrap();
        by_subject
            .entry(r.subject().to_string())
            .or_default()
            .push(seq);
    }
    let repeated = by_subject.values().filter(|s| s.len() > 1).count();
    assert!(repeated > 0, "some subject has several events");
    for (subject, seqs) in &by_subject {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{subject}: {seqs:?}");
    }
    let delivered = deliveries_of(&app, "lincoln", &id, "?status=delivered&limit=1000").await;
    assert_eq!(delivered.len(), wanted.len().min(1000));
    drop(two);
    drop(one);
}
