//! The reference results every test checks outputs against: the sample images of
//! `tests/data/images`, their preprocessed input tensors (`<stem>.input.f32`, 3x224x224
//! little-endian f32) and the top-5 the bundled efficientnet-lite0 gives them
//! (`expected.json`, computed independently with onnxruntime in Python; see
//! tests/data/README.md).
//!
//! There is one check, [`Reference::check_logits`], with one tolerance, [`TOLERANCE`]:
//! the five reference classes in the reference order, each with its probability within
//! the tolerance.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// How far a probability may be from the reference one.
pub const TOLERANCE: f32 = 0.01;

/// One class of a reference top-5.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Expected {
    pub index: usize,
    pub label: String,
    pub prob: f32,
}

#[derive(Deserialize)]
struct Entry {
    top5: Vec<Expected>,
}

/// The sample images with their reference inputs and top-5.
pub struct Reference {
    folder: PathBuf,
    top5: HashMap<String, Vec<Expected>>,
}

impl Reference {
    /// The samples of this checkout (`tests/data/images`), for tests and benches.
    pub fn bundled() -> Reference {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/images");
        Reference::load(&folder).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Reads `expected.json` in `folder`.
    pub fn load(folder: &Path) -> Result<Reference, String> {
        let file = folder.join("expected.json");
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let parse_error = |e: serde_json::Error| format!("cannot parse {}: {e}", file.display());
        let entries: HashMap<String, serde_json::Value> =
            serde_json::from_str(&text).map_err(parse_error)?;
        let mut top5 = HashMap::new();
        // Besides one entry per image, the file holds a note on how it was made.
        for (image, entry) in entries.into_iter().filter(|(_, v)| v.is_object()) {
            let entry: Entry = serde_json::from_value(entry).map_err(parse_error)?;
            top5.insert(image, entry.top5);
        }
        Ok(Reference {
            folder: folder.to_path_buf(),
            top5,
        })
    }

    /// The folder of the images.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The image names (`cat.jpg`, ...), sorted.
    pub fn images(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.top5.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The encoded image file.
    pub fn encoded(&self, image: &str) -> Vec<u8> {
        read(&self.folder.join(image))
    }

    /// The preprocessed input tensor of `image`: 3x224x224 little-endian f32 bytes.
    pub fn input(&self, image: &str) -> Vec<u8> {
        let stem = image.rsplit_once('.').map_or(image, |(stem, _)| stem);
        read(&self.folder.join(format!("{stem}.input.f32")))
    }

    /// The reference top-5 of `image`, best first.
    pub fn top5(&self, image: &str) -> &[Expected] {
        self.top5
            .get(image)
            .unwrap_or_else(|| panic!("no reference for {image}"))
    }

    /// Checks one row of logits against the reference top-5 of `image`.
    pub fn check_logits(&self, image: &str, logits: &[f32]) -> Result<(), String> {
        self.check_probabilities(image, &softmax(logits))
    }

    /// Checks one row of probabilities: the reference classes rank first, in the
    /// reference order, each within [`TOLERANCE`] of its reference probability.
    pub fn check_probabilities(&self, image: &str, probabilities: &[f32]) -> Result<(), String> {
        let expected = self.top5(image);
        let mut order: Vec<usize> = (0..probabilities.len()).collect();
        order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
        for (rank, class) in expected.iter().enumerate() {
            let got = probabilities.get(class.index).copied().unwrap_or(f32::NAN);
            if order.get(rank) != Some(&class.index) {
                return Err(format!(
                    "{image}: rank {rank} should be {} ({}), got class {:?}",
                    class.index,
                    class.label,
                    order.get(rank)
                ));
            }
            if (got - class.prob).abs() >= TOLERANCE {
                return Err(format!(
                    "{image}: {} has probability {got}, reference {}",
                    class.label, class.prob
                ));
            }
        }
        Ok(())
    }
}

/// Softmax of one row, in f32.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logits whose softmax puts the reference top-5 of `image` exactly in place.
    fn reference_logits(reference: &Reference, image: &str) -> Vec<f32> {
        let mut logits = vec![f32::NEG_INFINITY; 1000];
        let top5 = reference.top5(image);
        let rest = 1.0 - top5.iter().map(|c| c.prob).sum::<f32>();
        logits.iter_mut().for_each(|l| *l = (rest / 995.0).ln());
        for class in top5 {
            logits[class.index] = class.prob.ln();
        }
        logits
    }

    #[test]
    fn the_reference_itself_passes() {
        let reference = Reference::bundled();
        assert_eq!(
            reference.images(),
            ["astronaut.png", "cat.jpg", "coffee.jpg", "motorcycle.jpg"]
        );
        for image in reference.images() {
            let logits = reference_logits(&reference, image);
            reference.check_logits(image, &logits).unwrap();
            assert_eq!(reference.input(image).len(), 3 * 224 * 224 * 4);
        }
    }

    #[test]
    fn a_swapped_order_or_a_far_probability_fails() {
        let reference = Reference::bundled();
        let top5 = reference.top5("cat.jpg").to_vec();
        let mut probabilities = vec![0.0; 1000];
        for class in &top5 {
            probabilities[class.index] = class.prob;
        }
        reference
            .check_probabilities("cat.jpg", &probabilities)
            .unwrap();

        let mut swapped = probabilities.clone();
        swapped.swap(top5[3].index, top5[4].index);
        assert!(reference.check_probabilities("cat.jpg", &swapped).is_err());

        let mut far = probabilities;
        far[top5[0].index] += 2.0 * TOLERANCE;
        assert!(reference.check_probabilities("cat.jpg", &far).is_err());
    }
}
