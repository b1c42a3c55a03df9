//! Command line parsing and validation.

use super::*;

#[test]
fn durations() {
    assert_eq!(parse_duration_ms("30s"), Ok(30_000));
    assert_eq!(parse_duration_ms("500ms"), Ok(500));
    assert_eq!(parse_duration_ms("2m"), Ok(120_000));
    assert_eq!(parse_duration_ms("1.5"), Ok(1_500));
    assert!(parse_duration_ms("5 parsecs").is_err());
    assert!(parse_duration_ms("s").is_err());
}

fn load(args: &[&str]) -> LoadArgs {
    let mut argv = vec!["rookery-load", "chat", "--auth", "token:x"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Chat(run) => run.load,
        other => panic!("{other:?}"),
    }
}

#[test]
fn resolves_defaults_and_validates() {
    let auth = AuthSpec::Token { secret: "x".into() };
    let cfg = RunConfig::resolve(
        Scenario::Chat,
        "127.0.0.1:5222",
        "Example.Test",
        auth.clone(),
        &load(&[]),
        &RUN_DEFAULTS,
    )
    .unwrap();
    assert_eq!(
        (cfg.clients, cfg.rate, cfg.duration_ms),
        (1000, 1.0, 30_000)
    );
    assert_eq!(cfg.domain, "example.test");
    assert_eq!(cfg.slug, "c1000-r1");
    assert!(cfg.max_seq() >= 120);
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(
        json.contains("token:<redacted>") && !json.contains("\"x\""),
        "{json}"
    );

    let hold = RunConfig::resolve(
        Scenario::Hold,
        "127.0.0.1:5222",
        "d",
        auth.clone(),
        &load(&["--clients", "5", "--threads", "8"]),
        &RUN_DEFAULTS,
    )
    .unwrap();
    assert_eq!(
        (hold.rate, hold.threads),
        (0.0, 5),
        "never more threads than clients"
    );

    for bad in [
        &["--clients", "0"][..],
        &["--rate", "0"],
        &["--connect-rate=-1"],
        &["--user-prefix", "a b"],
    ] {
        assert!(
            RunConfig::resolve(
                Scenario::Chat,
                "127.0.0.1:1",
                "d",
                auth.clone(),
                &load(bad),
                &RUN_DEFAULTS
            )
            .is_err(),
            "{bad:?}"
        );
    }
    assert!(RunConfig::resolve(
        Scenario::Chat,
        "nowhere",
        "d",
        auth.clone(),
        &load(&[]),
        &RUN_DEFAULTS
    )
    .is_err());
    assert!(RunConfig::resolve(
        Scenario::Chat,
        "127.0.0.1:1",
        "a'b",
        auth,
        &load(&[]),
        &RUN_DEFAULTS
    )
    .is_err());
}

#[test]
fn new_flags_parse_and_validate() {
    let auth = AuthSpec::Token { secret: "x".into() };
    let resolve = |scenario, args: &[&str]| {
        RunConfig::resolve(
            scenario,
            "127.0.0.1:5222",
            "d",
            auth.clone(),
            &load(args),
            &RUN_DEFAULTS,
        )
    };
    let cfg = resolve(Scenario::Chat, &["--processes", "2", "--receipts"]).unwrap();
    assert_eq!((cfg.processes, cfg.receipts), (Some(2), true));
    assert_eq!(
        cfg.stream_management,
        SmArg::On,
        "on when offered, by default"
    );
    let off = resolve(Scenario::Chat, &["--stream-management", "off"]).unwrap();
    assert_eq!(off.stream_management, SmArg::Off);
    let bare = resolve(Scenario::Chat, &["--stream-management"]).unwrap();
    assert_eq!(bare.stream_management, SmArg::On);
    let storm = resolve(
        Scenario::Storm,
        &["--reconnect-rate", "500", "--online-ms", "20", "--receipts"],
    )
    .unwrap();
    assert_eq!(
        (
            storm.reconnect_rate,
            storm.online_ms,
            storm.rate,
            storm.receipts
        ),
        (Some(500.0), 20, 0.0, false),
        "no messages, so no receipts, in a storm"
    );
    assert!(resolve(Scenario::Storm, &["--reconnect-rate", "0"]).is_err());
    assert!(resolve(Scenario::Chat, &["--processes", "0"]).is_err());
    assert!(resolve(Scenario::Chat, &["--clients", "3", "--processes", "4"]).is_err());

    // The config travels to worker processes as JSON, the secret beside it.
    let json = serde_json::to_string(&cfg).unwrap();
    let mut back: RunConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back.auth.redacted(), "token:<redacted>");
    back.auth = cfg.auth.to_spec().parse().unwrap();
    assert_eq!(back.auth, cfg.auth);
    assert_eq!(serde_json::to_string(&back).unwrap(), json);

    let argv = ["rookery-load", "worker", "--index", "1", "--of", "2"];
    assert!(matches!(
        Cli::try_parse_from(argv).unwrap().command,
        Command::Worker { index: 1, of: 2 }
    ));
    let storm = Cli::try_parse_from(["rookery-load", "storm", "--auth", "token:x"]).unwrap();
    assert!(matches!(storm.command, Command::Storm(_)));
}

