//! Holding under fire: restricted APIs, browser pages of other origins, the connection
//! cap (room made by closing idle connections, then a health headroom), slow clients,
//! and 429 before a body is read.

use std::time::Duration;

use ferroserve_server::access::AccessRules;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// A server on one bundled model with `change` applied to its configuration.
fn server_with(change: impl FnOnce(&mut ferroserve_server::ServeConfig)) -> TestServer {
    let mut config = support::config(support::bundled_models(), ModelControlMode::None);
    config.runtime.control_mode = ModelControlMode::Explicit;
    config.runtime.startup_models = vec![MODEL.into()];
    change(&mut config);
    TestServer::start(config)
}

/// Reads what the server sends until it closes the connection; panics if it does not
/// within a minute (the timeouts under test are a second or two).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .unwrap_or_default();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn restricted_apis_need_their_key_and_health_stays_open() {
    let server = server_with(|config| {
        config.access = AccessRules::new(
            vec![
                "inference,model-config:x-api-key=infer-key"
                    .parse()
                    .unwrap(),
                "model-repository,statistics:admin-key=admin-key"
                    .parse()
                    .unwrap(),
            ],
            vec![],
        )
        .unwrap();
    });
    let client = Client::new();
    let infer = server.url(&format!("/v2/models/{MODEL}/infer"));
    let (body, length) = binary_body(&image_batch_header(1), &[&reference_input("cat.jpg")]);
    let send = |key: Option<(&'static str, &'static str)>| {
        let mut request = client
            .post(&infer)
            .header(HEADER_LENGTH, length)
            .body(body.clone());
        if let Some((name, value)) = key {
            request = request.header(name, value);
        }
        request.send()
    };
    assert_error(
        send(None).await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "expecting header 'x-api-key'",
    )
    .await;
    assert_error(
        send(Some(("x-api-key", "admin-key"))).await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "restricted",
    )
    .await;
    for key in [
        ("x-api-key", "infer-key"),
        ("authorization", "Bearer infer-key"),
    ] {
        let (status, json, binary) = split_response(send(Some(key)).await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{key:?}: {json}");
        assert_matches_reference("cat.jpg", &f32s(&binary));
    }
    // Each group its own key; health and metadata open.
    for (path, status) in [
        ("/v2/health/live", StatusCode::OK),
        ("/v2/health/ready", StatusCode::OK),
        (&format!("/v2/models/{MODEL}/ready"), StatusCode::OK),
        (&format!("/v2/models/{MODEL}"), StatusCode::OK),
        (
            &format!("/v2/models/{MODEL}/config"),
            StatusCode::UNAUTHORIZED,
        ),
        ("/v2/models/stats", StatusCode::UNAUTHORIZED),
    ] {
        let response = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
    }
    let stats = client
        .get(server.url("/v2/models/stats"))
        .header("admin-key", "admin-key")
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status(), StatusCode::OK);
    let unload = client
        .post(server.url(&format!("/v2/repository/models/{MODEL}/unload")))
        .header("x-api-key", "infer-key")
        .send()
        .await
        .unwrap();
    assert_error(unload, StatusCode::UNAUTHORIZED, "admin-key").await;
    assert!(server.runtime().model_ready(MODEL, None), "nothing changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_of_another_origin_cannot_unload_a_model() {
    let server = server_with(|_| {});
    let client = Client::new();
    let unload = server.url(&format!("/v2/repository/models/{MODEL}/unload"));
    // What a form or fetch(..., {mode: "no-cors"}) on another site sends: no preflight.
    let response = client
        .post(&unload)
        .header("Origin", "http://attacker.example")
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "--cors-allow-origin").await;
    assert!(server.runtime().model_ready(MODEL, None), "nothing changed");
    // Inference from a page is not a state change; clients that are not browsers send
    // no Origin and may unload.
    let response = client.post(&unload).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!server.runtime().model_ready(MODEL, None));
}

/// A server whose HTTP port serves two connections, with one more for health checks.
fn server_with_two_connections() -> (TestServer, String) {
    let server = server_with(|config| {
        config.connections.max_connections = 2;
        config.connections.health_headroom = 1;
    });
    let address = server.url("").trim_start_matches("http://").to_string();
    (server, address)
}

fn get(path: &str, address: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").into_bytes()
}

