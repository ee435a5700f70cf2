//! Whether a room's files travel to every node or only when asked.

/// Rooms with at most this many members are [`FilePolicy::Eager`] unless configured
/// otherwise: copying a file to every node is cheap when few people share the room, and makes
/// it readable offline anywhere.
pub const EAGER_MAX_MEMBERS: usize = 64;

/// A room's policy for files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilePolicy {
    /// Every node fetches every file of the room as soon as it has the message naming it.
    Eager,
    /// A node fetches a file only when one of its clients asks for it; until then it holds
    /// only the message.
    Lazy,
}

impl FilePolicy {
    /// The default for a room of `members` members.
    pub fn default_for(members: usize) -> FilePolicy {
        if members <= EAGER_MAX_MEMBERS {
            FilePolicy::Eager
        } else {
            FilePolicy::Lazy
        }
    }

    /// Whether a node starts fetching a file when the message naming it is stored
    /// (`asked`: a client of this node asked for it).
    pub fn fetch(self, asked: bool) -> bool {
        asked || self == FilePolicy::Eager
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_rooms_are_eager_and_lazy_rooms_fetch_when_asked() {
        assert_eq!(FilePolicy::default_for(3), FilePolicy::Eager);
        assert_eq!(
            FilePolicy::default_for(EAGER_MAX_MEMBERS + 1),
            FilePolicy::Lazy
        );
        assert!(FilePolicy::Eager.fetch(false));
        assert!(!FilePolicy::Lazy.fetch(false));
        assert!(FilePolicy::Lazy.fetch(true));
    }
}
