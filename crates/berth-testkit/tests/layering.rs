//! The crate layering of DESIGN.md §2, enforced over `cargo metadata`.
//!
//! Each berth crate may depend (normal or build dependency) only on the berth
//! crates in its row of the table below, so arrows point down towards
//! `berth-core`. Dev-dependencies are free to use `berth-testkit`, and
//! `berth-testkit` itself may use anything. A crate missing from the table
//! fails the test until someone decides where it sits.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

/// DESIGN.md's crate table: crate → the berth crates it may depend on.
const ALLOWED: &[(&str, &[&str])] = &[
    ("berth-core", &[]),
    ("berth-api", &["berth-core"]),
    ("berth-store", &["berth-core"]),
    ("berth-snapshot", &["berth-core"]),
    ("berth-image", &["berth-core"]),
    ("berth-oci", &["berth-core"]),
    ("berth-runtime", &["berth-core", "berth-api"]),
    ("berth-shim", &["berth-core", "berth-api"]),
    ("berth-cni", &["berth-core"]),
    (
        "berth-cri",
        &[
            "berth-core",
            "berth-api",
            "berth-client",
            "berth-image",
            "berth-oci",
            "berth-cni",
        ],
    ),
    (
        "berth-daemon",
        &[
            "berth-core",
            "berth-api",
            "berth-store",
            "berth-snapshot",
            "berth-image",
            "berth-oci",
            "berth-runtime",
            "berth-shim",
            "berth-cni",
            "berth-cri",
        ],
    ),
    (
        "berth-client",
        &["berth-core", "berth-api", "berth-image", "berth-oci"],
    ),
    ("berth-cli", &["berth-client"]),
];

/// Crates allowed to depend on any berth crate: the test harness, and the
/// soak driver built on it (a test tool, never part of a release).
const UNRESTRICTED: &[&str] = &["berth-testkit", "berth-soak"];

/// The one berth crate any crate may use as a dev-dependency.
const DEV_ANYWHERE: &[&str] = &["berth-testkit"];

#[derive(Debug)]
struct Dep {
    name: String,
    kind: String,
}

fn workspace_crates() -> BTreeMap<String, Vec<Dep>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("parse cargo metadata");
    let packages = meta["packages"].as_array().expect("packages array");
    packages
        .iter()
        .map(|p| {
            let name = p["name"].as_str().expect("package name").to_owned();
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies array")
                .iter()
                .map(|d| Dep {
                    // The package name, even when the manifest renames it.
                    name: d["name"].as_str().expect("dependency name").to_owned(),
                    kind: d["kind"].as_str().unwrap_or("normal").to_owned(),
                })
                .collect();
            (name, deps)
        })
        .collect()
}

fn violations(crates: &BTreeMap<String, Vec<Dep>>) -> Vec<String> {
    let table: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut errors = Vec::new();
    for (name, deps) in crates {
        if !name.starts_with("berth-") || UNRESTRICTED.contains(&name.as_str()) {
            continue;
        }
        let Some(allowed) = table.get(name.as_str()) else {
            errors.push(format!(
                "{name} is not in DESIGN.md's crate table (add it there and to this test)"
            ));
            continue;
        };
        for dep in deps.iter().filter(|d| d.name.starts_with("berth-")) {
            let ok = match dep.kind.as_str() {
                "dev" => {
                    DEV_ANYWHERE.contains(&dep.name.as_str())
                        || allowed.contains(&dep.name.as_str())
                }
                _ => allowed.contains(&dep.name.as_str()),
            };
            if !ok {
                errors.push(format!(
                    "{name} has a {} dependency on {}, but may only depend on {allowed:?}",
                    dep.kind, dep.name
                ));
            }
        }
    }
    errors
}

#[test]
fn berth_crates_depend_only_downwards() {
    let crates = workspace_crates();
    assert!(
        crates.contains_key("berth-core") && crates.contains_key("berth-testkit"),
        "cargo metadata did not list the workspace: {:?}",
        crates.keys().collect::<Vec<_>>()
    );
    let errors = violations(&crates);
    assert!(
        errors.is_empty(),
        "layering violations:\n{}",
        errors.join("\n")
    );
}

#[test]
fn an_upward_dependency_is_reported() {
    let mut crates = BTreeMap::new();
    let dep = |name: &str, kind: &str| Dep {
        name: name.to_owned(),
        kind: kind.to_owned(),
    };
    crates.insert("berth-core".to_owned(), vec![dep("berth-store", "normal")]);
    crates.insert("berth-store".to_owned(), vec![dep("berth-testkit", "dev")]);
    crates.insert("berth-cli".to_owned(), vec![dep("berth-api", "build")]);
    crates.insert("berth-new".to_owned(), vec![]);
    let errors = violations(&crates);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors[0].contains("berth-cli has a build dependency on berth-api"));
    assert!(errors[1].contains("berth-core has a normal dependency on berth-store"));
    assert!(errors[2].contains("berth-new is not in DESIGN.md's crate table"));
}
