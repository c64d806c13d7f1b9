//! Triton's `reshape`: a tensor's shape as requests and responses carry it (`dims`) and
//! as the model takes or gives it (`reshape.shape`), and the mapping between the two.

/// The two shapes of a tensor with a `reshape`, batch dimension excluded, `-1` for a
/// dimension of any size. The shapes hold the same number of elements: they have as many
/// `-1` dimensions, and the fixed dimensions before, between and after them multiply to
/// the same sizes ([`ShapeMap::new`] checks it), so the `k`-th `-1` of one has the size of
/// the `k`-th `-1` of the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMap {
    /// What requests and responses carry: the configuration's `dims`.
    pub dims: Vec<i64>,
    /// What the model takes or gives: `reshape.shape`.
    pub model: Vec<i64>,
}

impl ShapeMap {
    /// The mapping between `dims` and `model`, or why the two cannot hold the same
    /// elements.
    pub fn new(dims: &[i64], model: &[i64]) -> Result<ShapeMap, String> {
        let (from, to) = (segments(dims), segments(model));
        if from != to {
            return Err(format!(
                "reshape {model:?} does not hold the same elements as dims {dims:?}: both need \
                 as many -1 dimensions, with fixed dimensions of the same product around each"
            ));
        }
        Ok(ShapeMap {
            dims: dims.to_vec(),
            model: model.to_vec(),
        })
    }

    /// The model's shape for a tensor of `shape` (which fits `dims`); `None` when it does
    /// not fit.
    pub fn to_model(&self, shape: &[usize]) -> Option<Vec<usize>> {
        map(&self.dims, &self.model, shape)
    }

    /// The shape a response carries for a model tensor of `shape` (which fits the model's
    /// shape); `None` when it does not fit.
    pub fn to_dims(&self, shape: &[usize]) -> Option<Vec<usize>> {
        map(&self.model, &self.dims, shape)
    }
}

/// The products of the fixed dimensions before, between and after the `-1` dimensions.
fn segments(dims: &[i64]) -> Vec<i64> {
    let mut segments = vec![1i64];
    for &d in dims {
        if d < 0 {
            segments.push(1);
        } else if let Some(last) = segments.last_mut() {
            *last = last.saturating_mul(d);
        }
    }
    segments
}

/// `shape`, which fits the pattern `from`, as a shape of the pattern `to`: each `-1` of
/// `to` takes the size of the `-1` of `from` of the same rank.
fn map(from: &[i64], to: &[i64], shape: &[usize]) -> Option<Vec<usize>> {
    if shape.len() != from.len() {
        return None;
    }
    let mut variable = Vec::new();
    for (&want, &got) in from.iter().zip(shape) {
        if want < 0 {
            variable.push(got);
        } else if want as usize != got {
            return None;
        }
    }
    let mut variable = variable.into_iter();
    to.iter()
        .map(|&d| match usize::try_from(d) {
            Ok(fixed) => Some(fixed),
            Err(_) => variable.next(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_dimension_added_by_the_model_maps_both_ways() {
        let map = ShapeMap::new(&[3, 224, 224], &[1, 3, 224, 224]).unwrap();
        assert_eq!(map.to_model(&[3, 224, 224]), Some(vec![1, 3, 224, 224]));
        assert_eq!(map.to_dims(&[1, 3, 224, 224]), Some(vec![3, 224, 224]));
        assert_eq!(map.to_model(&[3, 224, 225]), None);
        assert_eq!(map.to_dims(&[2, 3, 224, 224]), None);
    }

    #[test]
    fn dynamic_dimensions_keep_their_sizes_in_order() {
        let map = ShapeMap::new(&[-1, 4, 2], &[-1, 8]).unwrap();
        assert_eq!(map.to_model(&[5, 4, 2]), Some(vec![5, 8]));
        assert_eq!(map.to_dims(&[5, 8]), Some(vec![5, 4, 2]));
        let scalar = ShapeMap::new(&[1], &[]).unwrap();
        assert_eq!(scalar.to_model(&[1]), Some(vec![]));
        assert_eq!(scalar.to_dims(&[]), Some(vec![1]));
    }

    #[test]
    fn shapes_of_different_sizes_are_refused() {
        assert!(ShapeMap::new(&[3, 224, 224], &[1, 3, 224]).is_err());
        assert!(ShapeMap::new(&[-1, 4], &[4]).is_err());
        assert!(ShapeMap::new(&[-1, 4], &[2, 2, -1]).is_err());
        assert!(ShapeMap::new(&[2, -1, 3], &[2, -1, 3, 1]).is_ok());
    }
}
