//! The `proxy-sidecar` binary: config validation at start, health and metrics, the
//! real AWS default credential chain (ECS container credentials from a local
//! endpoint, refreshed before expiry), audit to a file, and SIGTERM drain.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::sigv4ref::{secret_for, verify_sigv4};
use common::*;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_proxy-sidecar");
const BEDROCK: &str = "bedrock-runtime.us-east-1.amazonaws.com";

fn base_cmd(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.join("no-aws-credentials"),
        )
        .env("RUST_LOG", "info")
        .kill_on_drop(true);
    c
}

#[tokio::test]
async fn invalid_configuration_stops_the_process_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = base_cmd(dir.path())
        .env(
            "PROXY_ALLOW",
            "pypi.org,*,*.com,a*.b.com,https://x.example,user@h.example,a..b.example",
        )
        .env(
            "PROXY_INJECT",
            r#"[{"host":"mcp.example.com","headers":{"Authorization":{"env":"MISSING_TOKEN"}}}]"#,
        )
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "policy.allow[1] \"*\"",
        "policy.allow[2] \"*.com\": too broad",
        "policy.allow[3] \"a*.b.com\": a wildcard must be a whole label",
        "policy.allow[4] \"https://x.example\": a scheme is not allowed",
        "policy.allow[5] \"user@h.example\": userinfo",
        "policy.allow[6] \"a..b.example\"",
        "environment variable MISSING_TOKEN is not set",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }

    // A typo in the file is an error too, not a silently ignored setting.
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[policy]\nalow = [\"x.example\"]\n").unwrap();
    let out = base_cmd(dir.path())
        .env("PROXY_CONFIG", &cfg)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `alow`"));

    // --check accepts a good configuration without listening.
    let out = base_cmd(dir.path())
        .env(
            "PROXY_ALLOW",
            "pypi.org,*.npmjs.org,bedrock-runtime.*.amazonaws.com:443",
        )
        .env("PROXY_BEDROCK_REGION", "us-east-1")
        .arg("--check")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Running {
    child: Child,
    listen: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn start(cmd: &mut Command) -> Running {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (listen, admin) = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("sidecar starts")
            .unwrap()
            .unwrap_or_else(|| panic!("sidecar exited: {}", log.lock().unwrap().join("\n")));
        log.lock().unwrap().push(line.clone());
        if line.contains("proxy-sidecar listening") {
            let j: serde_json::Value = serde_json::from_str(&line).unwrap();
            break (
                j["listen"].as_str().unwrap().parse().unwrap(),
                j["admin"].as_str().unwrap().parse().unwrap(),
            );
        }
    };
    let l = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            l.lock().unwrap().push(line);
        }
    });
    Running {
        child,
        listen,
        admin,
        log,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_signs_with_ecs_credentials_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_path = ca.write_pem(dir.path());

    // ECS container credentials endpoint: a new key on every call, each expiring in
    // two minutes (inside the proxy's refresh window).
    let calls = Arc::new(AtomicU64::new(0));
    let c2 = calls.clone();
    let creds = spawn_upstream(
        None,
        Arc::new(move |r: &Recorded| {
            assert_eq!(r.target, "/v2/credentials/test");
            let n = c2.fetch_add(1, Ordering::SeqCst) + 1;
            let exp = (time::OffsetDateTime::now_utc() + Duration::from_secs(120))
                .replace_nanosecond(0)
                .unwrap()
                .format(&Rfc3339)
                .unwrap();
            let akid = format!("AKIDECS{n}");
            let j = serde_json::json!({
                "AccessKeyId": akid,
                "SecretAccessKey": secret_for(&akid),
                "Token": format!("ecs-token-{n}"),
                "Expiration": exp,
            });
            http::Response::builder()
                .header("content-type", "application/json")
                .body(body(j.to_string()))
                .unwrap()
        }),
    )
    .await;

    let bedrock = spawn_upstream(
        Some(ca.server_config(&[BEDROCK])),
        Arc::new(|r: &Recorded| {
            let v = verify_sigv4(r);
            let j =
                serde_json::json!({"valid": v.is_ok(), "akid": v.as_ref().ok(), "error": v.err()});
            http::Response::new(body(j.to_string()))
        }),
    )
    .await;
    let slow = spawn_upstream(
        None,
        Arc::new(|_r: &Recorded| {
            std::thread::sleep(Duration::from_millis(700));
            http::Response::new(body("slow-done"))
        }),
    )
    .await;
    let audit_path = dir.path().join("audit.jsonl");
    let cfg_path = dir.path().join("sidecar.toml");
    std::fs::write(
        &cfg_path,
        format!(
            r#"
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
audit = "{audit}"
[context]
workspace_id = "ws-ecs"
conversation_id = "conv-1"
tenant_id = "tenant-9"
[proxy.tls]
webpki_roots = false
extra_ca_files = ["{ca}"]
[proxy.test_resolve_overrides]
"{BEDROCK}" = "{bedrock}"
"slow.test" = "{slow}"
[policy]
allow = [{{ host = "slow.test", allow_private = true }}]
[policy.bedrock]
enabled = true
region = "us-east-1"
allow_private = true
"#,
            audit = audit_path.display(),
            ca = ca_path.display(),
            bedrock = bedrock.addr,
            slow = slow.addr,
        ),
    )
    .unwrap();
    let mut cmd = base_cmd(dir.path());
    cmd.env("PROXY_CONFIG", &cfg_path).env(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        format!("http://{}/v2/credentials/test", creds.addr),
    );
    let mut run = start(&mut cmd).await;

    // Health on the proxy port (ECS health check) and on the admin port.
    let r = raw(
        run.listen,
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let r = raw(
        run.admin,
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    // The container health check of the ECS task definition.
    let hc = std::process::Command::new(BIN)
        .args(["healthcheck", "--addr", &run.admin.to_string()])
        .status()
        .unwrap();
    assert!(hc.success(), "healthcheck against a running sidecar");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let hc = std::process::Command::new(BIN)
        .args(["healthcheck", "--addr", &closed.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!hc.success(), "healthcheck against nothing fails");

    // Gateway requests signed with credentials from the ECS endpoint, refreshed
    // because they are within five minutes of expiry.
    let mut akids = Vec::new();
    for _ in 0..2 {
        let req = "POST /model/anthropic.claude-3-5-sonnet-20241022-v2:0/invoke HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
                   Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        let r = raw(run.listen, req.as_bytes()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let j = echo_json(&r);
        assert_eq!(j["valid"], true, "{j}");
        akids.push(j["akid"].as_str().unwrap().to_string());
    }
    assert_eq!(akids, ["AKIDECS1", "AKIDECS2"]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // The proxy refuses to reach itself or its admin port.
    let admin_target = format!(
        "GET http://{0}/metrics HTTP/1.1\r\nHost: {0}\r\nConnection: close\r\n\r\n",
        run.admin
    );
    let r = raw(run.listen, admin_target.as_bytes()).await;
    assert_eq!((r.status, r.reason()), (403, Some("address_loopback")));

    // Metrics on the admin port.
    let r = raw(
        run.admin,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let m = r.text();
    assert!(m.contains("workspace_proxy_exchange_duration_seconds_count{mode=\"gateway\",decision=\"allowed\"} 2"), "{m}");
    // Both gateway requests reached the upstream: two overhead samples.
    assert!(
        m.contains("workspace_proxy_request_duration_seconds_count{mode=\"gateway\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("workspace_proxy_blocked_total{reason=\"address_loopback\"} 1"),
        "{m}"
    );

    // SIGTERM with a request in flight: the request completes, then the process exits 0.
    let mut inflight = tokio::net::TcpStream::connect(run.listen).await.unwrap();
    inflight
        .write_all(b"GET http://slow.test/ HTTP/1.1\r\nHost: slow.test\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let pid = run.child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let r = tokio::time::timeout(Duration::from_secs(10), read_response(&mut inflight, false))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "slow-done"));
    let status = tokio::time::timeout(Duration::from_secs(10), run.child.wait())
        .await
        .expect("exits after draining")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(tokio::net::TcpStream::connect(run.listen).await.is_err());

    // Audit file: one JSON line per request, with the context, and no secrets.
    let audit = std::fs::read_to_string(&audit_path).unwrap();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{audit}");
    for l in &lines {
        assert_eq!(l["workspace_id"], "ws-ecs");
        assert_eq!(l["tenant_id"], "tenant-9");
    }
    assert!(!audit.contains("secret-for") && !audit.contains("ecs-token"));
    let log = run.log.lock().unwrap().join("\n");
    assert!(
        !log.contains("secret-for") && !log.contains("ecs-token"),
        "{log}"
    );
    assert!(log.contains("signal received; draining"), "{log}");
}
