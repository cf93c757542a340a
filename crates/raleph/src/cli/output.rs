//! Output: `--json` prints one JSON document on stdout (keys documented per verb and kept
//! stable); otherwise the verb prints text.

use std::io::Write;

use serde_json::Value;

/// `println!` that ends the process quietly when stdout is closed (`raleph ... | head`),
/// as a default SIGPIPE would, instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write_line(format_args!($($arg)*))
    };
}
pub(crate) use out;

pub fn write_line(args: std::fmt::Arguments) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// Prints `value` as JSON when `json`, else runs `human`.
pub fn print(json: bool, value: &Value, human: impl FnOnce()) -> anyhow::Result<()> {
    if json {
        out!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human();
    }
    Ok(())
}

/// One JSON document on one line (for streams: `message watch --json`).
pub fn line(value: &Value) -> anyhow::Result<()> {
    // Flushed each time, so a reader of a pipe sees each message as it comes.
    out!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Reads JSON given on the command line, or from stdin when it is `-`.
pub fn json_argument(text: &str, what: &str) -> anyhow::Result<Value> {
    let text = if text == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        text.to_owned()
    };
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{what} is not valid JSON: {e}"))
}

/// Turns away text that is no item hash before asking a node about it.
pub fn item_hash(text: &str) -> anyhow::Result<()> {
    raleph_message::ItemHash::parse(text)
        .map(drop)
        .map_err(|_| {
            anyhow::anyhow!("{text:?} is not an item hash (64 hex digits, or an IPFS CID)")
        })
}
