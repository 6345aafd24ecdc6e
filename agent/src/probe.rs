//! `workspace-agent probe`: one JSON object describing the sandbox as seen from
//! inside, for the control plane's security tests. Every field is read cheaply and
//! independently; a field that cannot be read is `null` rather than an error.
//! `no_new_privs` and `seccomp` come from `prctl`, so they work under gVisor, whose
//! `/proc/self/status` lacks those lines.

use std::ffi::CStr;
use std::path::Path;

use serde_json::{json, Map, Value};

/// Collects the probe object.
pub fn probe() -> Value {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let status_field = |name: &str| -> Option<String> {
        status.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(':')
                .map(|v| v.trim().to_string())
        })
    };
    let uname = rustix::system::uname();
    let cstr = |c: &CStr| c.to_string_lossy().into_owned();
    let mounts = mounts_of_interest();

    let mut o = Map::new();
    o.insert("uid".into(), json!(rustix::process::getuid().as_raw()));
    o.insert("gid".into(), json!(rustix::process::getgid().as_raw()));
    o.insert("euid".into(), json!(rustix::process::geteuid().as_raw()));
    o.insert("groups".into(), json!(status_field("Groups")));
    o.insert("pid".into(), json!(std::process::id()));
    o.insert(
        "ppid".into(),
        json!(rustix::process::getppid().map(|p| p.as_raw_nonzero().get())),
    );
    o.insert("cap_eff".into(), json!(status_field("CapEff")));
    o.insert("cap_prm".into(), json!(status_field("CapPrm")));
    o.insert("cap_bnd".into(), json!(status_field("CapBnd")));
    o.insert("cap_amb".into(), json!(status_field("CapAmb")));
    o.insert(
        "no_new_privs".into(),
        json!(prctl_get(libc::PR_GET_NO_NEW_PRIVS)),
    );
    o.insert("seccomp".into(), json!(prctl_get(libc::PR_GET_SECCOMP)));
    o.insert(
        "status_no_new_privs".into(),
        json!(status_field("NoNewPrivs")),
    );
    o.insert("status_seccomp".into(), json!(status_field("Seccomp")));
    o.insert("interfaces".into(), json!(interfaces()));
    o.insert("root_writable".into(), json!(writable(Path::new("/"))));
    o.insert("tmp_writable".into(), json!(writable(Path::new("/tmp"))));
    o.insert("hostname".into(), json!(cstr(uname.nodename())));
    o.insert("kernel_release".into(), json!(cstr(uname.release())));
    o.insert("kernel_version".into(), json!(cstr(uname.version())));
    o.insert("machine".into(), json!(cstr(uname.machine())));
    o.insert("mounts".into(), json!(mounts));
    o.insert("env_names".into(), json!(env_names()));
    o.insert(
        "cgroup".into(),
        json!(std::fs::read_to_string("/proc/self/cgroup").ok()),
    );
    o.insert(
        "pids_max".into(),
        json!(first_readable(&[
            "/sys/fs/cgroup/pids.max",
            "/sys/fs/cgroup/pids/pids.max"
        ])),
    );
    o.insert(
        "memory_max".into(),
        json!(first_readable(&[
            "/sys/fs/cgroup/memory.max",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes"
        ])),
    );
    Value::Object(o)
}

#[allow(unsafe_code)] // prctl(PR_GET_*): not wrapped by rustix
fn prctl_get(option: libc::c_int) -> Option<i64> {
    // SAFETY: PR_GET_NO_NEW_PRIVS and PR_GET_SECCOMP take no pointer arguments and only
    // return an integer; the extra arguments must be zero.
    let r = unsafe {
        libc::prctl(
            option,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    (r >= 0).then_some(r as i64)
}

/// Interface names: `if_nameindex(3)`, falling back to `/sys/class/net` and
/// `/proc/net/dev`.
pub fn interfaces() -> Vec<String> {
    let mut names = if_nameindex();
    if names.is_empty() {
        if let Ok(dir) = std::fs::read_dir("/sys/class/net") {
            names = dir
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
        }
    }
    if names.is_empty() {
        if let Ok(dev) = std::fs::read_to_string("/proc/net/dev") {
            names = dev
                .lines()
                .skip(2)
                .filter_map(|l| l.split(':').next().map(|n| n.trim().to_string()))
                .filter(|n| !n.is_empty())
                .collect();
        }
    }
    names.sort();
    names.dedup();
    names
}

#[allow(unsafe_code)] // if_nameindex(3): not wrapped by rustix
fn if_nameindex() -> Vec<String> {
    let mut out = Vec::new();
    // SAFETY: if_nameindex returns a heap array terminated by an entry with index 0 and
    // a null name, which we only read and then free with if_freenameindex.
    unsafe {
        let head = libc::if_nameindex();
        if head.is_null() {
            return out;
        }
        let mut p = head;
        while (*p).if_index != 0 && !(*p).if_name.is_null() {
            out.push(CStr::from_ptr((*p).if_name).to_string_lossy().into_owned());
            p = p.add(1);
        }
        libc::if_freenameindex(head);
    }
    out
}

/// Tries to create (and remove) a file in `dir`.
fn writable(dir: &Path) -> bool {
    let p = dir.join(format!(".workspace-agent-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&p);
            true
        }
        Err(_) => false,
    }
}

/// Mount options of `/`, `/tmp`, `/workspace`, `/run/workspace`, `/home/appuser`.
fn mounts_of_interest() -> Map<String, Value> {
    let mut out = Map::new();
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return out;
    };
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        if matches!(
            f[1],
            "/" | "/tmp" | "/workspace" | "/run/workspace" | "/home/appuser" | "/run"
        ) {
            // Later lines shadow earlier ones (over-mounts).
            out.insert(f[1].to_string(), json!({"fstype": f[2], "options": f[3]}));
        }
    }
    out
}

fn env_names() -> Vec<String> {
    let mut v: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn first_readable(paths: &[&str]) -> Option<String> {
    paths.iter().find_map(|p| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_has_the_promised_fields() {
        let v = probe();
        for k in [
            "uid",
            "gid",
            "cap_eff",
            "no_new_privs",
            "seccomp",
            "interfaces",
            "root_writable",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert_eq!(v["uid"], json!(rustix::process::getuid().as_raw()));
        assert!(v["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "lo"));
        assert!(matches!(v["no_new_privs"].as_i64(), Some(0 | 1)));
    }
}
