//! The generation log: KaNN-style `[INFO] ===> SECTION` lines collected for
//! `log.txt` and echoed to stdout unless `--quiet`, with spinners on the long
//! phases when stdout is a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// The log of one `kann generate`.
pub struct GenLog {
    text: String,
    echo: bool,
    spinners: bool,
}

impl GenLog {
    /// A log that prints as it goes when `echo` is set.
    pub fn new(echo: bool) -> GenLog {
        GenLog { text: String::new(), echo, spinners: echo && std::io::stdout().is_terminal() }
    }

    /// Everything logged so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Opens a section: a blank line, then `[INFO] ===> TITLE`.
    pub fn section(&mut self, title: &str) {
        self.raw("");
        self.raw(&format!("[INFO] ===> {title}"));
    }

    /// One information line of the current section.
    pub fn info(&mut self, line: impl AsRef<str>) {
        self.raw(&format!("[INFO]   {}", line.as_ref()));
    }

    /// Every line of `text` as an information line.
    pub fn block(&mut self, text: &str) {
        for line in text.lines() {
            self.info(line);
        }
    }

    /// A warning line.
    pub fn warn(&mut self, line: impl AsRef<str>) {
        self.raw(&format!("[WARNING] {}", line.as_ref()));
    }

    /// A line without prefix.
    pub fn raw(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
        if self.echo {
            println!("{line}");
        }
    }

    /// Runs `f` under a spinner labelled `label` (terminal only) and
    /// returns its result and how long it took.
    pub fn phase<T>(&self, label: &str, f: impl FnOnce() -> T) -> (T, Duration) {
        let start = Instant::now();
        let bar = self.spinners.then(|| spinner(label));
        let out = f();
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        (out, start.elapsed())
    }
}

fn spinner(label: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}]") {
        bar.set_style(style);
    }
    bar.set_message(label.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// `12.3 ms`.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
