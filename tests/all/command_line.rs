//! The command line as an installed tool is used: exit codes in `--help`,
//! shell completions a real bash loads, and man pages groff renders, one
//! per command, generated from the same definition as the parser.

use clap::CommandFactory;

use crate::support::{describe, run_cryptolake};

#[test]
fn help_names_the_exit_codes() {
    let output = run_cryptolake(&["--help"]);
    assert!(output.status.success(), "{}", describe(&output));
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("Exit codes: 0 success; 1 some work failed")
            && help.contains("2 bad usage or an invalid configuration"),
        "{help}"
    );
}

#[test]
fn bash_loads_the_completions() {
    let script = format!(
        "source <({} completions bash) && complete -p cryptolake",
        env!("CARGO_BIN_EXE_cryptolake")
    );
    let output = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash runs");
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("-F _cryptolake cryptolake"),
        "{}",
        describe(&output)
    );
    // Every shell clap knows gets a script.
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let output = run_cryptolake(&["completions", shell]);
        assert!(
            output.status.success() && !output.stdout.is_empty(),
            "{shell}: {}",
            describe(&output)
        );
    }
}

#[test]
fn every_command_has_a_man_page_that_groff_renders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pages = dir.path().join("man1");
    let output = run_cryptolake(&["man", "--dir", pages.to_str().expect("UTF-8")]);
    assert!(output.status.success(), "{}", describe(&output));
    let mut expected = vec!["cryptolake.1".to_owned()];
    for command in cryptolake::cli::Cli::command().get_subcommands() {
        expected.push(format!("cryptolake-{}.1", command.get_name()));
    }
    for page in expected {
        let path = pages.join(&page);
        assert!(path.is_file(), "{page} is missing");
        let rendered = std::process::Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&path)
            .output()
            .expect("groff runs");
        assert!(
            rendered.status.success() && rendered.stderr.is_empty(),
            "{page}: {}",
            describe(&rendered)
        );
    }
    let single = run_cryptolake(&["man"]);
    assert!(String::from_utf8_lossy(&single.stdout).contains(".TH cryptolake 1"));
}
