//! `berth version`: the client's and the daemon's versions, laid out like
//! `ctr version`.

use crate::output::print;

use super::Context;

/// berth's version.
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision berth was built from.
const REVISION: &str = env!("BERTH_GIT_REVISION");
/// The compiler berth was built with (ctr shows its Go version).
const RUST_VERSION: &str = env!("BERTH_RUST_VERSION");

/// Prints the client's part, then asks the daemon for its own; like ctr, a
/// version or revision mismatch is a warning on stderr.
pub async fn run(ctx: &Context) -> anyhow::Result<()> {
    print(&client_section(VERSION, REVISION, RUST_VERSION))?;
    let client = ctx.connect().await?;
    let version = client.version().await?;
    print(&server_header(&version.version, &version.revision))?;
    let server = client.introspection().server().await?;
    print(&format!("  UUID: {}\n", server.uuid))?;
    if version.version != VERSION {
        eprintln!("WARNING: version mismatch");
    }
    if version.revision != REVISION {
        eprintln!("WARNING: revision mismatch");
    }
    Ok(())
}

/// `Client:` and its lines, then the blank line ctr prints.
fn client_section(version: &str, revision: &str, rust: &str) -> String {
    format!("Client:\n  Version:  {version}\n  Revision: {revision}\n  Rust version: {rust}\n\n")
}

/// `Server:` with its version and revision (the UUID follows).
fn server_header(version: &str, revision: &str) -> String {
    format!("Server:\n  Version:  {version}\n  Revision: {revision}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_laid_out_like_ctr() {
        assert_eq!(
            client_section("0.1.0", "abc", "rustc 1.95.0"),
            "Client:\n  Version:  0.1.0\n  Revision: abc\n  Rust version: rustc 1.95.0\n\n"
        );
        assert_eq!(
            server_header("1.6.20~ds1", "1.6.20~ds1-1+deb12u3"),
            "Server:\n  Version:  1.6.20~ds1\n  Revision: 1.6.20~ds1-1+deb12u3\n"
        );
    }
}
