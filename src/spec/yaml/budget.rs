//! The bounds of YAML parsing: nesting depth and nodes per document, and the
//! [`Budget`] of nodes and scalar bytes one load (every document of every
//! input) may build, alias uses counted as copies.

use crate::spec::ParseOptions;
use crate::spec::error::SpecError;

/// Deepest nesting we build; deeper documents are rejected rather than risk
/// exhausting the stack in the recursive passes that follow.
pub(crate) const MAX_DEPTH: usize = 64;
/// Upper bound on nodes per document, counting alias expansions, so a
/// "billion laughs" document cannot blow up memory.
pub(crate) const MAX_NODES: usize = 100_000;
/// Upper bound on nodes in one load (all documents of all files).
pub const MAX_LOAD_NODES: usize = 1_000_000;
/// Upper bound on bytes of scalar text (keys and values, alias uses counted as
/// copies) in one load. The tree, the raw types and the model each hold about
/// one copy of this text, so a load stays well under 256 MB.
pub const MAX_LOAD_BYTES: usize = 32 * 1024 * 1024;

/// What one load may still build: nodes and bytes of scalar text, shared by
/// every document of every file in the load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    nodes_left: usize,
    bytes_left: usize,
    max_nodes: usize,
    max_bytes: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(MAX_LOAD_NODES, MAX_LOAD_BYTES)
    }
}

impl Budget {
    /// The budget of one load under `opts`: the defaults, with room for at
    /// least two copies of the largest file allowed (so raising
    /// `max_file_bytes` for one huge file lets it load).
    pub fn for_options(opts: &ParseOptions) -> Self {
        let file = usize::try_from(opts.max_file_bytes).unwrap_or(usize::MAX);
        Self::new(MAX_LOAD_NODES, MAX_LOAD_BYTES.max(file.saturating_mul(2)))
    }

    pub fn new(max_nodes: usize, max_bytes: usize) -> Self {
        Self {
            nodes_left: max_nodes,
            bytes_left: max_bytes,
            max_nodes,
            max_bytes,
        }
    }

    /// Takes `nodes` and `bytes` from the budget, or says which limit they
    /// would cross (and takes nothing).
    pub(super) fn take(&mut self, nodes: usize, bytes: usize) -> Result<(), SpecError> {
        if nodes > self.nodes_left {
            return Err(SpecError::LoadTooManyNodes {
                max: self.max_nodes,
            });
        }
        if bytes > self.bytes_left {
            return Err(SpecError::LoadTooManyBytes {
                max: self.max_bytes,
            });
        }
        self.nodes_left -= nodes;
        self.bytes_left -= bytes;
        Ok(())
    }
}