/// Sends `GET /v2` on a connection kept alive and asserts that the answer's first bytes
/// say 200.
async fn assert_served_keeping_alive(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut answer))
        .await
        .expect("an answer")
        .unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_cap_a_connection_that_never_sent_a_request_makes_room() {
    let (_server, address) = server_with_two_connections();
    // A client that was answered and keeps its connection, then a slow-loris
    // connection, take the cap.
    let mut client = TcpStream::connect(&address).await.unwrap();
    assert_served_keeping_alive(&mut client).await;
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /v2 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A new client is served in full: the slow head is closed for it, unanswered and
    // long before its header timeout, though the answered client's is older.
    let mut newcomer = TcpStream::connect(&address).await.unwrap();
    assert_served_keeping_alive(&mut newcomer).await;
    let answer = read_until_closed(&mut slow).await;
    assert!(!answer.contains("200"), "{answer}");
    // The same for a connection that never sends a byte.
    drop(newcomer);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut idle = TcpStream::connect(&address).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut newcomer = TcpStream::connect(&address).await.unwrap();
    assert_served_keeping_alive(&mut newcomer).await;
    assert_eq!(read_until_closed(&mut idle).await, "");
    // The first client kept its connection throughout.
    assert_served_keeping_alive(&mut client).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_cap_an_idle_keep_alive_connection_makes_room_last() {
    let (_server, address) = server_with_two_connections();
    // Two answered clients, both idle between requests, take the cap.
    let mut first = TcpStream::connect(&address).await.unwrap();
    assert_served_keeping_alive(&mut first).await;
    let mut second = TcpStream::connect(&address).await.unwrap();
    assert_served_keeping_alive(&mut second).await;
    // A third is served: the older of the two is closed, the other keeps serving.
    let mut third = TcpStream::connect(&address).await.unwrap();
    assert_served_keeping_alive(&mut third).await;
    assert_eq!(read_until_closed(&mut first).await, "");
    assert_served_keeping_alive(&mut second).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn when_every_connection_is_busy_only_health_is_served() {
    let (server, address) = server_with_two_connections();
    // Two requests in flight take the cap: their heads are in, their bodies are not.
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        let head = format!(
            "POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: {address}\r\nContent-Length: 1000\r\n\r\n{{"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        busy.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The headroom: health answers, anything else is 503; one request, then closed.
    let mut third = TcpStream::connect(&address).await.unwrap();
    third
        .write_all(&get("/v2/health/ready", &address))
        .await
        .unwrap();
    let answer = read_until_closed(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut third = TcpStream::connect(&address).await.unwrap();
    third.write_all(&get("/v2", &address)).await.unwrap();
    let answer = read_until_closed(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("connection limit"), "{answer}");
    // Beyond the headroom: closed at once.
    let hold = TcpStream::connect(&address).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut beyond = TcpStream::connect(&address).await.unwrap();
    let _ = beyond.write_all(&get("/v2/health/ready", &address)).await;
    assert_eq!(read_until_closed(&mut beyond).await, "");
    // The busy connections were not closed to make room: nothing came back on them.
    for stream in &mut busy {
        let read = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut [0u8])).await;
        assert!(
            read.is_err(),
            "a busy connection was answered or closed: {read:?}"
        );
    }
    // Once they end, normal service is back.
    drop(busy);
    drop(hold);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = reqwest::get(server.url("/v2")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_heads_idle_connections_and_stalled_bodies_are_cut() {
    let server = server_with(|config| {
        config.connections.header_timeout = Duration::from_secs(1);
        config.http_limits.body_timeout = Duration::from_secs(1);
    });
    let address = server.url("").trim_start_matches("http://").to_string();
    // Slow-loris: a head that never ends is closed.
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /v2 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let answer = read_until_closed(&mut slow).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    // An idle keep-alive connection is closed after its request.
    let mut idle = TcpStream::connect(&address).await.unwrap();
    idle.write_all(format!("GET /v2/health/live HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let answer = read_until_closed(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // A body that stops arriving is answered with 408.
    let mut stalled = TcpStream::connect(&address).await.unwrap();
    stalled
        .write_all(
            format!(
                "POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: {address}\r\nContent-Length: 1000\r\n\r\n{{\"inputs\""
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // A connection that never says anything is closed too.
    let mut silent = TcpStream::connect(&address).await.unwrap();
    assert_eq!(read_until_closed(&mut silent).await, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_answers_429_before_the_body_is_read() {
    let server = server_with(|_| {});
    let served = server
        .runtime()
        .loaded_models()
        .into_iter()
        .find(|s| s.model.name == MODEL)
        .unwrap();
    // Hold every place of the queue, as requests being prepared would.
    let mut held = Vec::new();
    while let Ok(place) = served.scheduler.reserve() {
        held.push(place);
    }
    let address = server.url("").trim_start_matches("http://").to_string();
    let head = |length: usize| {
        format!(
            "POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: {address}\r\nContent-Length: {length}\r\n{HEADER_LENGTH}: 200\r\n\r\n"
        )
    };
    // Declares 600 KB of body and sends none of it: answered at once.
    let mut client = TcpStream::connect(&address).await.unwrap();
    client.write_all(head(602_112).as_bytes()).await.unwrap();
    let mut answer = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(60), client.read(&mut answer))
        .await
        .expect("an answer before the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).to_lowercase();
    assert!(answer.starts_with("http/1.1 429"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(!answer.contains("connection: close"), "{answer}");
    // The body that follows is read and dropped, and the connection serves the next
    // request: the client needs no new one.
    client.write_all(&vec![0u8; 602_112]).await.unwrap();
    assert_served_keeping_alive(&mut client).await;
    // A body too large to be worth reading closes the connection after the answer.
    let mut client = TcpStream::connect(&address).await.unwrap();
    client.write_all(head(64 << 20).as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut client).await.to_lowercase();
    assert!(answer.starts_with("http/1.1 429"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    drop(held);
    assert_still_serves_at(&server).await;
}

/// A good inference on `server`.
async fn assert_still_serves_at(server: &TestServer) {
    let (body, length) = binary_body(&image_batch_header(1), &[&reference_input("cat.jpg")]);
    let response = Client::new()
        .post(server.url(&format!("/v2/models/{MODEL}/infer")))
        .header(HEADER_LENGTH, length)
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, json, binary) = split_response(response).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_matches_reference("cat.jpg", &f32s(&binary));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_header_is_refused_and_the_server_still_serves() {
    let server = server_with(|_| {});
    let address = server.url("").trim_start_matches("http://").to_string();
    let mut client = TcpStream::connect(&address).await.unwrap();
    let big = "a".repeat(100 * 1024);
    let request = format!("GET /v2 HTTP/1.1\r\nHost: {address}\r\nX-Big: {big}\r\n\r\n");
    let _ = client.write_all(request.as_bytes()).await;
    let answer = read_until_closed(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_still_serves_at(&server).await;
}
