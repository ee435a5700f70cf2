//! Protocol limits. Every node enforces the same numbers, so they are constants of the
//! protocol, not configuration: a node that accepted more than its peers would store events
//! the rest of the federation refuses.

/// Largest encoded event (content and signature), in bytes.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// Most parents an event may name.
pub const MAX_PARENTS: usize = 16;
/// Longest room name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest reaction key (an emoji or a short word), in bytes of UTF-8.
pub const MAX_REACTION_BYTES: usize = 64;
/// Most sealed keys in one key-share event.
pub const MAX_SEALED_KEYS: usize = 256;
