//! `rostergate bench …`: the benchmarks live in their own binary, `rostergate-bench`, which the
//! gateway never links. This runs the one beside this program with the arguments given and
//! exits as it does (`rostergate bench lti --postgres-url …` is `rostergate-bench lti …`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use super::{CliError, CliResult};

/// The benchmarks' binary, built beside `rostergate` by `cargo build --release`.
pub const BENCH_EXE: &str = "rostergate-bench";

pub fn run(args: &[OsString]) -> CliResult {
    let me =
        std::env::current_exe().map_err(|e| CliError::context("cannot locate this program", e))?;
    let exe = beside(&me);
    if !exe.is_file() {
        return Err(CliError::msg(format!(
            "no {BENCH_EXE} at {}: build it with `cargo build --release` (release images ship \
             only the gateway)",
            exe.display()
        )));
    }
    let status = Command::new(&exe)
        .args(args)
        .status()
        .map_err(|e| CliError::context(format!("cannot run {}", exe.display()), e))?;
    Ok(ExitCode::from(exit_code(status.code())))
}

/// `rostergate-bench` in the folder of `me`.
fn beside(me: &Path) -> PathBuf {
    me.with_file_name(format!("{BENCH_EXE}{}", std::env::consts::EXE_SUFFIX))
}

/// The benchmark's exit code as ours; 1 when it has none (ended by a signal) or one we cannot
/// pass on.
fn exit_code(code: Option<i32>) -> u8 {
    code.and_then(|c| u8::try_from(c).ok()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benchmark_binary_is_the_one_beside_this_program() {
        let found = beside(Path::new("/opt/rostergate/bin/rostergate"));
        let expected = format!(
            "/opt/rostergate/bin/rostergate-bench{}",
            std::env::consts::EXE_SUFFIX
        );
        assert_eq!(found, PathBuf::from(expected));
    }

    #[test]
    fn its_exit_code_is_passed_through() {
        assert_eq!(exit_code(Some(0)), 0);
        assert_eq!(exit_code(Some(1)), 1);
        assert_eq!(exit_code(Some(2)), 2);
        // Killed by a signal, or a code outside 0..=255.
        assert_eq!(exit_code(None), 1);
        assert_eq!(exit_code(Some(-1)), 1);
        assert_eq!(exit_code(Some(256)), 1);
    }
}