#[test]
fn command_lines_keep_no_secret() {
    let args = [
        "rookery-load",
        "chat",
        "--auth",
        "token:s3cret",
        "--auth=plain:pw",
        "--slug",
        "x",
    ];
    let line = redact_command_line(args.iter().map(|s| s.to_string()));
    assert_eq!(
        line,
        [
            "rookery-load",
            "chat",
            "--auth",
            "token:<redacted>",
            "--auth=plain:<redacted>",
            "--slug",
            "x"
        ]
    );
}

fn resolve(scenario: Scenario, args: &[&str]) -> anyhow::Result<RunConfig> {
    let auth = AuthSpec::Token { secret: "x".into() };
    RunConfig::resolve(
        scenario,
        "127.0.0.1:5222",
        "d",
        auth,
        &load(args),
        &RUN_DEFAULTS,
    )
}

#[test]
fn offline_resolves_its_shape() {
    let cfg = resolve(Scenario::Offline, &["--clients", "20"]).unwrap();
    assert_eq!(
        (cfg.senders, cfg.messages, cfg.rate),
        (10, OFFLINE_MESSAGES, OFFLINE_RATE)
    );
    assert_eq!(cfg.duration_ms, 100, "10 messages at 100/s");
    assert_eq!(cfg.max_seq(), 10);
    assert!(cfg.counts_acks(), "offline always judges by acks");
    assert_eq!(cfg.slug, "c20-m10");
    let cfg = resolve(
        Scenario::Offline,
        &[
            "--clients",
            "9",
            "--senders",
            "8",
            "--messages",
            "3",
            "--rate",
            "2",
        ],
    )
    .unwrap();
    assert_eq!((cfg.senders, cfg.messages, cfg.duration_ms), (8, 3, 1500));
    for bad in [
        &["--clients", "1"][..],
        &["--clients", "5", "--senders", "5"],
        &["--clients", "5", "--senders", "0"],
        &["--clients", "5", "--messages", "0"],
        &["--clients", "5", "--duration", "5s"],
        &["--clients", "5", "--stream-management", "off"],
    ] {
        assert!(resolve(Scenario::Offline, bad).is_err(), "{bad:?}");
    }
}

