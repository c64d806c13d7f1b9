//! How a model's engine instances share the cores.

/// How a model's engine runs on the cores: `instances` sessions, each of `threads`
/// intra-op threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrangement {
    pub instances: usize,
    pub threads: usize,
}

impl Arrangement {
    /// What a tuner chooses among on `cores` cores: from one instance per core (most
    /// throughput when every core is busy) down to one instance on all cores (lowest
    /// latency for a lone request), halving the instances each step.
    pub fn candidates(cores: usize) -> Vec<Arrangement> {
        let cores = cores.max(1);
        std::iter::successors(Some(cores), |&n| (n > 1).then_some(n / 2))
            .map(|instances| Arrangement {
                instances,
                threads: (cores / instances).max(1),
            })
            .collect()
    }
}

impl std::fmt::Display for Arrangement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.instances, self.threads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_halve_the_instances_from_one_per_core() {
        let shapes: Vec<(usize, usize)> = Arrangement::candidates(8)
            .iter()
            .map(|a| (a.instances, a.threads))
            .collect();
        assert_eq!(shapes, [(8, 1), (4, 2), (2, 4), (1, 8)]);
        assert_eq!(Arrangement::candidates(0).len(), 1);
    }
}
