//! File routes against a real agent: round trips (text and binary), atomic writes,
//! listing, deletion, error statuses, and every path attack (traversal, absolute,
//! symlinks out of the root), each checked to be 400 and to write nothing outside.

mod common;

use std::os::unix::fs::{symlink, PermissionsExt};

use bytes::Bytes;
use common::*;
use hyper::StatusCode;

fn q(path: &str) -> String {
    let mut s = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_and_binary_round_trip() {
    let a = TestAgent::start().await;
    let r = a
        .request(
            "PUT",
            &format!("/files?path={}", q("notes/hello.txt")),
            "hello\n",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"path":"notes/hello.txt","size":6})
    );
    assert_eq!(
        std::fs::read(a.root.join("notes/hello.txt")).unwrap(),
        b"hello\n"
    );
    let r = a.get("/files?path=notes/hello.txt").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"hello\n");
    assert_eq!(r.headers["content-type"], "application/octet-stream");
    assert_eq!(r.headers["content-length"], "6");

    let binary: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let r = a
        .request(
            "PUT",
            "/files?path=bin/blob.dat",
            Bytes::from(binary.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = a.get("/files?path=bin/blob.dat").await;
    assert_eq!(r.body.len(), binary.len());
    assert!(r.body[..] == binary[..], "binary round trip differs");

    // Empty file, unicode name, overwrite keeps the mode, no temp files left over.
    let r = a
        .request("PUT", &format!("/files?path={}", q("dir/ünï code.txt")), "")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    std::fs::set_permissions(
        a.root.join("notes/hello.txt"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let r = a.request("PUT", "/files?path=notes/hello.txt", "v2").await;
    assert_eq!(r.status, StatusCode::OK);
    let meta = std::fs::metadata(a.root.join("notes/hello.txt")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o755);
    assert_eq!(
        std::fs::read(a.root.join("notes/hello.txt")).unwrap(),
        b"v2"
    );
    assert!(
        snapshot(&a.root).keys().all(|k| !k.contains(".wa-tmp")),
        "{:?}",
        snapshot(&a.root)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_errors_and_inside_symlinks() {
    let a = TestAgent::start().await;
    std::fs::create_dir_all(a.root.join("d/e")).unwrap();
    std::fs::write(a.root.join("d/e/f.txt"), "inside").unwrap();
    symlink("d/e/f.txt", a.root.join("file_link")).unwrap();
    symlink("e", a.root.join("d/dir_link")).unwrap();

    let r = a.get("/files?path=missing.txt").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let r = a.get("/files?path=d").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "is_a_directory")
    );
    let r = a.get("/files?path=").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_path")
    );
    let r = a.get("/files").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_path")
    );
    let r = a.get("/files?path=d/e/f.txt/x").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Symlinks that stay inside are followed.
    let r = a.get("/files?path=file_link").await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"inside"[..]));
    let r = a.get("/files?path=d/dir_link/f.txt").await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"inside"[..]));
    // Writing through an inside link writes the target.
    let r = a.request("PUT", "/files?path=file_link", "changed").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(std::fs::read(a.root.join("d/e/f.txt")).unwrap(), b"changed");
    assert!(std::fs::symlink_metadata(a.root.join("file_link"))
        .unwrap()
        .file_type()
        .is_symlink());
    // Writing over a directory is a conflict.
    let r = a.request("PUT", "/files?path=d", "x").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "conflict")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_files() {
    let a = TestAgent::start().await;
    std::fs::create_dir_all(a.root.join("src/nested")).unwrap();
    std::fs::write(a.root.join("src/main.rs"), "fn main() {}").unwrap();
    std::fs::write(a.root.join("src/nested/x"), "12345").unwrap();
    std::fs::write(a.root.join("README"), "r").unwrap();
    symlink("src", a.root.join("link")).unwrap();
    symlink(&a.outside, a.root.join("out")).unwrap();

    let r = a.get("/files/list?path=&recursive=false").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let v = r.json();
    let names: Vec<(&str, &str)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("README", "file"),
            ("link", "symlink"),
            ("out", "symlink"),
            ("src", "dir")
        ]
    );
    let r = a.get("/files/list?recursive=true").await;
    let v = r.json();
    let paths: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "README",
            "link",
            "out",
            "src",
            "src/main.rs",
            "src/nested",
            "src/nested/x"
        ],
        "symlinks are not descended"
    );
    let x = &v["entries"][6];
    assert_eq!(
        (x["size"].as_u64(), x["mode"].as_u64()),
        (Some(5), Some(0o644))
    );
    assert!(x["mtime_ms"].as_i64().unwrap() > 1_600_000_000_000);

    let r = a.get("/files/list?path=src&recursive=1").await;
    let v = r.json();
    assert_eq!(v["entries"][0]["path"], "src/main.rs");
    let r = a.get("/files/list?path=link").await;
    assert_eq!(r.json()["entries"][0]["path"], "link/main.rs");
    let r = a.get("/files/list?path=README").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "not_a_directory")
    );
    let r = a.get("/files/list?path=nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a.get("/files/list?path=src&recursive=maybe").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_files_dirs_and_links() {
    let a = TestAgent::start().await;
    std::fs::create_dir_all(a.root.join("tree/a/b")).unwrap();
    std::fs::write(a.root.join("tree/a/b/c"), "c").unwrap();
    std::fs::write(a.root.join("tree/top"), "t").unwrap();
    symlink(&a.outside, a.root.join("tree/a/out")).unwrap();
    std::fs::write(a.root.join("keep"), "k").unwrap();
    symlink("keep", a.root.join("keep_link")).unwrap();
    symlink(a.outside.join("secret"), a.root.join("secret_link")).unwrap();
    let before = a.outside_snapshot();

    let r = a.request("DELETE", "/files?path=keep_link", "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(
        a.root.join("keep").exists(),
        "the link, not its target, is deleted"
    );
    let r = a.request("DELETE", "/files?path=secret_link", "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = a.request("DELETE", "/files?path=tree", "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(!a.root.join("tree").exists());
    assert_eq!(
        a.outside_snapshot(),
        before,
        "a symlink inside the tree is not followed"
    );
    let r = a.request("DELETE", "/files?path=tree", "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    for root in ["", ".", "./", "/"] {
        let r = a
            .request("DELETE", &format!("/files?path={}", q(root)), "")
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_path"),
            "{root:?}"
        );
    }
    assert!(a.root.join("keep").exists());
}

