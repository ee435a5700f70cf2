//! Errors of the browser module, worded for the person using the client. They reach
//! JavaScript as thrown strings (the `Display` text).

use wasm_bindgen::JsValue;

/// Why a call into the module failed.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The passphrase does not open the key file (or the file was changed).
    #[error("wrong passphrase for this key file (or the file was altered)")]
    WrongPassphrase,
    /// An empty passphrase was given.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// The text is not a readable Basis key file.
    #[error("this is not a Basis user key file that can be read: {0}")]
    KeyFile(String),
    /// The key file could not be written.
    #[error("cannot seal the user key: {0}")]
    Seal(String),
    /// New secrets could not be made.
    #[error("cannot make a new user key: {0}")]
    NewUser(String),
    /// A text argument is not what it should be.
    #[error("{what}: {why}")]
    BadInput {
        /// Which argument.
        what: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The node's description of a room (or another reply) cannot be read.
    #[error("the node's reply cannot be read: {0}")]
    BadReply(String),
    /// Event bytes do not decode or do not verify.
    #[error("the event does not verify: {0}")]
    BadEvent(#[from] basis_core::EventError),
    /// The event belongs to another room than the one asked about.
    #[error("the event belongs to room {actual}, not to room {expected}")]
    OtherRoom {
        /// Short id of the room asked about.
        expected: String,
        /// Short id of the event's room.
        actual: String,
    },
    /// A plain message was about to be signed for an encrypted room.
    #[error("this room is encrypted: encrypt the message with RoomCrypto.encrypt first")]
    MustEncrypt,
    /// The event is not an encrypted message.
    #[error("this event is not an encrypted message")]
    NotEncrypted,
    /// Encryption failed.
    #[error("cannot encrypt the message: {0}")]
    Encrypt(String),
    /// Decryption failed, or the key is not there yet.
    #[error("the message {0}")]
    Unreadable(String),
    /// A file cannot be sealed or opened.
    #[error("the file cannot be used: {0}")]
    File(String),
    /// Saved room keys cannot be opened.
    #[error("the saved room keys cannot be read: {0}")]
    State(String),
    /// A message kept in the browser until it is sent cannot be sealed or opened.
    #[error("a message kept in this browser cannot be read: {0}")]
    Kept(String),
}

impl WebError {
    /// A bad argument.
    pub(crate) fn input(what: &'static str, why: impl ToString) -> WebError {
        WebError::BadInput {
            what,
            why: why.to_string(),
        }
    }
}

impl From<WebError> for JsValue {
    fn from(e: WebError) -> JsValue {
        JsValue::from_str(&e.to_string())
    }
}
