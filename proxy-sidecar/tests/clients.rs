//! Real clients through the proxy: curl (HTTP and HTTPS via CONNECT), Python urllib,
//! `pip download` from a local package index, Node.js `fetch` and `https.get`. For each,
//! an unlisted host is refused.
//!
//! Needs `curl`, `python3` (with pip) and `node` plus `npm ci --prefix
//! proxy-sidecar/tests/node`. A missing tool fails the test with the package to
//! install, unless `PROXY_TESTS_SKIP_EXTERNAL=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use common::*;
use sha2::{Digest, Sha256};

struct World {
    tp: TestProxy,
    _plain: Upstream,
    _secure: Upstream,
    _pkgs: Upstream,
    dir: tempfile::TempDir,
    ca: PathBuf,
}

impl World {
    fn proxy_url(&self) -> String {
        format!("http://{}", self.tp.addr)
    }
}

fn make_wheel(dir: &Path) -> Vec<u8> {
    let script = r#"
import base64, hashlib, sys, zipfile
out = sys.argv[1]
files = {
    "tinypkg/__init__.py": b"VALUE = 42\n",
    "tinypkg-0.1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 0.1\n",
    "tinypkg-0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
for name, data in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append(f"{name},sha256={digest},{len(data)}")
record.append("tinypkg-0.1.dist-info/RECORD,,")
files["tinypkg-0.1.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
with zipfile.ZipFile(out, "w") as z:
    for name, data in files.items():
        z.writestr(name, data)
"#;
    let path = dir.join("tinypkg-0.1-py3-none-any.whl");
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&path).unwrap()
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_path = ca.write_pem(dir.path());
    let plain = spawn_upstream(None, echo_handler()).await;
    let secure = spawn_upstream(Some(ca.server_config(&["secure.test"])), echo_handler()).await;
    let wheel = Arc::new(make_wheel(dir.path()));
    let sha = hex::encode(Sha256::digest(wheel.as_slice()));
    let index: Handler = Arc::new(move |r: &Recorded| {
        let path = r.target.split('?').next().unwrap_or("");
        match path {
            "/simple/tinypkg/" | "/simple/tinypkg" => http::Response::builder()
                .header("content-type", "text/html")
                .body(body(format!(
                    "<!DOCTYPE html><html><body><a href=\"/files/tinypkg-0.1-py3-none-any.whl#sha256={sha}\">tinypkg-0.1-py3-none-any.whl</a></body></html>"
                )))
                .unwrap(),
            "/files/tinypkg-0.1-py3-none-any.whl" => http::Response::builder()
                .header("content-type", "application/octet-stream")
                .body(body(wheel.as_ref().clone()))
                .unwrap(),
            _ => http::Response::builder().status(404).body(body("not found")).unwrap(),
        }
    });
    let pkgs = spawn_upstream(Some(ca.server_config(&["pkgs.test"])), index).await;
    let (p, s, k) = (plain.addr, secure.addr, pkgs.addr);
    let tp = start_proxy(
        move |c, _| {
            let o = &mut c.test_resolve_overrides;
            o.insert("plain.test".into(), p);
            o.insert("secure.test".into(), s);
            o.insert("pkgs.test".into(), k);
        },
        policy(
            r#"allow = [
              { host = "plain.test", allow_private = true },
              # undici tunnels http:// through CONNECT, which goes to 443 only unless
              # the entry names the port.
              { host = "plain.test:80", allow_private = true },
              { host = "secure.test", allow_private = true },
              { host = "pkgs.test", allow_private = true },
            ]"#,
        ),
        None,
    )
    .await;
    World {
        tp,
        _plain: plain,
        _secure: secure,
        _pkgs: pkgs,
        dir,
        ca: ca_path,
    }
}

/// A child command with a clean environment (no inherited proxy settings).
fn cmd(program: &str, home: &Path) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("LANG", "C.UTF-8");
    if let Ok(v) = std::env::var("PYENV_ROOT") {
        c.env("PYENV_ROOT", v);
    }
    c
}

