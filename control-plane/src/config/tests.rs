//! Tests of the configuration: layering, validation messages, the compact token form.

use super::*;

fn valid() -> Config {
    Config {
        tokens: vec![TokenConfig {
            tenant: "t1".into(),
            token: "0123456789abcdef".into(),
            admin: false,
        }],
        ..Config::default()
    }
}

#[test]
fn defaults_with_a_token_are_valid() {
    valid().validate().unwrap();
}

type Mutation = Box<dyn Fn(&mut Config)>;

#[test]
fn rejects_bad_settings_with_the_field_named() {
    let cases: Vec<(Mutation, &str)> = vec![
        (Box::new(|c| c.tokens.clear()), "tokens"),
        (
            Box::new(|c| c.tokens[0].token = "short".into()),
            "tokens.token",
        ),
        (
            Box::new(|c| c.tokens[0].tenant = "a/b".into()),
            "tokens.tenant",
        ),
        (
            Box::new(|c| {
                let t = c.tokens[0].clone();
                c.tokens.push(t)
            }),
            "tokens.token",
        ),
        (Box::new(|c| c.docker.image.clear()), "docker.image"),
        (
            Box::new(|c| c.docker.socket_root = "rel".into()),
            "docker.socket_root",
        ),
        (
            Box::new(|c| c.docker.workspace_size = "lots".into()),
            "docker.workspace_size",
        ),
        (Box::new(|c| c.docker.user = "0:0".into()), "docker.user"),
        (Box::new(|c| c.docker.cpus = 0.0), "docker.cpus"),
        (Box::new(|c| c.pool.min = c.pool.max + 1), "pool.min"),
        (Box::new(|c| c.pool.max = c.max_workspaces + 1), "pool.max"),
        (
            Box::new(|c| {
                c.store.kind = StoreKind::Redis;
                c.store.redis_url = "localhost:6379".into();
            }),
            "store.redis_url",
        ),
        (
            Box::new(|c| {
                c.docker.oci_runtime = "runsc".into();
                c.docker.pids_limit = 64;
            }),
            "docker.pids_limit",
        ),
        (
            Box::new(|c| {
                c.docker
                    .extra_env
                    .insert("AWS_SECRET_ACCESS_KEY".into(), "x".into());
            }),
            "docker.extra_env",
        ),
        (
            Box::new(|c| {
                c.docker.extra_env.insert("GITHUB_TOKEN".into(), "x".into());
            }),
            "docker.extra_env",
        ),
        (
            Box::new(|c| c.docker.seccomp_profile = "/nonexistent/profile.json".into()),
            "docker.seccomp_profile",
        ),
        (
            Box::new(|c| c.docker.aws_region = "eu-west-1".into()),
            "docker.aws_region",
        ),
    ];
    // The region is configuration, not a credential.
    let mut c = valid();
    c.docker
        .extra_env
        .insert("AWS_DEFAULT_REGION".into(), "us-east-1".into());
    assert!(c.validate().is_ok());
    for (mutate, field) in cases {
        let mut c = valid();
        mutate(&mut c);
        match c.validate() {
            Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected invalid {field}, got {other:?}"),
        }
    }
}

#[test]
fn sizes_and_compact_tokens() {
    assert_eq!(parse_size("1g"), Some(1 << 30));
    assert_eq!(parse_size("512m"), Some(512 << 20));
    assert_eq!(parse_size("65536k"), Some(65536 << 10));
    assert_eq!(parse_size("0"), None);
    assert_eq!(parse_size("x"), None);
    let t = parse_compact_tokens("a:0123456789abcdef, b:fedcba9876543210").unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[1].tenant, "b");
    assert!(parse_compact_tokens("nocolon").is_err());
    assert!(parse_compact_tokens("a:0123456789abcdef:admin").unwrap()[0].admin);
    assert!(parse_compact_tokens("a:0123456789abcdef:root").is_err());
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's signature
fn toml_file_and_env_layers() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "cp.toml",
            r#"
            listen = "127.0.0.1:9999"
            [[tokens]]
            tenant = "acme"
            token = "0123456789abcdef"
            [docker]
            pids_limit = 64
            "#,
        )?;
        jail.set_env("CP_DOCKER__IMAGE", "img:1");
        let cfg = Config::from_figment(Config::figment(Some("cp.toml".as_ref())))
            .map_err(|e| e.to_string())?;
        assert_eq!(cfg.listen.port(), 9999);
        assert_eq!(cfg.docker.pids_limit, 64);
        assert_eq!(cfg.docker.image, "img:1");
        assert_eq!(cfg.tokens[0].tenant, "acme");
        Ok(())
    });
}

#[test]
fn embedded_seccomp_profile_is_json() {
    let v: serde_json::Value = serde_json::from_str(EMBEDDED_SECCOMP_PROFILE).unwrap();
    assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
}