#[test]
fn verify_needs_messages_and_stream_management() {
    let cfg = resolve(Scenario::Chat, &["--verify"]).unwrap();
    assert!(cfg.verify && cfg.counts_acks());
    assert!(!resolve(Scenario::Chat, &[]).unwrap().counts_acks());
    let err = resolve(Scenario::Chat, &["--verify", "--stream-management", "off"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("XEP-0198"), "{err}");
    assert!(resolve(Scenario::Hold, &["--verify"]).is_err());
    assert!(resolve(Scenario::Chat, &["--messages", "3"]).is_err());
    assert!(resolve(Scenario::Storm, &["--senders", "3"]).is_err());
}

fn resolve_as(scenario: Scenario, args: &[&str]) -> anyhow::Result<RunConfig> {
    let name = scenario.name();
    let mut argv = vec!["rookery-load", name, "--auth", "token:x"];
    argv.extend_from_slice(args);
    let load = match Cli::try_parse_from(argv).unwrap().command {
        Command::Presence(run) | Command::Group(run) => run.load,
        other => panic!("{other:?}"),
    };
    RunConfig::resolve(
        scenario,
        "127.0.0.1:5222",
        "Example.Test",
        AuthSpec::Token { secret: "x".into() },
        &load,
        &RUN_DEFAULTS,
    )
}

#[test]
fn presence_and_group_resolve_their_shapes() {
    let presence = resolve_as(Scenario::Presence, &["--clients", "100"]).unwrap();
    assert_eq!(presence.rate, crate::fanout::DEFAULT_PRESENCE_RATE);
    assert_eq!((presence.ledger_rows(), presence.per_change()), (100, 10));
    assert_eq!(presence.slug, "c100-k10-r0.1");
    assert!(presence.scenario.sends());
    let group = resolve_as(
        Scenario::Group,
        &["--clients", "50", "--groups", "7", "--members", "20"],
    )
    .unwrap();
    assert_eq!((group.ledger_rows(), group.per_change()), (7, 20));
    assert_eq!(group.slug, "g7-s20-r1");
    assert!(matches!(
        group.fanout,
        Some(Fanout::Group { ref muc_domain, .. }) if muc_domain == "groups.example.test"
    ));
    let json = serde_json::to_string(&group).unwrap();
    let back: RunConfig =
        serde_json::from_str(&json.replace("token:<redacted>", "token:x")).unwrap();
    assert_eq!(back.fanout, group.fanout, "travels to worker processes");
    // Refused: --verify (no acks to judge by), and receipt numbers that would overflow.
    assert!(resolve_as(Scenario::Presence, &["--verify"]).is_err());
    let huge = [
        "--clients",
        "100",
        "--contacts",
        "98",
        "--rate",
        "10000",
        "--duration",
        "1h",
    ];
    assert!(resolve_as(Scenario::Presence, &huge).is_err());
    // The fan-out options belong to their scenario.
    let chat = RunConfig::resolve(
        Scenario::Chat,
        "127.0.0.1:5222",
        "d",
        AuthSpec::Token { secret: "x".into() },
        &load(&["--setup-ms", "5"]),
        &RUN_DEFAULTS,
    );
    assert!(chat.is_err());
}

fn security(args: &[&str]) -> anyhow::Result<Security> {
    let mut argv = vec!["rookery-load", "hold", "--auth", "token:x"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Hold(run) => Security::resolve(&run.security),
        other => panic!("{other:?}"),
    }
}

#[test]
fn tls_needs_its_trust_and_sasl_names_parse() {
    let plain = security(&[]).unwrap();
    assert_eq!(
        plain,
        Security {
            tls_resume: true,
            ..Security::default()
        }
    );
    let err = security(&["--tls", "starttls"]).unwrap_err().to_string();
    assert!(err.contains("--tls-ca"), "{err}");
    let err = security(&["--tls-insecure"]).unwrap_err().to_string();
    assert!(err.contains("--tls starttls"), "{err}");
    let s = security(&[
        "--tls",
        "direct",
        "--tls-ca",
        "ca.pem",
        "--tls-resume",
        "off",
    ])
    .unwrap();
    assert_eq!(s.tls, TlsArg::Direct);
    assert_eq!(s.tls_ca.as_deref(), Some(std::path::Path::new("ca.pem")));
    assert!(!s.tls_resume);
    assert_eq!(
        security(&["--sasl", "scram-sha-1"]).unwrap().sasl,
        SaslArg::ScramSha1
    );
    let s = security(&["--sasl", "scram-sha-256"]).unwrap();
    assert_eq!(s.sasl, SaslArg::ScramSha256);
    // Both trusts at once is a contradiction clap refuses.
    let argv = [
        "rookery-load",
        "hold",
        "--auth",
        "token:x",
        "--tls",
        "direct",
        "--tls-ca",
        "a",
        "--tls-insecure",
    ];
    assert!(Cli::try_parse_from(argv).is_err());
    // Recorded in summary.json by name.
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["sasl"], "scram-sha-256");
    assert_eq!(json["tls"], "none");
}

#[test]
fn hold_first_and_the_chat_storm_resolve_and_validate() {
    let cfg = resolve(
        Scenario::Chat,
        &[
            "--duration",
            "30s",
            "--hold-first",
            "5m",
            "--storm-fraction",
            "0.1",
        ],
    )
    .unwrap();
    assert_eq!(cfg.hold_first_ms, 300_000);
    assert!(
        crate::run::steady_bound_ns(&cfg) >= (300_000 + 30_000) * 1_000_000,
        "the worker processes' bound covers the hold and the chat"
    );
    let storm = cfg.chat_storm.unwrap();
    assert_eq!(
        (storm.per_mille, storm.at_ms),
        (100, 10_000),
        "default: a third in"
    );
    assert!(storm.includes(99) && !storm.includes(100) && storm.includes(1_050));
    for bad in [
        &["--storm-fraction", "0"][..],
        &["--storm-fraction", "1.5"],
        &["--storm-at", "5s"],
        &[
            "--duration",
            "10s",
            "--storm-fraction",
            "0.1",
            "--storm-at",
            "10s",
        ],
    ] {
        assert!(resolve(Scenario::Chat, bad).is_err(), "{bad:?}");
    }
    assert!(resolve(Scenario::Hold, &["--hold-first", "1s"]).is_err());
    assert!(resolve(Scenario::Storm, &["--storm-fraction", "0.1"]).is_err());
}

#[test]
fn login_rate_is_the_connect_rate() {
    assert_eq!(load(&["--login-rate", "2500"]).connect_rate, 2500.0);
    assert_eq!(load(&["--connect-rate", "300"]).connect_rate, 300.0);
    let mut help = Vec::new();
    <Cli as clap::CommandFactory>::command()
        .find_subcommand_mut("hold")
        .unwrap()
        .write_long_help(&mut help)
        .unwrap();
    let help = String::from_utf8(help).unwrap();
    assert!(help.contains("login-rate"), "visible in --help: {help}");
}