async fn run(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().expect("spawn"))
        .await
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_http_and_https() {
    if !require_tool("curl", "curl") {
        return;
    }
    let w = world().await;
    let home = w.dir.path();
    let proxy = w.proxy_url();

    let mut c = cmd("curl", home);
    c.args([
        "-sS",
        "-x",
        &proxy,
        "http://plain.test/hello",
        "-w",
        "\n%{http_code}",
    ]);
    let o = run(c).await;
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.ends_with("\n200"), "{}", text(&o));
    assert!(out.contains("\"target\":\"/hello\""), "{out}");

    let mut c = cmd("curl", home);
    c.args(["-sS", "--cacert"]).arg(&w.ca).args([
        "-x",
        &proxy,
        "https://secure.test/tls",
        "-w",
        "\n%{http_code} %{http_connect}",
    ]);
    let o = run(c).await;
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.ends_with("\n200 200"), "{}", text(&o));
    assert!(
        out.contains("\"tls\":true") && out.contains("\"sni\":\"secure.test\""),
        "{out}"
    );

    // Unlisted host: 403 with the reason header over HTTP; refused CONNECT over HTTPS.
    let mut c = cmd("curl", home);
    c.args([
        "-s",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-x",
        &proxy,
        "http://unlisted.test/",
    ]);
    let o = run(c).await;
    let out = String::from_utf8_lossy(&o.stdout).to_lowercase();
    assert!(out.starts_with("http/1.1 403"), "{}", text(&o));
    assert!(out.contains("x-proxy-reason: host_not_allowed"), "{out}");
    let mut c = cmd("curl", home);
    c.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_connect}",
        "-x",
        &proxy,
        "https://unlisted.test/",
    ]);
    let o = run(c).await;
    assert!(!o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "403", "{}", text(&o));
    // Metadata by IP literal.
    let mut c = cmd("curl", home);
    c.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-x",
        &proxy,
        "http://169.254.169.254/latest/meta-data/",
    ]);
    let o = run(c).await;
    assert_eq!(String::from_utf8_lossy(&o.stdout), "403");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_urllib() {
    if !require_tool("python3", "python3") {
        return;
    }
    let w = world().await;
    let script = r#"
import json, ssl, sys, urllib.error, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1])
opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx))
out = {}
for url in sys.argv[2:]:
    try:
        with opener.open(url, timeout=10) as r:
            out[url] = {"status": r.status, "body": r.read().decode()}
    except urllib.error.HTTPError as e:
        out[url] = {"status": e.code, "reason": e.headers.get("x-proxy-reason")}
    except Exception as e:
        out[url] = {"error": str(e)}
print(json.dumps(out))
"#;
    let mut c = cmd("python3", w.dir.path());
    c.env("http_proxy", w.proxy_url())
        .env("https_proxy", w.proxy_url())
        .arg("-c")
        .arg(script)
        .arg(&w.ca)
        .args([
            "http://plain.test/py",
            "https://secure.test/py",
            "http://unlisted.test/",
            "https://unlisted.test/",
        ]);
    let o = run(c).await;
    assert!(o.status.success(), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["http://plain.test/py"]["status"], 200, "{j}");
    assert_eq!(j["https://secure.test/py"]["status"], 200, "{j}");
    assert!(j["https://secure.test/py"]["body"]
        .as_str()
        .unwrap()
        .contains("\"tls\":true"));
    assert_eq!(j["http://unlisted.test/"]["status"], 403, "{j}");
    assert_eq!(j["http://unlisted.test/"]["reason"], "host_not_allowed");
    let err = j["https://unlisted.test/"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(err.contains("403"), "CONNECT refusal surfaced: {j}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_download_from_local_index() {
    if !require_tool("python3", "python3-pip") {
        return;
    }
    let w = world().await;
    let dest = w.dir.path().join("dl");
    let pip = |index: &str, dest: &Path| {
        let mut c = cmd("python3", w.dir.path());
        c.args([
            "-m",
            "pip",
            "download",
            "--isolated",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--retries",
            "0",
            "--timeout",
            "15",
            "--proxy",
        ])
        .arg(w.proxy_url())
        .arg("--cert")
        .arg(&w.ca)
        .args(["--index-url", index, "-d"])
        .arg(dest)
        .arg("tinypkg");
        c
    };
    let o = run(pip("https://pkgs.test/simple/", &dest)).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        dest.join("tinypkg-0.1-py3-none-any.whl").exists(),
        "{}",
        text(&o)
    );

    let dest2 = w.dir.path().join("dl2");
    let o = run(pip("https://unlisted.test/simple/", &dest2)).await;
    assert!(!o.status.success());
    assert!(
        !dest2.join("tinypkg-0.1-py3-none-any.whl").exists(),
        "pip must fail against the unlisted index: {}",
        text(&o)
    );
    let audit = {
        let mut tp = w.tp;
        tp.drain_audit()
    };
    assert!(audit.iter().any(|a| a.host.as_deref() == Some("pkgs.test")
        && a.mode == "connect"
        && a.decision == "allowed"));
    assert!(audit
        .iter()
        .any(|a| a.host.as_deref() == Some("unlisted.test")
            && a.reason.as_deref() == Some("host_not_allowed")));
}

