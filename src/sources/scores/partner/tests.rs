use chrono::TimeZone;
use serde_json::json;

use super::super::push::{ShapeProblem, MAX_PROBLEMS};
use super::*;

fn body(value: &Json) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

fn result(identifier: &str, rit: i64) -> Json {
    json!({"student": {"identifier": identifier}, "subject": "Mathematics",
        "term": "Fall 2026-2027", "test_date": "2026-10-28", "rit": rit})
}

fn changed(modified_at: &str, result: Json) -> Json {
    json!({"modified_at": modified_at, "result": result})
}

fn contract() -> Json {
    serde_json::from_str(include_str!(
        "../../../../contracts/partner-results.openapi.json"
    ))
    .unwrap()
}

fn names(object: &Json) -> Vec<&str> {
    object
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

fn sorted(mut names: Vec<&str>) -> Vec<&str> {
    names.sort();
    names
}

/// The problem at `pointer`, or a panic naming the refusal.
fn problem_at<'a>(refusal: &'a ShapeRefusal, pointer: &str) -> &'a ShapeProblem {
    refusal
        .problems
        .iter()
        .find(|p| p.pointer == pointer)
        .unwrap_or_else(|| panic!("no problem at {pointer:?}: {refusal:?}"))
}

#[test]
fn a_full_page_is_read_with_its_results_in_utc_and_its_token() {
    let page = json!({
        "results": [
            changed("2026-11-02T10:14:03Z", result("100234", 201)),
            changed("2026-11-02T11:14:03.250+01:00", result("100235", 215)),
        ],
        "next_page_token": "eyJhZnRlciI6IjEwMDAifQ",
    });
    let read = read_page(&body(&page)).unwrap();
    assert_eq!(
        read.next_page_token.as_deref(),
        Some("eyJhZnRlciI6IjEwMDAifQ")
    );
    assert_eq!(read.results.len(), 2);
    assert_eq!(
        read.results[0].modified_at,
        Utc.with_ymd_and_hms(2026, 11, 2, 10, 14, 3).unwrap()
    );
    // An offset is converted to UTC, fractions of a second kept.
    assert_eq!(
        read.results[1].modified_at,
        Utc.with_ymd_and_hms(2026, 11, 2, 10, 14, 3).unwrap() + chrono::Duration::milliseconds(250)
    );
    assert_eq!(
        read.results[0].result.student.identifier.as_deref(),
        Some("100234")
    );
    assert_eq!(
        (read.results[0].result.rit, read.results[1].result.rit),
        (201, 215)
    );
}

