//! How a socket's life ends: the close code for a read error, and the close handshake that
//! lets the client see that code rather than a reset.

use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::connection::close;

/// How long a closing socket's writer may take to deliver the close frame.
pub(crate) const CLOSE_FLUSH: Duration = Duration::from_secs(2);
/// How long we wait for the client's Close after sending ours. Shorter at shutdown, where
/// every socket waits at once and a restart should be quick.
const CLOSE_HANDSHAKE: Duration = Duration::from_millis(500);
const CLOSE_HANDSHAKE_SHUTDOWN: Duration = Duration::from_millis(100);

/// After our close frame (if we are the ones closing), waits briefly for the client's, and
/// lets the writer flush.
pub(crate) async fn finish(
    mut stream: BoxStream<'static, Result<Message, axum::Error>>,
    mut writer: tokio::task::JoinHandle<()>,
    close_with: Option<(u16, &'static str)>,
) {
    if let Some(reason) = close_with {
        let wait = if reason.0 == close::GOING_AWAY {
            CLOSE_HANDSHAKE_SHUTDOWN
        } else {
            CLOSE_HANDSHAKE
        };
        // RFC 6455 close handshake: keep reading (and discarding) until the client's Close,
        // so a client still flushing pongs or frames sees our code, not a broken pipe.
        let handshake_ends = tokio::time::Instant::now() + wait;
        let _ = tokio::time::timeout(wait, async {
            while let Some(Ok(msg)) = stream.next().await {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
        if reason.0 == close::TOO_BIG {
            // After an oversize message the stream has ended, but the rest of the message is
            // still arriving, unread: closing now would make the kernel reset the connection,
            // and a reset loses our close frame (Node's `ws` saw 1006, not 1009). So the
            // connection stays open for the handshake's wait, long enough for the client to
            // read 1009.
            if tokio::time::timeout(CLOSE_FLUSH, &mut writer)
                .await
                .is_err()
            {
                writer.abort();
            }
            tokio::time::sleep_until(handshake_ends).await;
            return;
        }
    }
    if tokio::time::timeout(CLOSE_FLUSH, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

/// The close code for a read error: oversize messages 1009, invalid UTF-8 1007, anything
/// else 1002.
pub(crate) fn close_for(e: axum::Error) -> (u16, &'static str) {
    match e.into_inner().downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => (close::TOO_BIG, "message too big"),
        Some(tungstenite::Error::Utf8(_)) => (close::INVALID_DATA, "invalid UTF-8"),
        _ => (close::PROTOCOL_ERROR, "protocol error"),
    }
}