fn node_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("node");
    if dir.join("node_modules").join("undici").exists()
        && dir.join("node_modules").join("global-agent").exists()
    {
        return Some(dir);
    }
    if std::env::var("PROXY_TESTS_SKIP_EXTERNAL").as_deref() == Ok("1") {
        eprintln!("SKIPPED: node modules not installed (PROXY_TESTS_SKIP_EXTERNAL=1)");
        return None;
    }
    panic!(
        "Node test clients are not installed: run `npm ci --prefix proxy-sidecar/tests/node` \
         (needs the npm registry), or set PROXY_TESTS_SKIP_EXTERNAL=1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_fetch_and_global_agent() {
    if !require_tool("node", "nodejs") {
        return;
    }
    let Some(node_dir) = node_dir() else {
        return;
    };
    let w = world().await;
    let proxy = w.proxy_url();
    let node = |args: &[&str], url: &str| {
        let mut c = cmd("node", w.dir.path());
        c.current_dir(&node_dir)
            .env("HTTP_PROXY", &proxy)
            .env("HTTPS_PROXY", &proxy)
            .env("NODE_USE_ENV_PROXY", "1")
            .env("GLOBAL_AGENT_HTTP_PROXY", &proxy)
            .env("GLOBAL_AGENT_HTTPS_PROXY", &proxy)
            .env("NODE_EXTRA_CA_CERTS", &w.ca)
            .args(args)
            .arg(url);
        c
    };
    let parse = |o: &Output| -> serde_json::Value {
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(o)))
    };
    for (args, label) in [
        (vec!["client.js", "fetch"], "fetch"),
        (
            vec!["-r", "global-agent/bootstrap", "client.js", "get"],
            "global-agent",
        ),
    ] {
        let o = run(node(&args, "http://plain.test/node")).await;
        let j = parse(&o);
        assert_eq!(j["status"], 200, "{label} http: {j}");
        assert!(j["body"].as_str().unwrap().contains("/node"));
        let o = run(node(&args, "https://secure.test/node")).await;
        let j = parse(&o);
        assert_eq!(j["status"], 200, "{label} https: {j}");
        assert!(
            j["body"].as_str().unwrap().contains("\"tls\":true"),
            "{label}: {j}"
        );
        let o = run(node(&args, "http://unlisted.test/")).await;
        let j = parse(&o);
        if label == "fetch" {
            // undici tunnels plain http:// through CONNECT too, so the refusal
            // surfaces as a failed request rather than a 403 response.
            assert!(
                j.get("error").is_some() || j["status"] == 403,
                "{label} unlisted http: {j}"
            );
        } else {
            assert_eq!(j["status"], 403, "{label} unlisted http: {j}");
            assert_eq!(j["reason"], "host_not_allowed", "{label}: {j}");
        }
        let o = run(node(&args, "https://unlisted.test/")).await;
        let j = parse(&o);
        assert!(
            j.get("error").is_some() || j["status"] == 403,
            "{label} unlisted https: {j}"
        );
    }
    // The refused HTTPS attempts reached the proxy as CONNECTs (not direct lookups).
    let mut tp = w.tp;
    let audit = tp.drain_audit();
    let refused = audit
        .iter()
        .filter(|a| a.mode == "connect" && a.host.as_deref() == Some("unlisted.test"))
        .count();
    assert!(refused >= 3, "{audit:?}");
    assert!(audit
        .iter()
        .all(|a| a.host.as_deref() != Some("unlisted.test") || a.decision == "blocked"));
}