#[test]
fn a_last_page_has_no_token_whether_null_or_absent_and_may_be_empty() {
    let one = || vec![changed("2026-11-02T10:14:03Z", result("100234", 201))];
    let cases: [(&str, Json, usize); 4] = [
        (
            "null token",
            json!({"results": one(), "next_page_token": null}),
            1,
        ),
        ("absent token", json!({"results": one()}), 1),
        ("empty results", json!({"results": []}), 0),
        (
            "empty results with a token",
            json!({"results": [], "next_page_token": "p2"}),
            0,
        ),
    ];
    for (name, page, count) in cases {
        let read = read_page(&body(&page)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(read.results.len(), count, "{name}");
        let token_sent = page.get("next_page_token").is_some_and(|t| !t.is_null());
        assert_eq!(read.next_page_token.is_some(), token_sent, "{name}");
    }
}

#[test]
fn a_body_that_is_not_json_is_refused_with_its_line_and_column() {
    let refusal = read_page(b"{\"results\": [\n{]").unwrap_err();
    assert_eq!(refusal.total, 1);
    assert_eq!(refusal.problems[0].pointer, "");
    let message = &refusal.problems[0].message;
    assert!(message.contains("not valid JSON"), "{refusal:?}");
    assert!(message.contains("line 2 column"), "{refusal:?}");
    assert!(read_page(b"").is_err());
    assert!(read_page(&[0xff, 0xfe]).is_err());
}

#[test]
fn each_problem_of_a_page_is_named_by_its_json_pointer() {
    let good = || changed("2026-11-02T10:14:03Z", result("100234", 201));
    let with_token = |token: Json| json!({"results": [good()], "next_page_token": token});
    let with_modified_at =
        |at: Json| json!({"results": [{"modified_at": at, "result": result("1", 201)}]});
    let cases: Vec<(&str, Json, &str, &str)> = vec![
        (
            "page not an object",
            json!([good()]),
            "",
            "a results page must be a JSON object",
        ),
        ("results missing", json!({}), "/results", "is required"),
        (
            "results null",
            json!({"results": null}),
            "/results",
            "may not be null",
        ),
        (
            "unknown page member",
            json!({"results": [], "total": 1}),
            "/total",
            "unknown member",
        ),
        (
            "results not an array",
            json!({"results": {}}),
            "/results",
            "must be an array",
        ),
        (
            "item not an object",
            json!({"results": [1]}),
            "/results/0",
            "must be a JSON object",
        ),
        (
            "unknown item member",
            json!({"results": [{"id": 7, "modified_at": "2026-11-02T10:14:03Z",
                "result": result("1", 201)}]}),
            "/results/0/id",
            "unknown member",
        ),
        (
            "item missing modified_at",
            json!({"results": [{"result": result("1", 201)}]}),
            "/results/0/modified_at",
            "is required",
        ),
        (
            "item missing result",
            json!({"results": [{"modified_at": "2026-11-02T10:14:03Z"}]}),
            "/results/0/result",
            "is required",
        ),
        (
            "modified_at not a date-time",
            with_modified_at(json!("yesterday")),
            "/results/0/modified_at",
            "RFC 3339",
        ),
        (
            "modified_at a date only",
            with_modified_at(json!("2026-11-02")),
            "/results/0/modified_at",
            "RFC 3339",
        ),
        (
            "modified_at without an offset",
            with_modified_at(json!("2026-11-02T10:14:03")),
            "/results/0/modified_at",
            "with an offset or Z",
        ),
        (
            "modified_at a number",
            with_modified_at(json!(1_793_614_443)),
            "/results/0/modified_at",
            "RFC 3339",
        ),
        (
            "bad result member",
            json!({"results": [good(), changed("2026-11-02T10:14:03Z", result("1", 20))]}),
            "/results/1/result/rit",
            "outside 100–350",
        ),
        (
            "result not an object",
            json!({"results": [changed("2026-11-02T10:14:03Z", json!("201"))]}),
            "/results/0/result",
            "a result must be a JSON object",
        ),
        (
            "token empty",
            with_token(json!("")),
            "/next_page_token",
            "may not be empty",
        ),
        (
            "token too long",
            with_token(json!("t".repeat(MAX_PAGE_TOKEN_CHARS + 1))),
            "/next_page_token",
            "longer than 2048",
        ),
        (
            "token a number",
            with_token(json!(2)),
            "/next_page_token",
            "must be a string",
        ),
        (
            "token with a newline",
            with_token(json!("p2\nX-Injected: 1")),
            "/next_page_token",
            "control characters",
        ),
    ];
    for (name, page, pointer, wanted) in cases {
        let refusal = read_page(&body(&page)).expect_err(name);
        let found = problem_at(&refusal, pointer);
        assert!(found.message.contains(wanted), "{name}: {found:?}");
    }
}

#[test]
fn a_token_of_the_longest_length_is_kept_unchanged() {
    let token = format!(" {} ", "é".repeat(MAX_PAGE_TOKEN_CHARS - 2));
    let page = json!({"results": [], "next_page_token": token});
    let read = read_page(&body(&page)).unwrap();
    assert_eq!(read.next_page_token, Some(token));
}

#[test]
fn a_page_with_many_bad_results_lists_the_first_and_counts_them_all() {
    let results: Vec<Json> = (0..100)
        .map(|_| changed("soon", result("100234", 201)))
        .collect();
    let refusal = read_page(&body(&json!({ "results": results }))).unwrap_err();
    assert_eq!(refusal.problems.len(), MAX_PROBLEMS);
    assert_eq!(refusal.total, 100);
    assert_eq!(
        refusal.problems[MAX_PROBLEMS - 1].pointer,
        format!("/results/{}/modified_at", MAX_PROBLEMS - 1)
    );
    assert!(refusal.to_string().contains("(and 97 more)"), "{refusal}");
}

#[test]
fn hostile_nesting_is_refused_without_overflowing_the_stack() {
    let depth = 10_000;
    for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
        let nested = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        let page = format!(
            r#"{{"results": [{{"modified_at": "2026-11-02T10:14:03Z", "result": {nested}}}]}}"#
        );
        let refusal = read_page(page.as_bytes()).unwrap_err();
        assert_eq!(refusal.total, 1, "{refusal:?}");
        assert_eq!(refusal.problems[0].pointer, "");
        assert!(
            refusal.problems[0].message.contains("not valid JSON"),
            "{refusal:?}"
        );
    }
}

