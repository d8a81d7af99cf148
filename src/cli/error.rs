//! The command line's one error: what failed and the causes that explain it, printed on one line.

use std::error::Error;
use std::fmt;
use std::io;

/// Anything that explains a failure.
pub type Cause = Box<dyn Error + Send + Sync + 'static>;

/// An error for the person at the terminal, printed by `main` as `error: what: because: because`
/// (exit code 1).
///
/// It deliberately does not implement [`std::error::Error`]: that is what lets every error convert
/// into it with `?` (as `anyhow::Error` does) while its source chain is kept, not flattened.
pub struct CliError {
    what: Option<String>,
    cause: Option<Cause>,
}

impl CliError {
    /// A failure the command found itself, with nothing underneath it.
    pub fn msg(what: impl Into<String>) -> Self {
        CliError {
            what: Some(what.into()),
            cause: None,
        }
    }

    /// `what` failed because of `cause` (and of whatever caused that).
    pub fn context(what: impl Into<String>, cause: impl Into<Cause>) -> Self {
        CliError {
            what: Some(what.into()),
            cause: Some(cause.into()),
        }
    }

    /// Did the reader of our output go away (`| head -1`)? Then there is nobody left to tell,
    /// and the command ends quietly.
    pub fn is_broken_pipe(&self) -> bool {
        self.causes().any(|e| {
            e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
        })
    }

    /// The cause and its sources, outermost first.
    fn causes(&self) -> impl Iterator<Item = &(dyn Error + 'static)> {
        let first = self.cause.as_deref().map(|e| e as &(dyn Error + 'static));
        std::iter::successors(first, |&e| e.source())
    }
}

impl<E: Error + Send + Sync + 'static> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError {
            what: None,
            cause: Some(Box::new(e)),
        }
    }
}

/// Adds what was being done to an error on its way up.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, CliError>;
}

impl<T, E: Into<Cause>> Context<T> for Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, CliError> {
        self.map_err(|e| CliError::context(what(), e))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = self
            .what
            .iter()
            .cloned()
            .chain(self.causes().map(|e| e.to_string()));
        let mut shown = String::new();
        for part in parts {
            // Many errors already print their source (`database: {0}`): say each cause once.
            if part.is_empty() || shown.contains(&part) {
                continue;
            }
            if !shown.is_empty() {
                shown.push_str(": ");
            }
            shown.push_str(&part);
        }
        f.write_str(&shown)
    }
}

/// The whole chain, as `Display` shows it: a `{:?}` in a log or a test says as much.
impl fmt::Debug for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{what}")]
    struct Layer {
        what: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn chain(parts: &[&'static str]) -> Option<Box<Layer>> {
        parts
            .iter()
            .rev()
            .fold(None, |source, what| Some(Box::new(Layer { what, source })))
    }

    #[test]
    fn an_error_prints_what_failed_and_every_cause_once() {
        let cases: [(CliError, &str); 5] = [
            (CliError::msg("run \"x\" not found"), "run \"x\" not found"),
            (
                (*chain(&["database", "disk full"]).unwrap()).into(),
                "database: disk full",
            ),
            (
                CliError::context(
                    "cannot open the database",
                    *chain(&["io", "denied"]).unwrap(),
                ),
                "cannot open the database: io: denied",
            ),
            (
                // A layer that already printed its source does not repeat it.
                CliError::context(
                    "importing",
                    *chain(&["database: timed out", "timed out"]).unwrap(),
                ),
                "importing: database: timed out",
            ),
            (
                Err::<(), _>(io::Error::other("gone"))
                    .context(|| "reading x".to_string())
                    .unwrap_err(),
                "reading x: gone",
            ),
        ];
        for (error, printed) in cases {
            assert_eq!(error.to_string(), printed);
            assert_eq!(format!("{error:?}"), printed);
        }
    }

    #[test]
    fn a_broken_pipe_is_recognised_anywhere_in_the_chain() {
        let pipe = || io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(CliError::from(pipe()).is_broken_pipe());
        assert!(CliError::context("writing", pipe()).is_broken_pipe());
        assert!(!CliError::from(io::Error::from(io::ErrorKind::NotFound)).is_broken_pipe());
        assert!(!CliError::msg("broken pipe").is_broken_pipe());
    }
}
