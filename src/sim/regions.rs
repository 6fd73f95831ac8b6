//! The regions the simulator knows: Fly's public region codes. Machine
//! creates, IP assignments and fault rules name regions from this list.

/// Region codes the simulator accepts (Fly's public regions).
pub const REGIONS: &[&str] = &[
    "ams", "arn", "atl", "bog", "bom", "bos", "cdg", "den", "dfw", "ewr", "eze", "fra", "gdl",
    "gig", "gru", "hkg", "iad", "jnb", "lax", "lhr", "mad", "mia", "nrt", "ord", "otp", "phx",
    "qro", "scl", "sea", "sin", "sjc", "syd", "waw", "yul", "yyz",
];

/// Whether `region` is one of [`REGIONS`].
pub fn is_known(region: &str) -> bool {
    REGIONS.contains(&region)
}