/// The contract and the reader agree: the members of a page and of a changed result, which are
/// required, that no other member is allowed, the token's bounds, and that a result is the
/// push's; and the contract's example page reads.
#[test]
fn the_partner_results_contract_agrees_with_the_reader() {
    let contract = contract();
    let schemas = &contract["components"]["schemas"];
    let page = &schemas["ResultsPage"];
    let changed = &schemas["ChangedResult"];
    assert_eq!(
        sorted(names(&page["properties"])),
        sorted(PAGE_MEMBERS.to_vec())
    );
    assert_eq!(page["required"], json!(["results"]));
    assert_eq!(page["additionalProperties"], json!(false));
    assert_eq!(
        sorted(names(&changed["properties"])),
        sorted(CHANGED_RESULT_MEMBERS.to_vec())
    );
    assert_eq!(
        sorted(
            changed["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect()
        ),
        sorted(CHANGED_RESULT_MEMBERS.to_vec())
    );
    assert_eq!(changed["additionalProperties"], json!(false));
    assert_eq!(
        changed["properties"]["result"]["$ref"],
        json!("./schemas/score-push.schema.json#/$defs/result")
    );
    assert_eq!(page["properties"]["results"].get("minItems"), None);
    let token = &page["properties"]["next_page_token"]["oneOf"];
    assert_eq!(token[0]["type"], json!("string"));
    assert_eq!(token[0]["minLength"], json!(1));
    assert_eq!(
        token[0]["maxLength"].as_u64(),
        Some(MAX_PAGE_TOKEN_CHARS as u64)
    );
    assert_eq!(token[1]["type"], json!("null"));
    // The token goes back as `page_token`, which has the same bounds.
    let get = &contract["paths"]["/results"]["get"];
    let page_token = get["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == json!("page_token"))
        .unwrap();
    assert_eq!(
        page_token["schema"]["maxLength"].as_u64(),
        Some(MAX_PAGE_TOKEN_CHARS as u64)
    );
    assert_eq!(
        get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        json!("#/components/schemas/ResultsPage")
    );

    let example = &get["responses"]["200"]["content"]["application/json"]["example"];
    let read = read_page(&body(example)).unwrap();
    assert_eq!(read.results.len(), 1);
    assert_eq!(read.results[0].result.goals.len(), 2);
    assert_eq!(
        read.next_page_token.as_deref(),
        Some("eyJhZnRlciI6IjEwMDAifQ")
    );
    assert_eq!(
        read.results[0].modified_at,
        Utc.with_ymd_and_hms(2026, 11, 2, 10, 14, 3).unwrap()
    );
}
