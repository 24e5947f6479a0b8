//! The deployment recipes in `examples/deploy/` are checked against the
//! agent they deploy: the systemd unit with `systemd-analyze verify`, every
//! Kubernetes manifest parsed (PyYAML) and its commands parsed by the
//! agent's own command line, its config loaded by the agent's own loader,
//! and its ports, paths and users matched across files.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/deploy")
}

/// A YAML file as JSON, parsed by PyYAML.
fn yaml(name: &str) -> Value {
    crate::support::tools::ensure_python_tools();
    let path = deploy_dir().join("kubernetes").join(name);
    let output = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{} does not parse: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// The arguments parse as the agent's command line.
fn assert_cli_accepts(args: &[String], what: &str) {
    let mut argv = vec!["cryptolake".to_owned()];
    argv.extend_from_slice(args);
    if let Err(error) = cryptolake::cli::Cli::try_parse_from(&argv) {
        panic!(
            "{what}: `{}` is not a valid command: {error}",
            args.join(" ")
        );
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{value} is not a list"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

/// The value after `flag` in `args`.
fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// The pod spec of a Deployment, Job or CronJob.
fn pod_spec(manifest: &Value) -> &Value {
    match manifest["kind"].as_str() {
        Some("CronJob") => &manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &manifest["spec"]["template"]["spec"],
    }
}

/// Checks what every pod of the recipes shares: the service account, a
/// non-root user matching the image's, the config mounted where `--config`
/// points, a writable cache where the image puts it.
fn check_pod(manifest: &Value, name: &str) -> Vec<String> {
    let spec = pod_spec(manifest);
    assert_eq!(spec["serviceAccountName"], "cryptolake", "{name}");
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{name}");
    assert_eq!(spec["securityContext"]["runAsUser"], 65532, "{name}");
    let container = &spec["containers"][0];
    let args = strings(&container["args"]);
    assert_cli_accepts(&args, name);
    let config = flag(&args, "--config").expect("--config");
    let mounts = container["volumeMounts"].as_array().expect("mounts");
    let mounted = |path: &str| {
        mounts
            .iter()
            .any(|m| Path::new(path).starts_with(m["mountPath"].as_str().unwrap_or("-")))
    };
    assert!(mounted(config), "{name}: {config} is not mounted");
    assert!(
        mounted("/var/cache/cryptolake/staging"),
        "{name}: no writable cache"
    );
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
    assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
    let volume = spec["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["configMap"]["name"] == "cryptolake");
    assert!(volume.is_some(), "{name}: the ConfigMap is not a volume");
    args
}

/// The ConfigMap's `agent.toml`, loaded by the agent's loader.
fn configmap_plan() -> cryptolake::config::Plan {
    let configmap = yaml("configmap.yaml");
    let text = configmap["data"]["agent.toml"]
        .as_str()
        .expect("agent.toml");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, text).expect("write");
    cryptolake::config::load(&path).unwrap_or_else(|e| panic!("the ConfigMap's config: {e}"))
}

#[test]
fn kubernetes_manifests_match_the_agent() {
    let plan = configmap_plan();
    assert!(plan.leases.is_some(), "replicas share work through leases");
    let admin = plan.admin.as_ref().expect("an admin server");

    let account = yaml("serviceaccount.yaml");
    assert_eq!(account["kind"], "ServiceAccount");
    let role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        .as_str()
        .expect("the IRSA annotation");
    assert!(role.starts_with("arn:aws:iam::"), "{role}");

    let deployment = yaml("deployment.yaml");
    assert_eq!(deployment["kind"], "Deployment");
    let args = check_pod(&deployment, "deployment");
    assert_eq!(args[0], "run");
    let container = &pod_spec(&deployment)["containers"][0];
    let port = container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == "admin")
        .expect("the admin port");
    assert_eq!(port["containerPort"], admin.listen.port());
    assert!(!admin.listen.ip().is_loopback(), "probes come from outside");
    for (probe, path) in [
        ("livenessProbe", "/health"),
        ("readinessProbe", "/ready"),
        ("startupProbe", "/health"),
    ] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "admin", "{probe}");
    }
    let grace = pod_spec(&deployment)["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("a grace period");
    assert!(
        grace > plan.daemon.shutdown_grace.as_secs(),
        "the pod is killed before the agent's own grace period ends"
    );

    let job = yaml("backfill-job.yaml");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    assert!(job["spec"]["backoffLimitPerIndex"].is_u64());
    let args = check_pod(&job, "backfill job");
    assert_eq!(args[0], "sync");
    let shards: u64 = flag(&args, "--shards")
        .expect("--shards")
        .parse()
        .expect("a number");
    assert_eq!(
        job["spec"]["completions"], shards,
        "one index per shard, or shards are left undone"
    );
    assert_eq!(pod_spec(&job)["restartPolicy"], "Never");

    let cron = yaml("daily-cronjob.yaml");
    assert_eq!(cron["kind"], "CronJob");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    let schedule = cron["spec"]["schedule"].as_str().expect("a schedule");
    assert!(
        cryptolake::schedule::Cron::parse(schedule).is_ok(),
        "{schedule}"
    );
    let args = check_pod(&cron, "daily cronjob");
    assert_eq!(args[0], "sync");
}

#[test]
fn the_containerfile_builds_plugins_and_runs_unprivileged() {
    let text = std::fs::read_to_string(deploy_dir().join("Containerfile")).expect("Containerfile");
    let instructions: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("FROM "))
        .map(|(i, _)| i)
        .collect();
    assert!(stages.len() >= 2, "a multi-stage build");
    let (build, runtime) = instructions.split_at(stages[stages.len() - 1]);
    assert!(
        build
            .iter()
            .any(|l| l.contains("rustup target add wasm32-wasip2")),
        "the build stage adds the plugins' target"
    );
    assert!(build.iter().any(|l| l.contains("--locked")));
    assert!(!runtime[0].contains("rust:"), "the runtime image is small");
    let user = runtime
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    assert!(
        !user.starts_with("0") && !user.starts_with("root"),
        "{user}"
    );
    assert!(user.starts_with("65532"), "the pods' runAsUser is 65532");
    let json_list = |prefix: &str| -> Vec<String> {
        let line = runtime
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix}"));
        serde_json::from_str(line).expect("exec form")
    };
    let entrypoint = json_list("ENTRYPOINT ");
    assert!(
        runtime
            .iter()
            .any(|l| l.starts_with("COPY --from=") && l.ends_with(entrypoint[0].as_str())),
        "the entrypoint is the copied binary"
    );
    assert_cli_accepts(&json_list("CMD "), "Containerfile CMD");
}

