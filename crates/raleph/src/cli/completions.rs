//! `raleph completions SHELL`: the shell's completion script, on stdout.

#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

pub fn run(args: CompletionsArgs, command: &mut clap::Command) {
    let name = command.get_name().to_owned();
    clap_complete::generate(args.shell, command, name, &mut std::io::stdout());
}
