//! The browser page, its assets, the OpenAPI document (checked against the routes the
//! router declares, so that it stays whole) and the live view.

use std::collections::BTreeSet;

use super::*;

/// `(method, path)` of every route that `fn_name`'s body in `source` declares with
/// `.route("...", get(...))` or `model_route(routes, "suffix", post(...))`, paths as
/// OpenAPI writes them.
fn declared_routes(source: &str, fn_name: &str) -> BTreeSet<(String, String)> {
    let start = source
        .find(&format!("fn {fn_name}("))
        .unwrap_or_else(|| panic!("no fn {fn_name}"));
    let body = &source[start..];
    let body = &body[..body.find("\n}\n").expect("the function ends")];
    let mut routes = BTreeSet::new();
    for (marker, model_route) in [(".route(", false), ("model_route(routes,", true)] {
        for (at, _) in body.match_indices(marker) {
            let rest = body[at + marker.len()..].trim_start();
            let formatted = rest.starts_with("&format!(\"");
            let rest = rest.trim_start_matches("&format!(");
            let Some(rest) = rest.strip_prefix('"') else {
                continue;
            };
            let (path, rest) = rest.split_once('"').unwrap();
            if formatted && path.contains("{suffix}") {
                continue; // model_route's own routes, counted by its callers
            }
            let path = path.replace("{{", "{").replace("}}", "}");
            let path = path.as_str();
            let rest = rest.trim_start().trim_start_matches(')').trim_start();
            let rest = rest.strip_prefix(',').unwrap().trim_start();
            let method = &rest[..rest.find('(').unwrap()];
            let paths = if model_route {
                vec![
                    format!("/v2/models/{{model}}{path}"),
                    format!("/v2/models/{{model}}/versions/{{version}}{path}"),
                ]
            } else {
                vec![path.to_string()]
            };
            for path in paths {
                routes.insert((method.to_string(), path));
            }
        }
    }
    routes
}

/// Every route of the HTTP router, read from its source.
fn router_routes() -> BTreeSet<(String, String)> {
    let http = support::repo_root().join("crates/ferroserve-server/src/http");
    let read = |file: &str| std::fs::read_to_string(http.join(file)).unwrap();
    let mut routes = declared_routes(&read("mod.rs"), "router");
    routes.extend(declared_routes(&read("ui.rs"), "routes"));
    for (method, path) in declared_routes(&read("mod.rs"), "shared_memory_routes") {
        for kind in ["systemsharedmemory", "cudasharedmemory"] {
            routes.insert((method.clone(), path.replace("{kind}", kind)));
        }
    }
    routes
}

async fn openapi() -> Value {
    let response = reqwest::get(url("/v2/openapi.json")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_of_the_router() {
    let routes = router_routes();
    assert!(routes.len() > 20, "{routes:?}");
    let document = openapi().await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let missing: Vec<_> = routes.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes not in the document: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(
        extra.is_empty(),
        "documented routes the router lacks: {extra:?}"
    );
}

#[tokio::test]
async fn every_route_read_from_the_source_is_served() {
    let client = Client::new();
    for (method, path) in router_routes() {
        let path = path
            .replace("{model}", MODEL)
            .replace("{version}", "1")
            .replace("{file}", "page.js")
            .replace("{name}", "cat.jpg")
            .replace("{region}", "r0");
        let request = match method.as_str() {
            "get" => client.get(url(&path)),
            "post" => client.post(url(&path)),
            other => panic!("{other} {path}"),
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(!body.contains("no route for"), "{method} {path}: {body}");
    }
}

/// GETs `path` and checks its status, type and `nosniff`; returns the response.
async fn get_embedded(path: &str, content_type: &str) -> reqwest::Response {
    let response = reqwest::get(url(path)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let headers = response.headers();
    assert_eq!(headers["content-type"], content_type, "{path}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    response
}

/// The `src` and `href` of `html` that name a path of this server.
fn local_references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attribute) {
            let rest = &html[at + attribute.len()..];
            let value = &rest[..rest.find('"').unwrap()];
            if value.starts_with('/') {
                found.push(value.to_string());
            }
        }
    }
    found
}

/// Checks a page: HTML, a policy that allows only this origin and no inline script,
/// every `<script>` from a file, and every file it names served.
async fn check_document(path: &str) -> String {
    let response = get_embedded(path, "text/html; charset=utf-8").await;
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(policy.starts_with("default-src 'self';"), "{policy}");
    assert!(!policy.contains("script-src"), "{policy}");
    let html = response.text().await.unwrap();
    for (at, _) in html.match_indices("<script") {
        assert!(
            html[at..].starts_with("<script src=\"/"),
            "{path}: inline script"
        );
    }
    for reference in local_references(&html) {
        let response = reqwest::get(url(&reference)).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{path} names {reference}"
        );
        let expected = match reference.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("json") => "application/json",
            Some("svg") => "image/svg+xml",
            _ => "text/html; charset=utf-8",
        };
        assert_eq!(response.headers()["content-type"], expected, "{reference}");
    }
    html
}

