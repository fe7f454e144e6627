//! `berth completion bash|zsh|fish`: a completion script generated from the
//! CLI's own definition by `clap_complete`, so it never goes stale.
//!
//! ```text
//! berth completion bash > /etc/bash_completion.d/berth
//! berth completion zsh > "${fpath[1]}/_berth"
//! berth completion fish > ~/.config/fish/completions/berth.fish
//! ```

use clap_complete::Shell;

/// `berth completion SHELL`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for
    #[arg(value_enum)]
    shell: CompletionShell,
}

/// The shells berth prints completions for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl From<CompletionShell> for Shell {
    fn from(shell: CompletionShell) -> Self {
        match shell {
            CompletionShell::Bash => Shell::Bash,
            CompletionShell::Zsh => Shell::Zsh,
            CompletionShell::Fish => Shell::Fish,
        }
    }
}

/// Writes the script for `args.shell` to stdout. The script is built in
/// memory first: `clap_complete` panics on a write error (`| head`).
pub fn print(args: &Args, command: &mut clap::Command) -> std::io::Result<()> {
    use std::io::Write;
    let name = command.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(Shell::from(args.shell), command, name, &mut script);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&script)?;
    stdout.flush()
}
