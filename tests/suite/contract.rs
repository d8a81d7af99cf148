//! The contract (`contracts/openapi.yaml`) against the routes the server has.

use crate::common;

use crate::common::OPERATOR_TOKEN;
use serde_json::Value;

on_every_backend!(contract_lists_exactly_the_routes_the_server_has, |app| {
    let _ = &app;
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contracts/openapi.yaml"
    ))
    .unwrap();
    let mut documented = std::collections::BTreeSet::new();
    let mut path: Option<String> = None;
    for line in spec.lines() {
        if let Some(p) = line.strip_prefix("  /").and_then(|l| l.strip_suffix(':')) {
            path = Some(format!("/{p}"));
        } else if let (Some(p), Some(method)) = (
            &path,
            line.strip_prefix("    ").and_then(|l| l.strip_suffix(':')),
        ) {
            if ["get", "post", "put", "patch", "delete"].contains(&method) {
                documented.insert((method.to_uppercase(), p.clone()));
            }
        } else if !line.starts_with(' ') && !line.is_empty() {
            path = None;
        }
    }
    let served: std::collections::BTreeSet<(String, String)> =
        rostergate::http::route_list().into_iter().collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(undocumented.is_empty() && unserved.is_empty(), "served but not in contracts/openapi.yaml: {undocumented:?}\nin the contract but not served: {unserved:?}");
    // Every documented route answers with something other than "no such route".
    for (method, path) in &documented {
        let concrete = path
            .replace("{district}", "nowhere")
            .replace("{sourced_id}", "x")
            .replace("{run_id}", "x");
        let r = app
            .client
            .request(method.parse().unwrap(), app.url(&concrete))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_ne!(body["error"]["code"], "route_not_found", "{method} {path}");
    }
});
