//! The file-sync routes against real agents: `GET /manifest` (hashes, limits, the
//! agent's cap), `POST /archive/export` (exactly the listed entries, confined paths)
//! and `PUT /archive?links=preserve` (outside-pointing symlinks kept, nothing ever
//! written through a symlink; the default import still refuses them).

mod common;

use std::os::unix::fs::{symlink, PermissionsExt};

use agent::wire::{Manifest, ManifestKind};
use bytes::Bytes;
use common::*;
use hyper::StatusCode;
use tar::{EntryType, Header};

fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn manifest(a: &TestAgent, query: &str) -> Resp {
    a.get(&format!("/manifest{query}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_lists_hashes_and_limits() {
    let a = TestAgent::start().await;
    let r = &a.root;
    std::fs::create_dir_all(r.join("src/sub")).unwrap();
    std::fs::write(r.join("src/main.py"), "print('hi')\n").unwrap();
    std::fs::write(r.join("src/sub/run.sh"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        r.join("src/sub/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    symlink("/usr/bin/python3", r.join("python")).unwrap();
    symlink("src/main.py", r.join("main")).unwrap();
    // A symlink to the outside tree is listed as a link, never followed.
    symlink(&a.outside, r.join("out")).unwrap();

    let resp = manifest(&a, "").await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    let m: Manifest = serde_json::from_slice(&resp.body).unwrap();
    let paths: Vec<_> = m.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "main",
            "out",
            "python",
            "src",
            "src/main.py",
            "src/sub",
            "src/sub/run.sh"
        ]
    );
    let by = |p: &str| m.entries.iter().find(|e| e.path == p).unwrap();
    assert_eq!(by("src/main.py").kind, ManifestKind::File);
    assert_eq!(
        by("src/main.py").sha256.as_deref(),
        Some(sha256_hex(b"print('hi')\n").as_str())
    );
    assert_eq!(by("src/sub/run.sh").mode, 0o755);
    assert_eq!(by("python").target.as_deref(), Some("/usr/bin/python3"));
    assert_eq!(by("out").kind, ManifestKind::Symlink);
    assert_eq!(by("src").kind, ManifestKind::Dir);
    assert!(m.skipped.is_empty());
    assert_eq!(m.total_entries, 7);
    assert!(!m.over_limit);
    // Nothing of the outside tree leaks into the manifest.
    assert!(!String::from_utf8_lossy(&resp.body).contains("secret"));

    // Caller limits: totals only, flagged.
    let m: Manifest = manifest(&a, "?max_entries=2").await.json_as();
    assert!(m.over_limit && m.entries.is_empty());
    assert_eq!(m.total_entries, 7);
    let m: Manifest = manifest(&a, "?max_bytes=5").await.json_as();
    assert!(m.over_limit);
    assert_eq!(m.total_file_bytes, 12 + 10);

    let bad = manifest(&a, "?max_entries=lots").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.code(), "invalid_request");
    let bad = manifest(&a, "?unknown=1").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_hard_cap_is_413() {
    let a = TestAgent::start_with(|c| c.max_manifest_entries = 3).await;
    for i in 0..5 {
        std::fs::write(a.root.join(format!("f{i}")), "x").unwrap();
    }
    let resp = manifest(&a, "").await;
    assert_eq!(resp.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp.code(), "payload_too_large");
    let msg = resp.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("more than 3 entries"), "{msg}");
    a.stop().await;
}

async fn export(a: &TestAgent, paths: &[&str]) -> Resp {
    let body = serde_json::json!({ "paths": paths }).to_string();
    a.request("POST", "/archive/export", Bytes::from(body))
        .await
}

/// (name, kind, link target, data) of each tar entry.
fn tar_entries(bytes: &[u8]) -> Vec<(String, EntryType, String, Vec<u8>)> {
    let mut ar = tar::Archive::new(bytes);
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let kind = e.header().entry_type();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            (name, kind, link, data)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_gives_exactly_the_listed_entries() {
    let a = TestAgent::start().await;
    let r = &a.root;
    std::fs::create_dir_all(r.join("d/inner")).unwrap();
    std::fs::write(r.join("d/inner/not-asked"), "no").unwrap();
    std::fs::write(r.join("d/a.txt"), "alpha").unwrap();
    symlink("/usr/bin/python3", r.join("py")).unwrap();
    symlink(&a.outside, r.join("out")).unwrap();

    let resp = export(&a, &["d", "d/a.txt", "py", "gone.txt", "out"]).await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    let entries = tar_entries(&resp.body);
    let names: Vec<_> = entries.iter().map(|e| e.0.as_str()).collect();
    // The directory alone, not its contents; the missing file left out; links as links.
    assert_eq!(names, ["d", "d/a.txt", "py", "out"]);
    assert_eq!(entries[0].1, EntryType::Directory);
    assert_eq!(entries[1].3, b"alpha");
    assert_eq!(entries[2].1, EntryType::Symlink);
    assert_eq!(entries[2].2, "/usr/bin/python3");
    assert_eq!(entries[3].1, EntryType::Symlink);
    assert!(entries[3].3.is_empty());

    // Unsafe paths are refused like on every file route, and nothing leaks.
    for bad in [
        "../outside/secret",
        "/etc/passwd",
        "d/../../x",
        "out/secret",
        "",
    ] {
        let resp = export(&a, &["d/a.txt", bad]).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(
            ["invalid_path", "invalid_request"].contains(&resp.code().as_str()),
            "{bad:?}: {}",
            resp.code()
        );
        assert!(!String::from_utf8_lossy(&resp.body).contains("outside secret"));
    }
    let resp = a
        .request(
            "POST",
            "/archive/export",
            Bytes::from_static(b"{\"paths\":5}"),
        )
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    a.stop().await;
}

/// One raw tar entry written byte for byte (the `tar` builder refuses absolute links).
fn raw_tar(entries: &[(&str, EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, link, data) in entries {
        let mut h = Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname = [0; 100];
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(*kind);
        h.set_mode(if *kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

async fn put(a: &TestAgent, query: &str, tar: Vec<u8>) -> Resp {
    a.request("PUT", &format!("/archive{query}"), Bytes::from(tar))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preserve_keeps_outside_links_that_confine_refuses() {
    let a = TestAgent::start().await;
    let venv = raw_tar(&[
        (".venv/", EntryType::Directory, "", b""),
        (".venv/bin/", EntryType::Directory, "", b""),
        (
            ".venv/bin/python",
            EntryType::Symlink,
            "/usr/bin/python3",
            b"",
        ),
        (".venv/bin/up", EntryType::Symlink, "../../../outside", b""),
        (
            ".venv/pyvenv.cfg",
            EntryType::Regular,
            "",
            b"home = /usr/bin\n",
        ),
    ]);
    let before = snapshot(&a.root);

    // The public import (no flag, or the explicit default) refuses the archive whole.
    for q in ["", "?links=confine"] {
        let resp = put(&a, q, venv.clone()).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(resp.code(), "invalid_archive");
        assert_eq!(snapshot(&a.root), before, "nothing written ({q})");
    }
    let resp = put(&a, "?links=anything", venv.clone()).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert_eq!(resp.code(), "invalid_request");

    // The restore flag creates them as plain symlinks.
    let resp = put(&a, "?links=preserve", venv).await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    assert_eq!(
        std::fs::read_link(a.root.join(".venv/bin/python")).unwrap(),
        std::path::Path::new("/usr/bin/python3")
    );
    assert_eq!(
        std::fs::read_link(a.root.join(".venv/bin/up")).unwrap(),
        std::path::Path::new("../../../outside")
    );
    assert_eq!(
        std::fs::read(a.root.join(".venv/pyvenv.cfg")).unwrap(),
        b"home = /usr/bin\n"
    );
    // The agent's own routes still refuse to go through them.
    let resp = a.get("/files?path=.venv/bin/up/secret").await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.outside_snapshot().len(), 1);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preserve_never_writes_through_a_symlink() {
    let a = TestAgent::start().await;
    std::fs::create_dir_all(a.root.join("real")).unwrap();
    symlink("real", a.root.join("inlink")).unwrap();
    symlink(&a.outside, a.root.join("outlink")).unwrap();
    let outside_before = a.outside_snapshot();

    let attacks: Vec<(&str, Vec<u8>)> = vec![
        (
            "through a link the archive creates (absolute target)",
            raw_tar(&[
                ("esc", EntryType::Symlink, "/tmp", b""),
                ("esc/planted", EntryType::Regular, "", b"x"),
            ]),
        ),
        (
            "through a link the archive creates (outside target)",
            raw_tar(&[
                ("esc2", EntryType::Symlink, "../outside", b""),
                ("esc2/secret", EntryType::Regular, "", b"overwritten"),
            ]),
        ),
        (
            "through an existing link to the outside",
            raw_tar(&[("outlink/secret", EntryType::Regular, "", b"overwritten")]),
        ),
        (
            "through an existing link inside the root",
            raw_tar(&[("inlink/f", EntryType::Regular, "", b"x")]),
        ),
        (
            "a directory over an existing link",
            raw_tar(&[("inlink/", EntryType::Directory, "", b"")]),
        ),
        (
            "a `..` name",
            raw_tar(&[("../outside/secret", EntryType::Regular, "", b"x")]),
        ),
        (
            "an absolute name",
            raw_tar(&[("/tmp/planted", EntryType::Regular, "", b"x")]),
        ),
    ];
    for (what, tar) in attacks {
        let before = snapshot(&a.root);
        let resp = put(&a, "?links=preserve", tar).await;
        assert_eq!(
            resp.status,
            StatusCode::BAD_REQUEST,
            "{what}: {:?}",
            resp.body
        );
        assert_eq!(resp.code(), "invalid_archive", "{what}");
        assert_eq!(snapshot(&a.root), before, "{what}: nothing written");
        assert_eq!(
            a.outside_snapshot(),
            outside_before,
            "{what}: outside untouched"
        );
    }
    assert!(!std::path::Path::new("/tmp/planted").exists());
    // Without the flag, writing through an inside link stays allowed (unchanged
    // behaviour of the public import).
    let resp = put(
        &a,
        "",
        raw_tar(&[("inlink/f", EntryType::Regular, "", b"x")]),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    assert_eq!(std::fs::read(a.root.join("real/f")).unwrap(), b"x");
    a.stop().await;
}

trait JsonAs {
    fn json_as<T: serde::de::DeserializeOwned>(&self) -> T;
}

impl JsonAs for Resp {
    fn json_as<T: serde::de::DeserializeOwned>(&self) -> T {
        assert_eq!(self.status, StatusCode::OK, "{:?}", self.body);
        serde_json::from_slice(&self.body).unwrap()
    }
}