#[tokio::test]
async fn the_page_is_served_from_the_binary() {
    let html = check_document("/").await;
    assert!(
        html.contains("/ui/page.js") && html.contains("/v2/docs"),
        "{html}"
    );
    let script = get_embedded("/ui/page.js", "text/javascript; charset=utf-8")
        .await
        .text()
        .await
        .unwrap();
    for route in ["/classify", "/v2/ui/live", "/ui/samples/", "Authorization"] {
        assert!(script.contains(route), "the page's script lacks {route}");
    }
    // Read-only: the page never calls the repository extension.
    assert!(!script.contains("/v2/repository"));
    get_embedded("/ui/page.css", "text/css; charset=utf-8").await;
}

#[tokio::test]
async fn the_docs_page_renders_the_document_with_the_vendored_redoc() {
    let html = check_document("/v2/docs").await;
    assert!(html.contains("/ui/redoc.standalone.js"), "{html}");
    let script = get_embedded("/ui/docs.js", "text/javascript; charset=utf-8")
        .await
        .text()
        .await
        .unwrap();
    assert!(script.contains("\"/v2/openapi.json\""), "{script}");
    let redoc = get_embedded("/ui/redoc.standalone.js", "text/javascript; charset=utf-8")
        .await
        .bytes()
        .await
        .unwrap();
    assert!(redoc.len() > 500_000, "{}", redoc.len());
    // Offline: the vendored bundle fetches nothing (see assets/vendor/redoc/README.md).
    let redoc = String::from_utf8_lossy(&redoc);
    assert!(
        !redoc.contains("https://cdn."),
        "the docs page would fetch from a CDN"
    );
}

#[tokio::test]
async fn sample_photos_are_served_and_unknown_files_are_404() {
    for sample in ["cat.jpg", "coffee.jpg", "motorcycle.jpg"] {
        let path = format!("/ui/samples/{sample}");
        let photo = get_embedded(&path, "image/jpeg")
            .await
            .bytes()
            .await
            .unwrap();
        let on_disk = std::fs::read(support::repo_root().join("tests/data/images").join(sample));
        assert_eq!(photo.as_ref(), on_disk.unwrap().as_slice(), "{sample}");
    }
    for path in [
        "/ui/samples/astronaut.png",
        "/ui/nothing.js",
        "/ui/..%2Fmod.rs",
    ] {
        let response = reqwest::get(url(path)).await.unwrap();
        assert_error(response, StatusCode::NOT_FOUND, "no file").await;
    }
}

#[tokio::test]
async fn the_live_view_reports_requests_latency_queue_cache_and_scheduling() {
    let client = Client::new();
    let image_model = "efficientnet-lite0-image";
    let cat = std::fs::read(support::repo_root().join("tests/data/images/cat.jpg")).unwrap();
    let response = client
        .post(url(&format!("/v2/models/{image_model}/classify?top_k=1")))
        .body(cat)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = client.get(url("/v2/ui/live")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let live: Value = response.json().await.unwrap();
    assert_eq!(live["ready"], true, "{live}");
    let models = live["models"].as_array().unwrap();
    let model = models
        .iter()
        .find(|m| m["name"] == image_model)
        .unwrap_or_else(|| panic!("{live}"));
    assert_eq!(model["version"], "1");
    assert_eq!(model["classifies"], true);
    assert!(model["success"].as_u64().unwrap() >= 1, "{model}");
    assert!(
        model["fail"].is_u64() && model["queue_depth"].is_u64(),
        "{model}"
    );
    for window in ["last_minute", "last_5_minutes"] {
        let window = &model[window];
        assert!(window["requests"].as_u64().unwrap() >= 1, "{window}");
        assert!(window["throughput"].as_f64().unwrap() > 0.0, "{window}");
        let (p50, p99) = (&window["p50_ms"], &window["p99_ms"]);
        assert!(p50.as_f64().unwrap() > 0.0, "{window}");
        assert!(p99.as_f64().unwrap() >= p50.as_f64().unwrap(), "{window}");
    }
    let cache = &model["cache"];
    assert!(
        cache["enabled"].is_boolean() && cache["hits"].is_u64(),
        "{cache}"
    );
    assert!(cache["hit_ratio"].is_null() || cache["hit_ratio"].is_f64());
    let scheduling = &model["scheduling"];
    assert_eq!(scheduling["tuned"], false);
    assert!(
        scheduling["instances"].as_u64().unwrap() >= 1,
        "{scheduling}"
    );
    assert!(
        scheduling["max_batch"].as_u64().unwrap() >= 1,
        "{scheduling}"
    );
    let repository = live["repository"].as_array().unwrap();
    for name in [MODEL, image_model] {
        let entry = repository.iter().find(|e| e["name"] == name).unwrap();
        assert_eq!(entry["state"], "READY", "{entry}");
    }
}
