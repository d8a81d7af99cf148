//! Hostile uploads: rows and headers too big to hold, reports that would grow with the input,
//! and problems that must name files as the sender knows them.

use crate::common;

use std::io::Write;

use crate::common::OPERATOR_TOKEN;
use serde_json::Value;

const USERS_HEADER: &str =
    "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,givenName,familyName";

/// Zips `files` (name, bytes) with the given method.
fn zip_of(files: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, contents) in files {
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        writer.start_file(*name, options).unwrap();
        writer.write_all(contents).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

async fn upload(app: &common::TestApp, body: Vec<u8>) -> (u16, Value) {
    app.post_bytes(
        "/api/v1/districts/lincoln/imports/oneroster",
        OPERATOR_TOKEN,
        body,
    )
    .await
}

async fn users_listed(app: &common::TestApp) -> Value {
    let (status, body) = app
        .get("/api/v1/districts/lincoln/users?limit=1000", OPERATOR_TOKEN)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

on_every_backend!(
    rows_and_headers_too_big_to_hold_are_refused_naming_file_line_and_field,
    |app| {
        app.create_district("lincoln").await;
        let (status, body) = app
            .import("lincoln", OPERATOR_TOKEN, &common::school())
            .await;
        assert_eq!(status, 200, "{body}");
        let before = users_listed(&app).await;
        // Each limit's default is 1 MiB of row, 512 columns: the hostile parts go just past them.
        let unclosed = format!(
            "{USERS_HEADER}\nu1,,,true,sch-1,student,un,A,B\nu2,,,true,sch-1,student,un,\"Ann{}",
            "\n".repeat((1 << 20) + 10)
        );
        let wide_header = format!("{USERS_HEADER}{}\n", ",".repeat(100_000));
        let wide_row = format!(
            "{USERS_HEADER}\nu1,,,true,sch-1,student,un,A,B\n\nu2,,,true,sch-1,student,un,A,B{}\n",
            ",".repeat(600)
        );
        // (users.csv, line, field, message part)
        let table = [
            (unclosed, 3, Some("givenName"), "longer than 1048576 bytes"),
            (wide_header, 1, Some("column 513"), "more than 512 fields"),
            (wide_row, 4, Some("column 513"), "more than 512 fields"),
        ];
        for (users, line, field, message) in table {
            let bundle = common::school().with("users.csv", &users);
            let (status, body) = app.import("lincoln", OPERATOR_TOKEN, &bundle).await;
            assert_eq!(status, 422, "{body}");
            let details = body["error"]["details"].as_array().unwrap();
            assert!(
                details.iter().any(|d| d["file"] == "users.csv"
                    && d["line"] == line
                    && field.is_none_or(|f| d["field"] == f)
                    && d["message"].as_str().unwrap().contains(message)),
                "expected users.csv:{line} {field:?} ~ {message:?} in {body}"
            );
            assert_eq!(
                users_listed(&app).await,
                before,
                "a refused bundle changes nothing"
            );
        }
    }
);

on_every_backend!(a_hostile_upload_gets_a_run_report_of_bounded_size, |app| {
    app.create_district("lincoln").await;
    // 400 distinct unknown columns with long names, and 1,100 rows with long bad values.
    let unknown: String = (0..400)
        .map(|i| format!(",c{i}_{}", "x".repeat(2000)))
        .collect();
    let mut users = format!("{USERS_HEADER}{unknown}\n");
    let padding = ",".repeat(400);
    for i in 0..1100 {
        users.push_str(&format!(
            "u{i},,,maybe{},sch-1,student,un,A,B{padding}\n",
            "z".repeat(2000)
        ));
    }
    let bundle = common::school().with("users.csv", &users);
    let (status, body) = app.import("lincoln", OPERATOR_TOKEN, &bundle).await;
    assert_eq!(status, 422, "{body}");
    let (status, runs) = app
        .get("/api/v1/districts/lincoln/runs", OPERATOR_TOKEN)
        .await;
    assert_eq!(status, 200, "{runs}");
    let run = runs["runs"][0]["run_id"].as_str().unwrap();
    let response = app
        .client
        .get(app.url(&format!("/api/v1/districts/lincoln/runs/{run}")))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    // 1,000 errors and 100 warnings, each a few hundred bytes at most.
    assert!(
        text.len() < 400_000,
        "the report is {} bytes: {}…",
        text.len(),
        &text[..2000]
    );
    let report: Value = serde_json::from_str(&text).unwrap();
    let errors = report["errors"].as_array().unwrap();
    assert!(errors.len() <= 1001, "the cap and a line counting the rest");
    assert!(
        errors[0]["message"].as_str().unwrap().ends_with(&format!(
            "\"maybe{}\"… is not a boolean (true or false)",
            "z".repeat(34)
        )),
        "{}",
        errors[0]
    );
    let warnings = report["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 101, "the cap and a line counting the rest");
    let unknown = |w: &&Value| w["message"] == "unknown column: kept as an extension field";
    let listed = warnings.iter().filter(unknown).count() as u64;
    assert!(warnings
        .iter()
        .filter(unknown)
        .all(|w| w["field"].as_str().unwrap().ends_with('…')));
    let rest = &warnings[100];
    assert!(
        rest["message"]
            .as_str()
            .unwrap()
            .ends_with("more warnings not listed (a report lists 100 distinct ones)"),
        "{rest}"
    );
    assert_eq!(
        listed + rest["occurrences"].as_u64().unwrap(),
        400,
        "{rest}"
    );
});

on_every_backend!(problems_name_the_upload_never_a_path_on_the_server, |app| {
    app.create_district("lincoln").await;
    let school = common::school();
    let files: Vec<(&str, &[u8])> = school
        .files
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_bytes()))
        .collect();
    let in_folder = |folder: &str| -> Vec<u8> {
        let named: Vec<(String, &[u8])> = files
            .iter()
            .map(|(n, c)| (format!("{folder}/{n}"), *c))
            .collect();
        let named: Vec<(&str, &[u8])> = named.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        zip_of(&named, zip::CompressionMethod::Deflated)
    };
    // A stored (uncompressed) zip whose users.csv no longer matches its checksum.
    let mut corrupt = zip_of(&files, zip::CompressionMethod::Stored);
    let at = corrupt
        .windows(10)
        .position(|w| w == b"Tina,Teach")
        .expect("the stored zip holds users.csv as is");
    corrupt[at] = b'D';
    let nested = zip_of(
        &[("bundle.zip", &school.zip())],
        zip::CompressionMethod::Deflated,
    );
    // (body, status, file named by a problem, message part)
    // The folder case first: it is the one that showed a server path.
    let table: [(Vec<u8>, u16, &str, &str); 5] = [
        (
            in_folder("export"),
            200,
            "upload.zip",
            "from the folder export/",
        ),
        (
            b"not a zip at all".to_vec(),
            422,
            "upload.zip",
            "not a readable zip",
        ),
        (corrupt, 422, "users.csv", "checksum"),
        (nested, 422, "manifest.csv", "no manifest.csv"),
        (in_folder("a/b"), 422, "upload.zip", "nested in a/b/"),
    ];
    let server_path = app.data_dir.path().display().to_string();
    for (body, status, file, message) in table {
        let (got, answer) = upload(&app, body).await;
        assert_eq!(got, status, "{answer}");
        let problems = if status == 200 {
            &answer["warnings"]
        } else {
            &answer["error"]["details"]
        };
        assert!(
            problems
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["file"] == file && p["message"].as_str().unwrap().contains(message)),
            "expected {file} ~ {message:?} in {answer}"
        );
        let (_, runs) = app
            .get("/api/v1/districts/lincoln/runs", OPERATOR_TOKEN)
            .await;
        let run = runs["runs"][0]["run_id"].as_str().unwrap();
        let (_, report) = app
            .get(
                &format!("/api/v1/districts/lincoln/runs/{run}"),
                OPERATOR_TOKEN,
            )
            .await;
        for text in [answer.to_string(), report.to_string()] {
            assert!(
                !text.contains(&server_path) && !text.contains("uploads/"),
                "a server path in {text}"
            );
        }
    }
});
