//! Every task-binary command the README shows (`cargo run --release --example digits -- …`,
//! and `wine`'s, in its shell blocks) runs, in the README's order, in one repository: the
//! README cannot drift from what the binaries accept.

use crate::common::{example_in, Sandbox};
use std::path::Path;

const PREFIX: &str = "cargo run --release --example ";

/// The README's example commands, in order: the example and its arguments (comments dropped).
fn readme_commands() -> Vec<(String, Vec<String>)> {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(readme).unwrap();
    let mut in_shell = false;
    let mut commands = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_shell = line == "```sh";
            continue;
        }
        if let Some(rest) = line.strip_prefix(PREFIX).filter(|_| in_shell) {
            let Some((example, rest)) = rest.split_once(" -- ") else {
                continue;
            };
            let command = rest.split("  #").next().unwrap_or(rest);
            commands.push((example.to_string(), words(command)));
        }
    }
    commands
}

/// `text` split as a shell splits plain words and double-quoted strings.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

#[test]
fn every_digits_command_of_the_readme_runs() {
    let commands = readme_commands();
    assert!(commands.len() >= 8, "{commands:?}");
    let s = Sandbox::new();
    std::fs::create_dir_all(s.path().join("examples/data")).unwrap();
    for file in ["seven.png", "wine_sample.csv"] {
        let data = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/data")
            .join(file);
        std::fs::copy(data, s.path().join("examples/data").join(file)).unwrap();
    }
    std::fs::write(s.path().join("model.rs"), "// the task's code\n").unwrap();
    let baseline = s.path().join("baseline");
    assert!(commands.iter().any(|(e, _)| e == "wine"), "{commands:?}");
    let mut evals = 0;
    for (name, args) in commands {
        let args: Vec<String> = args
            .into_iter()
            .map(|a| match a.as_str() {
                "/tmp/baseline" => baseline.to_string_lossy().into_owned(),
                _ => a,
            })
            .collect();
        // The README's commands run in the user's repository, here the sandbox.
        let out = example_in(&name, s.path(), s.path())
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if args.first().map(String::as_str) == Some("eval") {
            evals += 1;
            let printed = String::from_utf8_lossy(&out.stdout);
            assert!(printed.contains("class"), "{name} {args:?}: {printed}");
        }
    }
    assert!(
        baseline.join("model.rs").exists(),
        "checkout wrote the code"
    );
    assert!(evals >= 2, "the README evaluates with both examples");
}

#[test]
fn shell_words_keep_quoted_strings_whole() {
    assert_eq!(
        words(r#"train -m "wider" --hidden 256"#),
        ["train", "-m", "wider", "--hidden", "256"]
    );
    assert_eq!(words(r#"-m "two words""#), ["-m", "two words"]);
}

/// A heading's anchor as GitHub makes it: lower case, spaces as `-`, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_link_within_the_readme_names_one_of_its_headings() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let mut in_code = false;
    let mut anchors = Vec::new();
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            anchors.push(anchor(line.trim_start_matches('#')));
        }
    }
    let links: Vec<&str> = readme
        .split("](#")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .collect();
    assert!(links.len() > 10, "the README links its sections");
    let broken: Vec<&&str> = links
        .iter()
        .filter(|l| !anchors.iter().any(|a| a == *l))
        .collect();
    assert!(broken.is_empty(), "links to no heading: {broken:?}");
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    assert_eq!(
        anchor(" Implementing `Task` by hand"),
        "implementing-task-by-hand"
    );
    assert_eq!(
        anchor("Training: optimizers, schedules"),
        "training-optimizers-schedules"
    );
}
