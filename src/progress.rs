//! Progress bars on stderr: drawn only on a terminal (indicatif hides them otherwise), never
//! when quiet.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar counting bytes (with rate and ETA).
pub fn bytes(total: u64, quiet: bool) -> ProgressBar {
    bar(
        total,
        quiet,
        "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
    )
}

/// A bar counting items, e.g. `tensors` or `images`.
pub fn items(total: u64, quiet: bool, unit: &str) -> ProgressBar {
    bar(
        total,
        quiet,
        &format!("{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit}, ETA {{eta}}"),
    )
}

fn bar(total: u64, quiet: bool, template: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb
}
