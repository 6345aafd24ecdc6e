//! File-sync benchmark: throughput of a full first sync (many small files; a few large
//! files), incremental sync of a 10k-file tree with a handful changed, an unchanged
//! sync and a restore, on the local-directory store and on S3 (a real `moto_server`),
//! beside the anchors measured in the same run on the same trees: `aws s3 sync` to the
//! same moto, and `cp -a` / `cp -au` for the local store. Prints a Markdown table.
//!
//! The workspace agent runs in-process (the same server code as in the container) on a
//! Unix socket over a temporary directory, so the numbers measure the sync path, not
//! the sandbox's tmpfs size.
//!
//! ```sh
//! export CARGO_TARGET_DIR=/root/.cache/cargo-target/sync
//! cargo run --release -p control-plane --example bench_sync -- --files 10000
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use control_plane::{
    agent_client::AgentClient,
    runtime::Endpoint,
    store::ConversationKey,
    sync::{LocalDirStore, ObjectStore, S3Store, Sse, SyncConfig, Syncer},
};
use test_support::MotoServer;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
struct Args {
    /// Small files in the many-files tree.
    #[arg(long, default_value_t = 10_000)]
    files: usize,
    /// Size of each small file (bytes).
    #[arg(long, default_value_t = 1024)]
    file_size: usize,
    /// Large files in the large-files tree.
    #[arg(long, default_value_t = 4)]
    large_files: usize,
    /// Size of each large file (MiB).
    #[arg(long, default_value_t = 64)]
    large_mib: usize,
    /// Files changed before the incremental sync.
    #[arg(long, default_value_t = 5)]
    changed: usize,
    /// Skip the `aws s3 sync` / `cp` anchors.
    #[arg(long)]
    no_anchor: bool,
}

struct Agent {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    client: AgentClient,
    shutdown: CancellationToken,
}

async fn start_agent() -> Agent {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let sock = tmp.path().join("agent.sock");
    let mut cfg = agent::config::Config::with_root(&root);
    cfg.listen = agent::config::ListenAddr::Unix(sock.clone());
    cfg.relay_listen = agent::config::RelayListen::Off;
    cfg.tmp_dir = Some(tmp.path().to_path_buf());
    cfg.max_archive_bytes = 4 << 30;
    cfg.validate().expect("agent config");
    let root = cfg.root.clone();
    let shutdown = CancellationToken::new();
    let bound = agent::server::bind(cfg, shutdown.clone())
        .await
        .expect("agent binds");
    tokio::spawn(bound.serve());
    Agent {
        _tmp: tmp,
        root,
        client: AgentClient::new(Endpoint::Unix(sock)),
        shutdown,
    }
}

fn small_tree(root: &Path, n: usize, size: usize) -> u64 {
    let per_dir = 100;
    for i in 0..n {
        let d = root.join(format!("pkg{:03}", i / per_dir));
        if i % per_dir == 0 {
            std::fs::create_dir_all(&d).unwrap();
        }
        let mut data = format!("file {i}\n").into_bytes();
        data.resize(size, b'.');
        std::fs::write(d.join(format!("mod{i:05}.py")), data).unwrap();
    }
    (n * size) as u64
}

fn large_tree(root: &Path, n: usize, mib: usize) -> u64 {
    let mut block = vec![0u8; 1 << 20];
    for i in 0..n {
        let mut f = std::fs::File::create(root.join(format!("model-{i}.bin"))).unwrap();
        for j in 0..mib {
            // Distinct content per block (no accidental compression or dedup anywhere).
            for (k, b) in block.iter_mut().enumerate() {
                *b = ((k as u64 * 31 + j as u64 * 7 + i as u64) % 251) as u8;
            }
            std::io::Write::write_all(&mut f, &block).unwrap();
        }
    }
    (n * mib) as u64 * (1 << 20)
}