/// Every route × every escaping path: 400 `invalid_path`, nothing read or written
/// outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_attacks_are_refused() {
    let a = TestAgent::start().await;
    let outside = a.outside.clone();
    std::fs::create_dir_all(a.root.join("sub")).unwrap();
    symlink("../outside", a.root.join("rel_out")).unwrap();
    symlink(&outside, a.root.join("abs_out")).unwrap();
    symlink(outside.join("secret"), a.root.join("file_out")).unwrap();
    symlink("sub/../..", a.root.join("chain_out")).unwrap();
    symlink("../../outside/secret", a.root.join("sub/deep_out")).unwrap();
    symlink("../outside/new", a.root.join("dangling_out")).unwrap();
    symlink("missing/../../outside/new", a.root.join("dangling_missing")).unwrap();
    let before = a.outside_snapshot();
    let root_before = snapshot(&a.root);

    let outside_abs = outside.join("pwned").to_string_lossy().into_owned();
    let attacks = [
        "../outside/pwned".to_string(),
        "sub/../../outside/pwned".to_string(),
        "..".to_string(),
        outside_abs,
        "/etc/passwd".to_string(),
        "rel_out/pwned".to_string(),
        "rel_out/secret".to_string(),
        "abs_out/pwned".to_string(),
        "abs_out/secret".to_string(),
        "file_out".to_string(),
        "chain_out/outside/secret".to_string(),
        "chain_out/outside/pwned".to_string(),
        "sub/deep_out".to_string(),
        "dangling_out".to_string(),
        "a\u{0}b".to_string(),
    ];
    for path in &attacks {
        let uri = format!("/files?path={}", q(path));
        for method in ["GET", "PUT"] {
            let r = a.request(method, &uri, "pwned").await;
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "{method} {path:?}: {:?}",
                r.body
            );
            assert_eq!(r.code(), "invalid_path", "{method} {path:?}");
            assert!(
                !r.body.windows(14).any(|w| w == b"outside secret"),
                "{method} {path:?} leaked"
            );
        }
        let r = a.get(&format!("/files/list?path={}", q(path))).await;
        if path != "file_out" && path != "sub/deep_out" && path != "dangling_out" {
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "list {path:?}");
        } else {
            assert!(r.status.is_client_error(), "list {path:?}");
        }
    }
    // Deleting through an escaping directory link is refused; deleting an escaping
    // link itself only removes the link.
    for path in [
        "rel_out/secret",
        "abs_out/secret",
        "chain_out/outside/secret",
        "../outside/secret",
    ] {
        let r = a
            .request("DELETE", &format!("/files?path={}", q(path)), "")
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_path"),
            "{path}"
        );
    }
    // A link through a missing directory cannot be resolved (like the kernel: 404),
    // and no directory is created for it.
    for method in ["GET", "PUT"] {
        let r = a
            .request(method, "/files?path=dangling_missing", "pwned")
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method}");
    }
    assert_eq!(
        a.outside_snapshot(),
        before,
        "something was written outside the root"
    );
    assert_eq!(
        snapshot(&a.root),
        root_before,
        "a refused request changed the root"
    );
    let r = a.request("DELETE", "/files?path=file_out", "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(a.outside_snapshot(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limits_and_routing_errors() {
    let a = TestAgent::start_with(|c| c.max_file_bytes = 1024).await;
    let r = a.request("PUT", "/files?path=big", vec![b'x'; 2048]).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    // A chunked body (no Content-Length) over the limit is cut off too.
    let chunks = chunked_body(vec![
        Bytes::from(vec![b'y'; 700]),
        Bytes::from(vec![b'y'; 700]),
    ]);
    let r = send(&a.socket, "PUT", "/files?path=big2", chunks).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        snapshot(&a.root).is_empty(),
        "nothing left behind: {:?}",
        snapshot(&a.root)
    );
    let r = a.request("PUT", "/files?path=ok", vec![b'z'; 1024]).await;
    assert_eq!(r.status, StatusCode::OK);

    let r = a.get("/nope").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert!(r.headers.contains_key(agent::wire::WIRE_VERSION_HEADER));
    let r = a.request("POST", "/files?path=x", "").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let r = a.get("/health").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], "ok");
    assert_eq!(r.json()["wire_version"], agent::wire::WIRE_VERSION);
    assert_eq!(
        r.headers[agent::wire::WIRE_VERSION_HEADER],
        agent::wire::WIRE_VERSION.to_string().as_str()
    );
}

/// A streaming (chunked) request body from chunks.
fn chunked_body(chunks: Vec<Bytes>) -> Body {
    use http_body_util::{BodyExt, StreamBody};
    let frames = chunks
        .into_iter()
        .map(|c| Ok::<_, std::io::Error>(hyper::body::Frame::data(c)));
    StreamBody::new(futures::stream::iter(frames)).boxed()
}
