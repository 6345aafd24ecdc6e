//! `docs/proxy.md` stays true: every refusal reason is documented with its status.

use proxy_sidecar::Reason;

#[test]
fn every_refusal_reason_is_documented_with_its_status() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/proxy.md");
    let doc = std::fs::read_to_string(path).expect("docs/proxy.md exists");
    let mut missing = Vec::new();
    for r in Reason::ALL {
        let row = format!("| {} | `{}` |", r.status().as_u16(), r.code());
        if !doc.contains(&row) {
            missing.push(row);
        }
    }
    assert!(
        missing.is_empty(),
        "docs/proxy.md lacks rows:\n{}",
        missing.join("\n")
    );
}
