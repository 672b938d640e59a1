//! The hostile-input probe: every operation of `/openapi.json`, as a user and as an admin, with
//! a bounded set of bad inputs (malformed JSON, NUL bytes, huge and negative numbers, dates far
//! outside the calendar, wrong types, unknown and bad query parameters, bad path ids). A 5xx or
//! a dropped connection is a bug; the test lists every one it finds.

mod common;

use common::Api;
use fitkart_sync_server::testing::TestServer;
use reqwest::Method;
use serde_json::{Map, Value, json};

/// A probe: its description and, when it has one, a body (content type, bytes).
type Case = (String, Option<(String, Vec<u8>)>);

/// The kinds of bad value written into every field of a request body.
#[derive(Clone, Copy, Debug)]
enum Bad {
    Nul,
    Huge,
    Negative,
    FarDate,
    WrongType,
    LongText,
}

const ALL_BAD: [Bad; 6] = [
    Bad::Nul,
    Bad::Huge,
    Bad::Negative,
    Bad::FarDate,
    Bad::WrongType,
    Bad::LongText,
];

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap_or_default();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// A value of `schema`'s shape with `bad` in every leaf.
fn bad_value(doc: &Value, schema: &Value, bad: Bad, depth: usize) -> Value {
    let schema = resolve(doc, schema);
    if depth > 4 {
        return Value::Null;
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(first) = schema[combinator].as_array().and_then(|options| {
            options
                .iter()
                .find(|o| o.get("type").and_then(Value::as_str) != Some("null"))
        }) {
            return bad_value(doc, first, bad, depth + 1);
        }
    }
    let kind = match &schema["type"] {
        Value::String(kind) => kind.clone(),
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("string")
            .to_owned(),
        _ if schema.get("properties").is_some() => "object".into(),
        _ => "string".into(),
    };
    let format = schema["format"].as_str().unwrap_or_default();
    match (kind.as_str(), bad) {
        ("object", _) => {
            let mut object = Map::new();
            if let Some(properties) = schema["properties"].as_object() {
                for (name, property) in properties {
                    object.insert(name.clone(), bad_value(doc, property, bad, depth + 1));
                }
            }
            if matches!(bad, Bad::Nul) {
                object.insert("unknown\u{0}field".into(), json!(1));
            }
            Value::Object(object)
        }
        ("array", _) => json!([bad_value(doc, &schema["items"], bad, depth + 1)]),
        ("integer" | "number", Bad::Huge) => json!(i64::MAX),
        ("integer" | "number", Bad::Negative) => json!(i64::MIN),
        ("integer" | "number", Bad::FarDate) => json!(1e300),
        ("integer" | "number", Bad::WrongType) => json!("12"),
        ("integer" | "number", _) => json!(-1),
        ("boolean", Bad::WrongType) => json!("true"),
        ("boolean", _) => json!(true),
        (_, Bad::FarDate) if format == "date" => json!("-262143-01-15"),
        (_, Bad::FarDate) if format == "date-time" => json!("+262142-12-31T23:59:59Z"),
        (_, Bad::Huge) if format == "date" => json!("262142-12-31"),
        (_, Bad::Negative) if format == "date-time" => json!("-200000-01-01T00:00:00Z"),
        (_, Bad::Nul) => json!("a\u{0}b"),
        (_, Bad::LongText) => json!(" ".repeat(300_000) + "x"),
        (_, Bad::WrongType) => json!({"nested": [1]}),
        (_, Bad::Huge) => json!("9".repeat(400)),
        (_, Bad::Negative) => json!("-1"),
        _ => json!("x"),
    }
}

/// Bad values for a query parameter.
fn bad_query_values(schema: &Value) -> Vec<&'static str> {
    let mut values = vec![
        "%00",
        "a%00b",
        "99999999999999999999",
        "-9223372036854775808",
        "-1",
        "0",
        "x",
    ];
    match schema["format"].as_str() {
        Some("date") => values.extend(["-262143-01-15", "262142-12-31", "2026-02-30"]),
        Some("date-time") => values.extend(["-200000-01-01T00:00:00Z", "+262142-12-31T23:59:59Z"]),
        _ => {}
    }
    values
}

struct Finding {
    what: String,
}

