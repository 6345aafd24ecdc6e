//! Property tests (run in `cargo test`; `PROPTEST_CASES=100000` for a longer run) for
//! host/authority parsing and allowlist matching: never panics, canonicalisation is
//! idempotent, and matching agrees with a simple regex reference model.

use proptest::prelude::*;
use proxy_sidecar::allowlist::{AllowEntry, Allowlist, Decision, Pattern};
use proxy_sidecar::host::{parse_authority, parse_authority_parts, parse_host, Host};

/// Strings that look like hosts and authorities, with the characters that matter.
fn hostish() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        "[a-zA-Z0-9]{1,6}",
        Just(".".to_string()),
        Just(":".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("*".to_string()),
        Just("%".to_string()),
        Just("@".to_string()),
        Just("0x".to_string()),
        Just("::ffff:".to_string()),
        Just("xn--".to_string()),
        Just("ü".to_string()),
        Just("。".to_string()),
        Just("-".to_string()),
        Just("_".to_string()),
        Just("/".to_string()),
        "[0-9]{1,10}",
    ];
    prop::collection::vec(atom, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn parsers_never_panic(s in any::<String>()) {
        let _ = parse_host(&s);
        let _ = parse_authority_parts(&s);
        let _ = parse_authority(&s, Some(80));
        let _ = Pattern::parse(&s);
    }

    #[test]
    fn hostish_parsers_never_panic_and_are_idempotent(s in hostish()) {
        if let Ok(h) = parse_host(&s) {
            let again = parse_host(&h.to_uri_host());
            prop_assert_eq!(again.as_ref(), Ok(&h), "host {:?} -> {}", s, h);
            if let Host::Domain(d) = &h {
                prop_assert!(d.len() <= 253);
                prop_assert!(!d.ends_with('.'));
                prop_assert_eq!(d.to_ascii_lowercase(), d.clone());
            }
        }
        if let Ok(a) = parse_authority(&s, Some(443)) {
            let again = parse_authority(&a.to_string(), None);
            prop_assert_eq!(again.as_ref(), Ok(&a), "authority {:?} -> {}", s, a);
        }
        if let Ok(p) = Pattern::parse(&s) {
            let again = Pattern::parse(&p.to_string());
            prop_assert_eq!(again.as_ref(), Ok(&p), "pattern {:?} -> {}", s, p);
        }
    }

    #[test]
    fn ipv4_spellings_canonicalise_to_the_dotted_quad(a in any::<u32>()) {
        let ip = std::net::Ipv4Addr::from(a);
        let want = Host::Ipv4(ip);
        let o = ip.octets();
        let spellings = [
            ip.to_string(),
            a.to_string(),
            format!("0x{a:x}"),
            format!("0{a:o}"),
            format!("0x{:x}.0x{:x}.0x{:x}.0x{:x}", o[0], o[1], o[2], o[3]),
            format!("{}.{}.{}", o[0], o[1], u16::from_be_bytes([o[2], o[3]])),
            format!("{}.{}", o[0], u32::from_be_bytes([0, o[1], o[2], o[3]])),
            format!("[::ffff:{ip}]"),
            format!("{ip}."),
        ];
        for s in spellings {
            prop_assert_eq!(parse_host(&s), Ok(want.clone()), "{}", s);
        }
    }
}

// ------------------------------------------------------------ reference model

const LABELS: &[&str] = &["a", "b", "api", "xn--bcher-kva", "x-1", "amazonaws", "com"];

fn label() -> impl Strategy<Value = String> {
    prop::sample::select(LABELS).prop_map(String::from)
}

/// (pattern text, regex model of its host part, explicit port)
fn pattern_and_model() -> impl Strategy<Value = (String, String, Option<u16>)> {
    (
        any::<bool>(),
        prop::collection::vec((label(), any::<u8>()), 2..5),
        prop::option::of(prop::sample::select(vec![80u16, 443, 8443])),
    )
        .prop_map(|(subdomains, labels, port)| {
            let mut text = Vec::new();
            let mut re = String::from("^");
            if subdomains {
                text.push("*".to_string());
                re.push_str(r"([^.]+\.)+");
            }
            let n = labels.len();
            for (i, (l, roll)) in labels.into_iter().enumerate() {
                // Interior single-label wildcards, never in the last label.
                let wild = i > 0 && i + 2 < n && roll % 4 == 0;
                if wild {
                    text.push("*".into());
                    re.push_str(r"[^.]+");
                } else {
                    re.push_str(&regex::escape(&l));
                    text.push(l);
                }
                if i + 1 < n {
                    re.push_str(r"\.");
                }
            }
            re.push('$');
            let mut t = text.join(".");
            if let Some(p) = port {
                t.push_str(&format!(":{p}"));
            }
            (t, re, port)
        })
}

fn host_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(label(), 1..6).prop_map(|v| v.join("."))
}

proptest! {
    #[test]
    fn matching_agrees_with_regex_model(
        (pattern_text, model, port) in pattern_and_model(),
        host in host_strategy(),
        req_port in prop::sample::select(vec![80u16, 443, 8443, 22]),
    ) {
        let literal = pattern_text
            .split(':').next().unwrap()
            .split('.')
            .filter(|l| *l != "*")
            .count();
        let parsed = Pattern::parse(&pattern_text);
        if literal < 2 {
            prop_assert!(parsed.is_err(), "{} should be too broad", pattern_text);
            return Ok(());
        }
        let pattern = parsed.map_err(|e| TestCaseError::fail(format!("{pattern_text}: {e}")))?;
        let h = parse_host(&host).unwrap();
        let re = regex::Regex::new(&model).unwrap();
        prop_assert_eq!(pattern.matches_host(&h), re.is_match(&host), "{} vs {}", pattern_text, host);

        // Allowlist decision model: deny wins, then allow with port rules.
        let allow_port_ok = match port { Some(p) => p == req_port, None => req_port == 80 || req_port == 443 };
        let list = Allowlist::new(vec![AllowEntry { pattern: pattern.clone(), allow_private: false }], vec![]);
        let want = if !re.is_match(&host) {
            Decision::NotAllowed
        } else if allow_port_ok {
            Decision::Allowed(&list.allow_entries()[0])
        } else {
            Decision::PortNotAllowed
        };
        prop_assert_eq!(list.decide(&h, req_port), want);

        let deny_port_ok = port.is_none_or(|p| p == req_port);
        let denying = Allowlist::new(
            vec![AllowEntry { pattern: Pattern::parse("*.a.b").unwrap(), allow_private: false }],
            vec![pattern],
        );
        let got = denying.decide(&h, req_port);
        if re.is_match(&host) && deny_port_ok {
            prop_assert_eq!(got, Decision::Denied);
        } else {
            prop_assert_ne!(got, Decision::Denied);
        }
    }
}
