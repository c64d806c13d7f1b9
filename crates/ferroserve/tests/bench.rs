//! `ferroserve bench` end to end: the real binary serves the bundled models on ports
//! chosen by the OS, and the real binary measures it over every protocol, in a closed
//! and an open loop, and in-process. Checks are on what the JSON report says (requests
//! made, no errors, ordered percentiles) and on clear failures, never on speed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

const MODEL: &str = "efficientnet-lite0";
const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_ferroserve")
}

fn images() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/images")
}

/// `ferroserve serve` on 127.0.0.1 with OS-chosen ports; killed when dropped.
struct Server {
    child: Child,
    http: String,
    grpc: String,
}

impl Server {
    /// Starts the server and waits for its ready line, which gives the bound ports.
    fn start() -> Server {
        let mut child = Command::new(binary())
            .args(["serve", "--host", "127.0.0.1"])
            .args([
                "--http-port",
                "0",
                "--grpc-port",
                "0",
                "--metrics-port",
                "0",
            ])
            .args(["--intra-op-threads", "1", "--preprocess-threads", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ferroserve serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        let ready = loop {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("ferroserve ready:") => break line,
                Some(Ok(line)) => seen += &(line + "\n"),
                _ => {
                    let _ = child.kill();
                    panic!("the server stopped before it was ready:\n{seen}");
                }
            }
        };
        // Keep reading, so that the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let address = |after: &str| {
            let rest =
                &ready[ready.find(after).expect("the ready line names the port") + after.len()..];
            let end = rest.find([',', ';']).unwrap_or(rest.len());
            format!("http://{}", &rest[..end])
        };
        Server {
            http: address("HTTP "),
            grpc: address("gRPC "),
            child,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bench(args: &[&str]) -> Output {
    Command::new(binary())
        .arg("bench")
        .args(args)
        .arg("--quiet")
        .stdin(Stdio::null())
        .output()
        .expect("ferroserve bench runs")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs bench with `args` and a short sweep, expects success, returns the JSON report.
fn bench_json(args: &[&str], dir: &Path, name: &str) -> Value {
    let json = dir.join(format!("{name}.json"));
    let mut all = vec![
        "--warmup",
        "0.5s",
        "--duration",
        "1s",
        "--json",
        json.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let output = bench(&all);
    assert!(output.status.success(), "{name}: {}", text(&output));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("p99 ms"), "{name}: no table\n{stdout}");
    report
}

/// Every run made requests, none failed, and its percentiles are in order.
fn assert_clean_runs(report: &Value, load_key: &str, loads: &[f64]) {
    let runs = report["runs"].as_array().expect("runs");
    let got: Vec<f64> = runs.iter().map(|r| r[load_key].as_f64().unwrap()).collect();
    assert_eq!(got, loads, "{report:#}");
    for run in runs {
        assert!(run["requests"].as_u64().unwrap() > 0, "{run:#}");
        assert_eq!(run["errors"], serde_json::json!({}), "{run:#}");
        assert!(run["throughput"].as_f64().unwrap() > 0.0, "{run:#}");
        let ms = |key: &str| {
            run[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{key} in {run:#}"))
        };
        assert!(ms("p50_ms") > 0.0, "{run:#}");
        assert!(ms("p50_ms") <= ms("p90_ms"), "{run:#}");
        assert!(ms("p90_ms") <= ms("p99_ms"), "{run:#}");
        assert!(ms("p99_ms") <= ms("p999_ms"), "{run:#}");
        assert!(ms("p999_ms") <= ms("max_ms"), "{run:#}");
        assert!(ms("mean_ms") <= ms("max_ms"), "{run:#}");
    }
}

fn assert_fails_with(output: &Output, expected: &str) {
    assert!(!output.status.success(), "{}", text(output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(expected),
        "expected '{expected}' in {}",
        text(output)
    );
}

/// One server for every remote check, so that the models load once.
#[test]
fn bench_measures_a_server_over_every_protocol() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cat_tensor = images().join("cat.input.f32");
    let cat_jpg = images().join("cat.jpg");
    let (tensor, jpg) = (cat_tensor.to_str().unwrap(), cat_jpg.to_str().unwrap());
    let at = ["--url", &server.http, "--grpc-url", &server.grpc];
    let closed = ["--concurrency", "1,2"];

    for (name, extra) in [
        ("http", vec!["--protocol", "http", "--input", tensor]),
        (
            "http-json",
            vec!["--protocol", "http-json", "--input", tensor],
        ),
        ("grpc", vec!["--protocol", "grpc"]),
        ("image", vec!["--protocol", "image", "--image", jpg]),
    ] {
        let mut args: Vec<&str> = vec!["--model", MODEL];
        args.extend(at);
        args.extend(closed);
        args.extend(extra);
        let report = bench_json(&args, dir.path(), name);
        assert_eq!(report["protocol"], name);
        assert_eq!(report["model"], MODEL);
        assert_clean_runs(&report, "concurrency", &[1.0, 2.0]);
    }

    // A model whose input is an encoded image (BYTES), over gRPC, two rows a request.
    let mut args: Vec<&str> = vec!["--model", "efficientnet-lite0-image", "--protocol", "grpc"];
    args.extend(at);
    args.extend(["--image", jpg, "--batch", "2", "--concurrency", "1"]);
    let report = bench_json(&args, dir.path(), "bytes");
    assert_eq!(report["batch"], 2);
    assert_clean_runs(&report, "concurrency", &[1.0]);

    // Open loop with charts: a constant 20 requests/s schedules 20 requests in 1 s.
    let charts = dir.path().join("charts");
    let mut args: Vec<&str> = vec!["--model", MODEL, "--rate", "20"];
    args.extend(at);
    args.extend(["--chart", charts.to_str().unwrap()]);
    let report = bench_json(&args, dir.path(), "open");
    assert_eq!(report["loop"], "open");
    assert_clean_runs(&report, "rate", &[20.0]);
    let requests = report["runs"][0]["requests"].as_u64().unwrap();
    assert!((19..=21).contains(&requests), "{report:#}");
    for chart in ["throughput.png", "latency.png", "latency-distribution.png"] {
        let bytes = std::fs::read(charts.join(chart)).unwrap();
        assert!(bytes.len() > 1000, "{chart} is {} bytes", bytes.len());
        assert_eq!(bytes[..8], PNG_SIGNATURE, "{chart}");
    }

    // Failures say what was wrong.
    let mut args: Vec<&str> = vec!["--model", "no-such-model"];
    args.extend(at);
    assert_fails_with(&bench(&args), "has no model 'no-such-model'");
    let mut args: Vec<&str> = vec!["--model", "no-such-model", "--protocol", "grpc"];
    args.extend(at);
    assert_fails_with(&bench(&args), "has no model 'no-such-model'");
    let short = dir.path().join("short.f32");
    std::fs::write(&short, [0u8; 100]).unwrap();
    let mut args: Vec<&str> = vec!["--model", MODEL, "--input", short.to_str().unwrap()];
    args.extend(at);
    assert_fails_with(&bench(&args), "holds 100 bytes");
}

#[test]
fn bench_says_when_no_server_answers() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    assert_fails_with(&bench(&["--url", &url]), "cannot reach the server");
    assert_fails_with(
        &bench(&["--grpc-url", &url, "--protocol", "grpc"]),
        "cannot reach the gRPC server",
    );
}

#[test]
fn bench_in_process_measures_the_engine_alone() {
    let dir = tempfile::tempdir().unwrap();
    let report = bench_json(
        &["--in-process", "--model", MODEL, "--concurrency", "1"],
        dir.path(),
        "in-process",
    );
    assert_eq!(report["target"], "in-process");
    assert_clean_runs(&report, "concurrency", &[1.0]);
    let arrangements = report["arrangements"].as_array().unwrap();
    assert!(!arrangements.is_empty(), "{report:#}");
    let best = report["runs"][0]["arrangement"].as_str().unwrap();
    assert!(
        arrangements.iter().any(|a| a["arrangement"] == best),
        "{report:#}"
    );
}

/// Both engines with libraries, every arrangement `--tune` chooses among (on 2 cores `2x1`
/// and `1x2`), and the engine and precision in the report.
#[test]
fn bench_in_process_covers_every_engine_and_arrangement() {
    let dir = tempfile::tempdir().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for engine in ["onnxruntime", "openvino"] {
        let report = bench_json(
            &[
                "--in-process",
                "--model",
                MODEL,
                "--concurrency",
                "2",
                "--engine",
                engine,
                "--precision",
                "f32",
            ],
            dir.path(),
            engine,
        );
        assert_eq!(report["engine"], engine);
        assert_eq!(report["precision"], "f32");
        assert_clean_runs(&report, "concurrency", &[2.0]);
        let measured: Vec<&str> = report["arrangements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["arrangement"].as_str().unwrap())
            .collect();
        let mut expected = vec![format!("{cores}x1")];
        if cores > 1 {
            expected.push(format!("1x{cores}"));
        }
        assert!(
            expected.iter().all(|e| measured.contains(&e.as_str())),
            "{engine}: {measured:?}"
        );
    }
}

#[test]
fn bench_in_process_refuses_an_unknown_model() {
    let output = bench(&["--in-process", "--model", "no-such-model"]);
    assert_fails_with(&output, "no model 'no-such-model'");
}
