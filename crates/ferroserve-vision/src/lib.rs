//! Image decoding and preprocessing into caller-owned tensor buffers.
