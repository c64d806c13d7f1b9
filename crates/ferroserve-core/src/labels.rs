//! Class labels of a classification output: Triton's `label_filename`, one label per line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A labels file that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    /// The file could not be read.
    #[error("cannot read labels file {}: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not UTF-8 text.
    #[error("labels file {} is not UTF-8 text (line {line})", file.display())]
    NotUtf8 { file: PathBuf, line: usize },
}

/// Class labels, indexed by class: the label of class `i` is line `i + 1` of the file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Labels {
    /// Shared, so that an answer names its classes without copying their text.
    labels: Vec<Arc<str>>,
}

impl Labels {
    /// Labels from text: one per line, `\n` or `\r\n` line ends, a final line end optional.
    /// Empty lines inside the text are kept as empty labels so indices stay aligned.
    pub fn parse(text: &str) -> Self {
        Labels {
            labels: text.lines().map(Arc::from).collect(),
        }
    }

    /// Reads the labels file `file`, named `shown` in errors.
    pub fn load(file: &Path, shown: &Path) -> Result<Self, LabelsError> {
        let bytes = std::fs::read(file).map_err(|source| LabelsError::Read {
            file: shown.to_path_buf(),
            source,
        })?;
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Self::parse(&text)),
            Err(e) => {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
                Err(LabelsError::NotUtf8 {
                    file: shown.to_path_buf(),
                    line,
                })
            }
        }
    }

    /// The label of class `index`, if the file has that many lines.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.labels.get(index).map(|label| &**label)
    }

    /// The label of class `index`, shared rather than copied.
    pub fn shared(&self, index: usize) -> Option<Arc<str>> {
        self.labels.get(index).cloned()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_label_per_line_with_optional_final_newline() {
        for text in [
            "cat\ndog\nbird",
            "cat\ndog\nbird\n",
            "cat\r\ndog\r\nbird\r\n",
        ] {
            let labels = Labels::parse(text);
            assert_eq!(labels.len(), 3, "{text:?}");
            assert_eq!(labels.get(0), Some("cat"));
            assert_eq!(labels.get(2), Some("bird"));
            assert_eq!(labels.get(3), None);
        }
    }

    #[test]
    fn inner_empty_lines_keep_their_index() {
        let labels = Labels::parse("a\n\nc\n");
        assert_eq!(labels.len(), 3);
        assert_eq!(labels.get(1), Some(""));
        assert_eq!(labels.get(2), Some("c"));
    }

    #[test]
    fn empty_text_has_no_labels() {
        assert!(Labels::parse("").is_empty());
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.txt");
        let err = Labels::load(&missing, &missing).expect_err("missing file");
        assert!(err.to_string().contains("missing.txt"), "{err}");

        let bad = dir.path().join("bad.txt");
        std::fs::write(&bad, b"ok\n\xff\xfe\n").expect("write");
        let err = Labels::load(&bad, &bad).expect_err("not utf-8");
        assert!(matches!(err, LabelsError::NotUtf8 { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("bad.txt"), "{err}");
    }
}
