//! `GET /archive` and `PUT /archive` against real agents: a round trip between two
//! workspaces, and every tar-slip style attack (each 400, writing nothing anywhere).

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, PermissionsExt};

use bytes::Bytes;
use common::*;
use hyper::StatusCode;
use tar::{EntryType, Header};

/// One raw tar entry; the name and link name are written byte for byte (the `tar`
/// crate's builder refuses the malicious ones we need).
struct Raw<'a> {
    name: &'a [u8],
    kind: EntryType,
    link: &'a [u8],
    data: &'a [u8],
}

fn raw(
    name: &'static str,
    kind: EntryType,
    link: &'static str,
    data: &'static [u8],
) -> Raw<'static> {
    Raw {
        name: name.as_bytes(),
        kind,
        link: link.as_bytes(),
        data,
    }
}

fn file(name: &'static str, data: &'static [u8]) -> Raw<'static> {
    raw(name, EntryType::Regular, "", data)
}

fn build_tar(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..e.name.len()].copy_from_slice(e.name);
            old.linkname = [0; 100];
            old.linkname[..e.link.len()].copy_from_slice(e.link);
        }
        h.set_entry_type(e.kind);
        h.set_mode(0o644);
        h.set_size(e.data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

async fn put_archive(a: &TestAgent, tar: Vec<u8>) -> Resp {
    a.request("PUT", "/archive", Bytes::from(tar)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_between_workspaces() {
    let src = TestAgent::start().await;
    let r = &src.root;
    std::fs::create_dir_all(r.join("src/deep/er")).unwrap();
    std::fs::create_dir_all(r.join("empty")).unwrap();
    std::fs::write(r.join("README.md"), "# hi\n").unwrap();
    let blob: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(r.join("src/deep/er/blob.bin"), &blob).unwrap();
    std::fs::write(r.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(r.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let long = format!("src/{}/{}.txt", "d".repeat(120), "n".repeat(120));
    std::fs::create_dir_all(r.join(&long).parent().unwrap()).unwrap();
    std::fs::write(r.join(&long), "long name").unwrap();
    symlink("src/deep", r.join("link_dir")).unwrap();
    symlink("../README.md", r.join("src/readme_link")).unwrap();
    // Special files are skipped.
    let st = std::process::Command::new("mkfifo")
        .arg(r.join("fifo"))
        .status()
        .unwrap();
    assert!(st.success());

    let got = src.get("/archive").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.headers["content-type"], "application/x-tar");
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(&got.body[..]);
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        assert!(
            !p.starts_with('/') && !p.split('/').any(|c| c == ".."),
            "{p}"
        );
        names.push(p);
    }
    assert!(names.contains(&"link_dir".to_string()));
    assert!(names.contains(&long), "long names survive");
    assert!(!names.iter().any(|n| n.contains("fifo")), "{names:?}");

    let dst = TestAgent::start().await;
    std::fs::write(dst.root.join("README.md"), "old content, overwritten").unwrap();
    std::fs::write(dst.root.join("untouched"), "stays").unwrap();
    let r2 = put_archive(&dst, got.body.to_vec()).await;
    assert_eq!(r2.status, StatusCode::OK, "{:?}", r2.body);
    assert!(r2.json()["entries"].as_u64().unwrap() >= 10);
    assert_eq!(r2.json()["bytes"].as_u64().unwrap(), 5 + 70_000 + 18 + 9);

    let mut want: BTreeMap<String, Vec<u8>> = snapshot(&src.root);
    want.remove("fifo?");
    want.insert("untouched".into(), b"stays".to_vec());
    assert_eq!(snapshot(&dst.root), want);
    let mode = std::fs::metadata(dst.root.join("run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let mtime_src = std::fs::metadata(src.root.join("src/deep/er/blob.bin"))
        .unwrap()
        .modified()
        .unwrap();
    let mtime_dst = std::fs::metadata(dst.root.join("src/deep/er/blob.bin"))
        .unwrap()
        .modified()
        .unwrap();
    let secs =
        |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(secs(mtime_src), secs(mtime_dst));
    assert!(!snapshot(&dst.root).keys().any(|k| k.contains(".wa-")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tar_slip_attempts_are_refused_and_write_nothing() {
    let a = TestAgent::start().await;
    std::fs::create_dir_all(a.root.join("a/b")).unwrap();
    std::fs::write(a.root.join("existing"), "e").unwrap();
    symlink(&a.outside, a.root.join("out_link")).unwrap();
    symlink("../..", a.root.join("a/b/to_root")).unwrap();
    let abs_outside = format!("{}/pwned", a.outside.display());
    let abs_outside: &'static str = Box::leak(abs_outside.into_boxed_str());
    let abs_secret = format!("{}/secret", a.outside.display());
    let abs_secret: &'static str = Box::leak(abs_secret.into_boxed_str());

    let cases: Vec<(&str, Vec<Raw<'static>>)> = vec![
        (
            "dot-dot entry",
            vec![file("ok.txt", b"ok"), file("../outside/pwned", b"x")],
        ),
        ("nested dot-dot", vec![file("a/../../outside/pwned", b"x")]),
        ("absolute entry", vec![file(abs_outside, b"x")]),
        ("absolute /etc", vec![file("/etc/pwned", b"x")]),
        (
            "symlink out then write through it",
            vec![
                raw("l", EntryType::Symlink, "../outside", b""),
                file("l/pwned", b"x"),
            ],
        ),
        (
            "symlink with absolute target",
            vec![raw("l", EntryType::Symlink, "/etc", b"")],
        ),
        (
            "symlink climbing out",
            vec![raw("a/b/l", EntryType::Symlink, "../../../outside", b"")],
        ),
        (
            "inside symlink then write through it",
            vec![raw("s", EntryType::Symlink, "a", b""), file("s/x", b"x")],
        ),
        (
            "hard link out",
            vec![raw("h", EntryType::Link, "../outside/secret", b"")],
        ),
        (
            "hard link absolute",
            vec![raw("h", EntryType::Link, abs_secret, b"")],
        ),
        (
            "write through existing outside link",
            vec![file("out_link/pwned", b"x")],
        ),
        (
            "link target resolved through an existing link",
            vec![raw("a/b/to_root/l", EntryType::Symlink, "../outside", b"")],
        ),
        ("char device", vec![raw("dev", EntryType::Char, "", b"")]),
        ("fifo", vec![raw("fifo", EntryType::Fifo, "", b"")]),
        (
            "file and dir at one path",
            vec![file("x", b"1"), raw("x", EntryType::Directory, "", b"")],
        ),
        (
            "file under a file",
            vec![file("f", b"1"), file("f/g", b"2")],
        ),
    ];
    for (what, entries) in cases {
        let before_out = a.outside_snapshot();
        let before_root = snapshot(&a.root);
        let r = put_archive(&a, build_tar(&entries)).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{what}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.code(), "invalid_archive", "{what}");
        assert_eq!(a.outside_snapshot(), before_out, "{what}: wrote outside");
        assert_eq!(
            snapshot(&a.root),
            before_root,
            "{what}: wrote inside despite refusal"
        );
    }

    // Clashes with the workspace are conflicts, also writing nothing.
    let before_root = snapshot(&a.root);
    let r = put_archive(
        &a,
        build_tar(&[file("new.txt", b"n"), file("a", b"file over dir")]),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "conflict")
    );
    let r = put_archive(
        &a,
        build_tar(&[raw("existing", EntryType::Directory, "", b"")]),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(snapshot(&a.root), before_root);

    // Garbage is refused.
    let r = put_archive(&a, vec![0x42; 1500]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Legitimate links are accepted: inside symlinks, `..` that stays inside, hard
    // links to archive files; existing files are replaced, not written through.
    let ok = build_tar(&[
        raw("a/", EntryType::Directory, "", b""),
        file("a/data", b"data"),
        raw("a/b/up", EntryType::Symlink, "../data", b""),
        raw("hard", EntryType::Link, "a/data", b""),
        raw("existing", EntryType::Symlink, "a/data", b""),
    ]);
    let r = put_archive(&a, ok).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(std::fs::read(a.root.join("a/b/up")).unwrap(), b"data");
    assert_eq!(std::fs::read(a.root.join("hard")).unwrap(), b"data");
    assert!(std::fs::symlink_metadata(a.root.join("existing"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(a.outside_snapshot().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_size_limit() {
    let a = TestAgent::start_with(|c| c.max_archive_bytes = 4096).await;
    let big = build_tar(&[file("big", &[7u8; 8192])]);
    let r = put_archive(&a, big).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    assert!(snapshot(&a.root).is_empty());
    // The upload buffer is anonymous: nothing is left in the temp dir.
    let leftovers: Vec<_> = std::fs::read_dir(a.tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !["root", "outside", "agent.sock"].contains(&n.as_str()))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
