//! The one error type of the client.

/// Why a call to a node failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node answered with an error: its status and the API's
    /// `{"error": code, "message": message}`.
    #[error("the node answered {status} {code}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The stable error code, such as `invalid_request` or `unauthorized`.
        code: String,
        /// What was wrong, in the node's words.
        message: String,
    },
    /// The node could not be reached, or the connection broke.
    #[error("cannot reach the node: {0}")]
    Transport(#[from] reqwest::Error),
    /// The node answered something this client cannot read.
    #[error("unexpected answer from the node: {0}")]
    Protocol(String),
    /// The node URL is not usable.
    #[error("invalid node URL {0:?}")]
    Url(String),
    /// The TLS settings given to the client are not usable (a CA file that
    /// holds no certificate, say).
    #[error("unusable TLS settings: {0}")]
    Tls(String),
    /// A call that needs the admin token was made without one.
    #[error("this call needs the admin token; build the client with Client::with_admin_token")]
    NoAdminToken,
}

impl ClientError {
    /// The API error code, when the node answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, when the node answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Transport(e) => e.status().map(|s| s.as_u16()),
            _ => None,
        }
    }

    pub(crate) fn protocol(what: impl Into<String>) -> ClientError {
        ClientError::Protocol(what.into())
    }
}
