//! `/metrics` stays bounded whatever clients send. The metrics registry is per process and the
//! other tests of this binary add series of their own while this one runs, so a scrape here keeps
//! only the HTTP series the made-up requests below can land in: an unknown method, or a GET
//! that matches no route.

use crate::common;

use crate::common::OPERATOR_TOKEN;

/// The series a made-up request can land in (sample lines without their values), and the size
/// of their lines.
async fn scrape(app: &common::TestApp) -> (std::collections::BTreeSet<String>, usize) {
    let body = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = body
        .lines()
        .filter(|l| {
            l.starts_with("rostergate_http_requests")
                && (l.contains("method=\"other\"")
                    || l.contains("method=\"GET\",route=\"unmatched\""))
        })
        .collect();
    let size = lines.iter().map(|l| l.len() + 1).sum();
    let series = lines
        .into_iter()
        .map(|l| {
            l.rsplit_once(' ')
                .map_or(l, |(series, _)| series)
                .to_string()
        })
        .collect();
    (series, size)
}

/// Sends `method` to `path`, as a client making things up would.
async fn send(app: &common::TestApp, method: &str, path: &str) {
    app.client
        .request(method.parse().unwrap(), app.url(path))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
}

on_every_backend!(random_methods_and_paths_add_no_metric_series, |app| {
    // One request of each kind the random ones below can be, so that their series exist.
    send(&app, "FROB", "/made/up").await;
    send(&app, "FROB", "/api/v1/districts").await;
    send(&app, "GET", "/made/up").await;
    send(&app, "FROB", "/api/v1/districts/nowhere/users/x").await;
    send(&app, "GET", "/api/v1/districts/nowhere/users/x").await;
    scrape(&app).await;
    let (before, size_before) = scrape(&app).await;
    assert!(
        before.iter().any(|s| s.contains("method=\"other\"")),
        "{before:?}"
    );
    for n in 0..300 {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let method = format!("M{}", &id[..8]).to_uppercase();
        let path = match n % 3 {
            0 => format!("/{id}"),
            1 => format!("/api/v1/districts/{id}/users/{id}"),
            _ => format!("/api/v1/districts?{id}={id}"),
        };
        send(&app, &method, &path).await;
        send(&app, "GET", &format!("/{id}/{n}")).await;
    }
    let (after, size_after) = scrape(&app).await;
    assert_eq!(before, after, "no new series");
    // Only the counts grew: a few digits per series at most.
    assert!(
        size_after <= size_before + 4 * after.len(),
        "{size_before} → {size_after} bytes"
    );
});
