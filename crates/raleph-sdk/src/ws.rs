//! Following messages live over the node's websocket (`/api/ws0/messages`): the latest
//! `history` matching messages first (oldest first), then each newly processed one.

use futures::{Stream, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Client, ClientError};
use crate::filter::{MessageFilter, encode_query};

/// The frame the reference sends to ask a client to close.
const CLOSE_COMMAND: &str = "close cmd";

impl Client {
    /// Opens the messages websocket with `filter` (its page fields are not sent) and
    /// `history` recent messages first (the node's default is 10, at most 199). The stream
    /// ends when the node closes; dropping it closes the connection.
    ///
    /// `ws://` for an `http://` node, `wss://` (TLS, the web's root certificates) for an
    /// `https://` one.
    ///
    /// ```no_run
    /// use futures::StreamExt;
    /// use raleph_sdk::{Client, MessageFilter};
    ///
    /// # async fn run() -> Result<(), raleph_sdk::ClientError> {
    /// let client = Client::new("http://127.0.0.1:4024");
    /// let filter = MessageFilter { channels: vec!["TEST".into()], ..Default::default() };
    /// let mut messages = Box::pin(client.watch(&filter, Some(0)).await?);
    /// while let Some(message) = messages.next().await {
    ///     println!("{}", message?["item_hash"]);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn watch(
        &self,
        filter: &MessageFilter,
        history: Option<u32>,
    ) -> Result<impl Stream<Item = Result<Value, ClientError>> + Send + use<>, ClientError> {
        let base = self.base();
        let (scheme, rest) = if let Some(rest) = base.strip_prefix("http://") {
            ("ws", rest)
        } else if let Some(rest) = base.strip_prefix("https://") {
            ("wss", rest)
        } else {
            return Err(ClientError::WebSocket(format!(
                "{base} is not an http:// URL"
            )));
        };
        let mut query: Vec<(&str, String)> = filter
            .to_query()
            .into_iter()
            .filter(|(name, _)| *name != "pagination" && *name != "page")
            .collect();
        if let Some(history) = history {
            query.push(("history", history.to_string()));
        }
        let url = format!(
            "{scheme}://{rest}/api/ws0/messages?{}",
            encode_query(&query)
        );
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Io(io) => {
                    ClientError::WebSocket(format!("no node answers at {base}: {io}"))
                }
                tokio_tungstenite::tungstenite::Error::Http(response) => ClientError::Status {
                    status: response.status().as_u16(),
                    body: response
                        .body()
                        .as_ref()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default(),
                },
                other => ClientError::WebSocket(other.to_string()),
            })?;
        Ok(socket
            .map(|frame| match frame {
                Ok(Message::Text(text)) if text.as_str() == CLOSE_COMMAND => None,
                Ok(Message::Text(text)) => {
                    Some(Some(serde_json::from_str(text.as_str()).map_err(|e| {
                        ClientError::Decode(format!("a websocket frame: {e}"))
                    })))
                }
                Ok(Message::Close(_)) => None,
                // Pings are answered by the socket itself; binary frames are not messages.
                Ok(_) => Some(None),
                Err(e) => Some(Some(Err(ClientError::WebSocket(e.to_string())))),
            })
            .take_while(|item| std::future::ready(item.is_some()))
            .filter_map(|item| std::future::ready(item.flatten())))
    }
}
