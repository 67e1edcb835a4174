//! Writing results to stdout without dying on a closed pipe (`ccbt-uring info x | head`).

use std::io::{ErrorKind, Write};

/// Prints `text` to stdout. A reader that went away is not an error worth a panic: the
/// output is simply not wanted any more.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() != ErrorKind::BrokenPipe {
            eprintln!("ccbt-uring: cannot write to stdout: {e}");
        }
    }
}

/// Prints `value` as pretty JSON and a newline.
pub fn print_json(value: &impl serde::Serialize) {
    let mut text = serde_json::to_string_pretty(value).expect("report types serialise");
    text.push('\n');
    print(&text);
}
