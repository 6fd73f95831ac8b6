//! Keyed client-side rate limiting that follows Fly's published limits.