#[test]
fn the_systemd_unit_verifies_and_runs_the_agent() {
    let unit = std::fs::read_to_string(deploy_dir().join("systemd/cryptolake.service"))
        .expect("unit file");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let args: Vec<String> = exec.split_whitespace().skip(1).map(str::to_owned).collect();
    assert_cli_accepts(&args, "ExecStart");
    assert!(unit.contains("\nType=notify\n"), "readiness via sd_notify");
    assert!(unit.contains("\nRestartPreventExitStatus=2\n"));

    // systemd-analyze checks that ExecStart's binary exists: point it at
    // the one built for these tests.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cryptolake.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/cryptolake",
            env!("CARGO_BIN_EXE_cryptolake"),
        ),
    )
    .expect("write unit");
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze is installed (see docs/operations.md)");
    let complaints = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify: {complaints}"
    );
}

#[test]
fn the_agent_tells_systemd_when_it_is_ready_and_when_it_stops() {
    use std::os::unix::net::UnixDatagram;
    let fixture = crate::support::fixture::Fixture::new(&["BTCUSDT"], 1);
    let config = fixture.write_config("", &fixture.pipeline("spot", "BTCUSDT", ""));
    let socket_path = fixture.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(crate::support::fixture::PATIENCE))
        .expect("timeout");
    let mut agent = crate::support::agent::RunningAgent::start_env(
        &config,
        &[("NOTIFY_SOCKET", socket_path.to_str().expect("UTF-8"))],
    );
    let mut buffer = [0u8; 256];
    let mut receive = || {
        let n = socket.recv(&mut buffer).expect("a notification");
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    };
    assert_eq!(receive(), "READY=1");
    assert!(!agent.with_message("Agent ready.").is_empty());
    agent.signal("TERM");
    assert_eq!(receive(), "STOPPING=1");
    assert!(agent.wait_exit(crate::support::fixture::PATIENCE).success());
}
