//! How many probes may be in flight at once: bounded by the descriptor
//! limit, so `socket(2)` never fails with `EMFILE`, and narrowed when
//! answers get lost.

/// The most probes in flight, whatever the descriptor limit: enough to
/// keep a 100 ms path busy at 40,000 ports a second (RustScan's default
/// batch is 4,500).
pub const MAX_PARALLEL: usize = 4096;

/// The fewest probes in flight the window narrows to.
const MIN_PARALLEL: usize = 16;

/// The window of probes in flight.
///
/// 1. It starts at its ceiling: [`parallel_for_nofile`] of the soft
///    `RLIMIT_NOFILE` (each probe holds one descriptor), or what
///    `--parallel` asks.
/// 2. An answer to a retry means the first attempt or its answer was
///    lost: the network (or an ICMP rate limit) is saturated, so the
///    window halves, as TCP's congestion window does.
/// 3. Every other answer widens it by one, back up to the ceiling.
/// 4. A resource error (`EMFILE`, `ENOBUFS`, no free local port) lowers
///    the ceiling to what was in flight when it happened: the probe is
///    tried again once another has finished, never reported.
#[derive(Debug, Clone)]
pub struct Window {
    size: usize,
    ceiling: usize,
}

impl Window {
    /// A window of `ceiling` probes (at least 1).
    pub fn new(ceiling: usize) -> Window {
        let ceiling = ceiling.max(1);
        Window {
            size: ceiling,
            ceiling,
        }
    }

    /// How many probes may be in flight now.
    pub fn size(&self) -> usize {
        self.size
    }

    /// An answer to a first attempt.
    pub fn answered(&mut self) {
        self.size = (self.size + 1).min(self.ceiling);
    }

    /// An answer to a retry: something was lost.
    pub fn lost(&mut self) {
        self.size = (self.size / 2).max(MIN_PARALLEL.min(self.ceiling));
    }

    /// A resource error with `in_flight` probes out.
    pub fn exhausted(&mut self, in_flight: usize) {
        self.ceiling = in_flight.max(1);
        self.size = self.size.min(self.ceiling);
    }
}

/// The default ceiling under a soft descriptor limit of `nofile`: the
/// limit less a reserve for standard streams, the runtime's own
/// descriptors and the resolver (an eighth, at least 16 and at most 64),
/// and at most [`MAX_PARALLEL`]: 224 under `ulimit -n 256`, 960 under
/// 1024.
pub fn parallel_for_nofile(nofile: u64) -> usize {
    let reserve = (nofile / 8).clamp(16, 64);
    let usable = usize::try_from(nofile.saturating_sub(reserve)).unwrap_or(usize::MAX);
    usable.clamp(1, MAX_PARALLEL)
}

/// The default ceiling for this process: the soft `RLIMIT_NOFILE`, first
/// raised to the hard limit where it is lower, through
/// [`parallel_for_nofile`].
pub fn default_parallel() -> usize {
    let nofile = crate::server::limits::raise_nofile_limit().unwrap_or_else(|_| {
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| soft)
    });
    parallel_for_nofile(nofile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_leaves_descriptors_for_the_process() {
        assert_eq!(parallel_for_nofile(256), 224);
        assert_eq!(parallel_for_nofile(1024), 960);
        assert_eq!(parallel_for_nofile(64), 48);
        assert_eq!(parallel_for_nofile(10), 1);
        assert_eq!(parallel_for_nofile(1 << 20), MAX_PARALLEL);
    }

    #[test]
    fn losses_halve_the_window_and_answers_regrow_it() {
        let mut window = Window::new(1000);
        window.lost();
        assert_eq!(window.size(), 500);
        for _ in 0..10 {
            window.lost();
        }
        assert_eq!(window.size(), MIN_PARALLEL);
        for _ in 0..2000 {
            window.answered();
        }
        assert_eq!(window.size(), 1000);
    }

    #[test]
    fn a_resource_error_lowers_the_ceiling_for_good() {
        let mut window = Window::new(1000);
        window.exhausted(300);
        assert_eq!(window.size(), 300);
        for _ in 0..2000 {
            window.answered();
        }
        assert_eq!(window.size(), 300);
        window.exhausted(0);
        assert_eq!(window.size(), 1);
    }
}
