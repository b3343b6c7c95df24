//! Embeds the git commit of the source tree as `SKYLINE_GIT_COMMIT` (the endpoint monitor's
//! version label is `<crate version>+<commit>`). Without git or outside a repository (a
//! source tarball) the commit is "unknown"; the build never fails because of it.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SKYLINE_GIT_COMMIT");
    let commit = std::env::var("SKYLINE_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=10", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    // Rebuild when HEAD moves (a commit, a checkout), when inside a repository. Only files
    // that exist are named: cargo reruns the script on every build for a missing one.
    let reference = git(&["symbolic-ref", "-q", "HEAD"]);
    for dir in [
        git(&["rev-parse", "--git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ]
    .into_iter()
    .flatten()
    {
        let mut files = vec![format!("{dir}/HEAD"), format!("{dir}/packed-refs")];
        if let Some(r) = &reference {
            files.push(format!("{dir}/{r}"));
        }
        for f in files {
            if std::path::Path::new(&f).exists() {
                println!("cargo:rerun-if-changed={f}");
            }
        }
    }
    println!("cargo:rustc-env=SKYLINE_GIT_COMMIT={commit}");
}