fn change(root: &Path, n: usize, total: usize) {
    for c in 0..n {
        let i = (c * 7919 + 13) % total;
        let p = root
            .join(format!("pkg{:03}", i / 100))
            .join(format!("mod{i:05}.py"));
        let mut data = std::fs::read(&p).unwrap();
        data[0] = b'#';
        std::fs::write(&p, data).unwrap();
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

/// One measured row: label, time, and a throughput note.
struct Row {
    scenario: String,
    cells: Vec<String>,
}

fn cell(d: Duration, bytes: Option<u64>, files: Option<usize>) -> String {
    let mut s = format!("{:.2} s", secs(d));
    if let Some(b) = bytes {
        s.push_str(&format!(" · {:.1} MB/s", mbps(b, d)));
    }
    if let Some(f) = files {
        s.push_str(&format!(" · {:.0} files/s", f as f64 / d.as_secs_f64()));
    }
    s
}

fn run_timed(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let out = cmd.output().expect("anchor command runs");
    assert!(
        out.status.success(),
        "anchor failed: {cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

fn aws(m: &MotoServer, args: &[&str]) -> Command {
    let mut c = Command::new("aws");
    c.args(["--endpoint-url", &m.endpoint])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let moto = MotoServer::start().unwrap_or_else(|e| panic!("{e}"));
    moto.create_bucket("bench", false).await.unwrap();
    let objects = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let cfg = SyncConfig {
        max_files: 1_000_000,
        max_total_bytes: 8 << 30,
        spool_dir: Some(spool.path().to_path_buf()),
        ..SyncConfig::default()
    };
    let stores: Vec<(&str, Arc<dyn ObjectStore>)> = vec![
        (
            "local dir",
            Arc::new(LocalDirStore::new(objects.path().join("local"))),
        ),
        (
            "S3 (moto)",
            Arc::new(S3Store::from_client(
                moto.s3_client(),
                "bench",
                "ours",
                Sse::Aes256,
            )),
        ),
    ];

    eprintln!(
        "[bench] building trees: {} x {} B, {} x {} MiB",
        args.files, args.file_size, args.large_files, args.large_mib
    );
    let small = start_agent().await;
    let small_bytes = small_tree(&small.root, args.files, args.file_size);
    let large = start_agent().await;
    let large_bytes = large_tree(&large.root, args.large_files, args.large_mib);

    let scenarios = [
        format!("full sync, {} files of {} B", args.files, args.file_size),
        format!(
            "full sync, {} files of {} MiB",
            args.large_files, args.large_mib
        ),
        format!(
            "incremental sync, {} files, {} changed",
            args.files, args.changed
        ),
        format!("unchanged sync, {} files", args.files),
        format!("restore, {} files", args.files),
    ];
    let mut columns: Vec<Vec<String>> = Vec::new();
    let mut headers: Vec<String> = Vec::new();
    let mut detail = Vec::new();

    for (n, (name, store)) in stores.iter().enumerate() {
        let syncer = Syncer::new(store.clone(), &cfg).unwrap();
        let mut col = Vec::new();
        let k_small = ConversationKey::new("bench", format!("small-{n}"));
        let k_large = ConversationKey::new("bench", format!("large-{n}"));

        eprintln!("[bench] {name}: full sync of the small tree");
        let r = syncer.sync(&k_small, &small.client).await.unwrap();
        assert_eq!(r.uploaded as usize, args.files);
        col.push(cell(r.duration, Some(small_bytes), Some(args.files)));

        eprintln!("[bench] {name}: full sync of the large tree");
        let r = syncer.sync(&k_large, &large.client).await.unwrap();
        assert_eq!(r.uploaded as usize, args.large_files);
        col.push(cell(r.duration, Some(large_bytes), None));

        change(&small.root, args.changed, args.files);
        eprintln!("[bench] {name}: incremental sync");
        let r = syncer.sync(&k_small, &small.client).await.unwrap();
        assert_eq!(r.uploaded as usize, args.changed, "{r:?}");
        col.push(cell(r.duration, None, None));
        detail.push(format!(
            "{name}: incremental uploaded {} objects, {} bytes",
            r.uploaded, r.bytes_uploaded
        ));

        eprintln!("[bench] {name}: unchanged sync");
        let r = syncer.sync(&k_small, &small.client).await.unwrap();
        assert_eq!((r.uploaded, r.manifest_written), (0, false));
        col.push(cell(r.duration, None, None));

        eprintln!("[bench] {name}: restore");
        let fresh = start_agent().await;
        let r = syncer
            .restore(&k_small, &fresh.client)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.files as usize, args.files);
        col.push(cell(r.duration, Some(small_bytes), Some(args.files)));
        fresh.shutdown.cancel();
        headers.push(format!("ours, {name}"));
        columns.push(col);
        // Reset the small tree's changed files for the next store.
        for c in 0..args.changed {
            let i = (c * 7919 + 13) % args.files;
            let p = small
                .root
                .join(format!("pkg{:03}", i / 100))
                .join(format!("mod{i:05}.py"));
            let mut data = std::fs::read(&p).unwrap();
            data[0] = b'f';
            std::fs::write(&p, data).unwrap();
        }
    }

    if !args.no_anchor {
        // aws s3 sync (size + mtime comparison, 10 concurrent requests by default).
        eprintln!("[bench] anchor: aws s3 sync");
        let mut col = Vec::new();
        let s = small.root.to_str().unwrap();
        let l = large.root.to_str().unwrap();
        let d = run_timed(&mut aws(
            &moto,
            &["s3", "sync", "--quiet", s, "s3://bench/aws/small"],
        ));
        col.push(cell(d, Some(small_bytes), Some(args.files)));
        let d = run_timed(&mut aws(
            &moto,
            &["s3", "sync", "--quiet", l, "s3://bench/aws/large"],
        ));
        col.push(cell(d, Some(large_bytes), None));
        std::thread::sleep(Duration::from_millis(1100)); // a newer mtime for the change
        change(&small.root, args.changed, args.files);
        let d = run_timed(&mut aws(
            &moto,
            &["s3", "sync", "--quiet", s, "s3://bench/aws/small"],
        ));
        col.push(cell(d, None, None));
        let d = run_timed(&mut aws(
            &moto,
            &["s3", "sync", "--quiet", s, "s3://bench/aws/small"],
        ));
        col.push(cell(d, None, None));
        let dest = tempfile::tempdir().unwrap();
        let d = run_timed(&mut aws(
            &moto,
            &[
                "s3",
                "sync",
                "--quiet",
                "s3://bench/aws/small",
                dest.path().to_str().unwrap(),
            ],
        ));
        col.push(cell(d, Some(small_bytes), Some(args.files)));
        headers.push("anchor: `aws s3 sync` to the same moto".into());
        columns.push(col);

        // cp -a (full copies) and cp -au (only newer files) to a local directory.
        eprintln!("[bench] anchor: cp");
        let mut col = Vec::new();
        let dst = objects.path().join("cp");
        std::fs::create_dir_all(&dst).unwrap();
        let d = run_timed(Command::new("cp").args(["-a", s, dst.join("small").to_str().unwrap()]));
        col.push(cell(d, Some(small_bytes), Some(args.files)));
        let d = run_timed(Command::new("cp").args(["-a", l, dst.join("large").to_str().unwrap()]));
        col.push(cell(d, Some(large_bytes), None));
        std::thread::sleep(Duration::from_millis(20));
        change(&small.root, args.changed, args.files);
        let src = format!("{s}/.");
        let d =
            run_timed(Command::new("cp").args(["-au", &src, dst.join("small").to_str().unwrap()]));
        col.push(cell(d, None, None));
        let d =
            run_timed(Command::new("cp").args(["-au", &src, dst.join("small").to_str().unwrap()]));
        col.push(cell(d, None, None));
        let back = objects.path().join("cp-back");
        let d = run_timed(Command::new("cp").args([
            "-a",
            dst.join("small").to_str().unwrap(),
            back.to_str().unwrap(),
        ]));
        col.push(cell(d, Some(small_bytes), Some(args.files)));
        headers.push("anchor: `cp -a` / `cp -au` (local)".into());
        columns.push(col);
    }

    let rows: Vec<Row> = scenarios
        .iter()
        .enumerate()
        .map(|(i, s)| Row {
            scenario: s.clone(),
            cells: columns.iter().map(|c| c[i].clone()).collect(),
        })
        .collect();
    println!("| scenario | {} |", headers.join(" | "));
    println!("|---|{}", "---|".repeat(headers.len()));
    for r in rows {
        println!("| {} | {} |", r.scenario, r.cells.join(" | "));
    }
    for d in detail {
        eprintln!("[bench] {d}");
    }
    small.shutdown.cancel();
    large.shutdown.cancel();
}
