//! Turning a classifier's output row into ranked classes.

/// One ranked class: its index in the output and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Class {
    pub index: usize,
    pub score: f32,
}

/// The `k` highest scores in `scores`, best first; ties keep the lower index first.
/// NaN scores rank last.
pub fn top_k(scores: &[f32], k: usize) -> Vec<Class> {
    let mut best: Vec<Class> = Vec::with_capacity(k.min(scores.len()) + 1);
    for (index, &score) in scores.iter().enumerate() {
        let score_rank = if score.is_nan() {
            f32::NEG_INFINITY
        } else {
            score
        };
        if best.len() == k && best.last().is_none_or(|last| last.score >= score_rank) {
            continue;
        }
        let at = best.partition_point(|c| c.score >= score_rank);
        best.insert(
            at,
            Class {
                index,
                score: score_rank,
            },
        );
        best.truncate(k);
    }
    best
}

/// Replaces `scores` with their softmax, computed stably.
pub fn softmax_in_place(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    for s in scores.iter_mut() {
        *s /= sum;
    }
}

/// Whether `scores` already are probabilities: all in `[0, 1]` and summing to 1 (±1%).
pub fn is_probability_distribution(scores: &[f32]) -> bool {
    let sum: f32 = scores.iter().sum();
    scores.iter().all(|s| (0.0..=1.0).contains(s)) && (sum - 1.0).abs() < 0.01
}

/// The `k` most probable classes of a classifier's scores, best first, with
/// probabilities: the softmax is applied when `softmax` says so or, when it says
/// nothing, unless the scores already are probabilities. The one ranking of `/classify`
/// and `ferroserve classify`.
pub fn rank(mut scores: Vec<f32>, k: usize, softmax: Option<bool>) -> Vec<Class> {
    if softmax.unwrap_or_else(|| !is_probability_distribution(&scores)) {
        softmax_in_place(&mut scores);
    }
    top_k(&scores, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_ranks_best_first() {
        let scores = [0.1, 0.7, -3.0, 0.7, 2.0, f32::NAN];
        let top: Vec<usize> = top_k(&scores, 3).iter().map(|c| c.index).collect();
        assert_eq!(top, [4, 1, 3]);
        assert_eq!(top_k(&scores, 0), []);
        assert_eq!(top_k(&scores, 100).len(), scores.len());
        assert_eq!(top_k(&scores, 100).last().unwrap().index, 5);
    }

    #[test]
    fn top_k_matches_a_full_sort() {
        let scores: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 1009) as f32 / 10.0)
            .collect();
        let mut sorted: Vec<usize> = (0..scores.len()).collect();
        sorted.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let top: Vec<usize> = top_k(&scores, 10).iter().map(|c| c.index).collect();
        assert_eq!(top, sorted[..10]);
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut scores = [1000.0, 1001.0, 999.0];
        softmax_in_place(&mut scores);
        assert!(is_probability_distribution(&scores));
        assert!(scores[1] > scores[0] && scores[0] > scores[2]);
        assert!(!is_probability_distribution(&[3.0, -1.0]));
    }

    #[test]
    fn rank_applies_the_softmax_only_to_scores_that_need_it() {
        let logits = vec![2.0, 0.0, 1.0];
        let ranked = rank(logits, 2, None);
        assert_eq!(ranked.iter().map(|c| c.index).collect::<Vec<_>>(), [0, 2]);
        assert!((ranked[0].score - 0.665).abs() < 1e-3, "{ranked:?}");
        let probabilities = vec![0.2, 0.5, 0.3];
        assert_eq!(rank(probabilities.clone(), 1, None)[0].score, 0.5);
        assert!(rank(probabilities, 1, Some(true))[0].score < 0.5);
    }
}