#[tokio::test]
async fn no_route_answers_bad_input_with_a_5xx_or_a_dropped_connection() {
    let server = TestServer::start().await.unwrap();
    let api = Api::new(&server);
    let user = api.register("probe@example.com").await;
    let admin = api.admin(&server).await;
    let doc: Value = reqwest::get(server.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if let Some(operation) = item.get(method) {
                operations.push((path.clone(), method.to_owned(), operation.clone()));
            }
        }
    }
    // Deleting the account last keeps the tokens alive for the rest of the probe.
    operations.sort_by_key(|(path, method, _)| (method == "delete", path.clone()));

    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(40))
        .build()
        .unwrap();
    let mut findings = Vec::new();
    let mut sent = 0_usize;
    for (path, method, operation) in &operations {
        let method: Method = method.to_uppercase().parse().unwrap();
        let mut paths = vec![path.replace(['{', '}'], "")];
        if path.contains('{') {
            let mut concrete = path.clone();
            let mut with_nul = path.clone();
            let mut with_uuid = path.clone();
            while let (Some(start), Some(end)) = (concrete.find('{'), concrete.find('}')) {
                concrete.replace_range(start..=end, "not-an-id");
            }
            while let (Some(start), Some(end)) = (with_nul.find('{'), with_nul.find('}')) {
                with_nul.replace_range(start..=end, "a%00b");
            }
            while let (Some(start), Some(end)) = (with_uuid.find('{'), with_uuid.find('}')) {
                with_uuid.replace_range(start..=end, &uuid::Uuid::new_v4().to_string());
            }
            paths = vec![with_uuid, concrete, with_nul];
        }
        let mut bodies: Vec<Option<(String, Vec<u8>)>> = vec![None];
        if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
            let json_type = "application/json".to_owned();
            bodies.push(Some((json_type.clone(), b"{".to_vec())));
            bodies.push(Some((json_type.clone(), b"[]".to_vec())));
            bodies.push(Some((json_type.clone(), b"\"\\u0000\"".to_vec())));
            bodies.push(Some(("text/plain".into(), b"hello".to_vec())));
            let schema = operation["requestBody"]["content"]["application/json"]["schema"].clone();
            for bad in ALL_BAD {
                let value = bad_value(&doc, &schema, bad, 0);
                bodies.push(Some((
                    json_type.clone(),
                    serde_json::to_vec(&value).unwrap(),
                )));
            }
        }
        let mut queries = vec![String::new(), "bogus=1".to_owned()];
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            if parameter["in"] == "query" {
                let name = parameter["name"].as_str().unwrap();
                for value in bad_query_values(&parameter["schema"]) {
                    queries.push(format!("{name}={value}"));
                }
                queries.push(format!("{name}=1&{name}=2"));
            }
        }
        for token in [&user.access_token, &admin.access_token] {
            for concrete in &paths {
                let mut cases: Vec<Case> = Vec::new();
                for body in &bodies {
                    cases.push((String::new(), body.clone()));
                }
                for query in &queries {
                    cases.push((query.clone(), bodies.last().cloned().flatten()));
                }
                for (query, body) in cases {
                    let url = if query.is_empty() {
                        server.url(concrete)
                    } else {
                        server.url(&format!("{concrete}?{query}"))
                    };
                    let mut request = http
                        .request(method.clone(), &url)
                        .bearer_auth(token)
                        .header("x-fitkart-protocol-version", "1");
                    if let Some((content_type, bytes)) = &body {
                        request = request
                            .header("content-type", content_type)
                            .body(bytes.clone());
                    }
                    sent += 1;
                    let what = || {
                        format!(
                            "{method} {url} body {}",
                            body.as_ref()
                                .map(|(_, b)| String::from_utf8_lossy(&b[..b.len().min(160)])
                                    .into_owned())
                                .unwrap_or_default()
                        )
                    };
                    match request.send().await {
                        Ok(response) if response.status().is_server_error() => {
                            let status = response.status();
                            let text = response.text().await.unwrap_or_default();
                            findings.push(Finding {
                                what: format!("{status}: {} -> {text}", what()),
                            });
                        }
                        Ok(_) => {}
                        Err(err) => findings.push(Finding {
                            what: format!("dropped connection ({err}): {}", what()),
                        }),
                    }
                }
            }
        }
    }
    eprintln!(
        "probe: {} operations, {sent} requests, {} findings",
        operations.len(),
        findings.len()
    );
    for finding in &findings {
        eprintln!("  {}", finding.what);
    }
    assert!(sent > 1000, "the probe sent only {sent} requests");
    assert!(
        findings.is_empty(),
        "{} findings (listed above)",
        findings.len()
    );
}
