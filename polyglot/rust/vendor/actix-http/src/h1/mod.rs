//! HTTP/1 protocol implementation.

use bytes::{Bytes, BytesMut};

mod chunked;
mod client;
mod codec;
mod decoder;
mod dispatcher;
mod encoder;
mod expect;
mod payload;
mod service;
mod timer;
mod upgrade;
mod utils;

pub use self::{
    client::{ClientCodec, ClientPayloadCodec},
    codec::Codec,
    dispatcher::Dispatcher,
    expect::ExpectHandler,
    payload::Payload,
    service::{H1Service, H1ServiceHandler},
    upgrade::UpgradeHandler,
    utils::SendResponse,
};

// devstack patch: the answer to a request the HTTP/1 parser refuses (a malformed request line
// or header line, a bad `Content-Length`, ...). Upstream answers a bare `400 Bad Request` with
// no body and no hook; an application that answers every error with a document of its own sets
// its answer here, once per process. The connection is closed after it, as before.

/// A function building the answer to a request the parser refused: the response head and its
/// body.
pub type MalformedRequestAnswer = fn() -> (crate::Response<()>, Bytes);

static MALFORMED_REQUEST_ANSWER: std::sync::OnceLock<MalformedRequestAnswer> =
    std::sync::OnceLock::new();

/// Set, once per process, the answer to a request the HTTP/1 parser refuses (devstack patch).
/// Returns `false` when one was already set.
pub fn set_malformed_request_answer(answer: MalformedRequestAnswer) -> bool {
    MALFORMED_REQUEST_ANSWER.set(answer).is_ok()
}

pub(crate) fn malformed_request_answer() -> (crate::Response<()>, crate::body::BoxBody) {
    match MALFORMED_REQUEST_ANSWER.get() {
        Some(answer) => {
            let (mut res, body) = answer();
            res.head_mut()
                .set_connection_type(crate::ConnectionType::Close);
            (res, crate::body::BoxBody::new(body))
        }
        None => (
            crate::Response::bad_request().drop_body(),
            crate::body::BoxBody::new(()),
        ),
    }
}

#[derive(Debug)]
/// Codec message
pub enum Message<T> {
    /// HTTP message.
    Item(T),

    /// Payload chunk.
    Chunk(Option<Bytes>),
}

impl<T> From<T> for Message<T> {
    fn from(item: T) -> Self {
        Message::Item(item)
    }
}

/// Incoming request type
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    None,
    Payload,
    Stream,
}

const LW: usize = 2 * 1024;
const HW: usize = 32 * 1024;

pub(crate) fn reserve_readbuf(src: &mut BytesMut) {
    let cap = src.capacity();
    if cap < LW {
        src.reserve(HW - cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Request;

    impl Message<Request> {
        pub fn message(self) -> Request {
            match self {
                Message::Item(req) => req,
                _ => panic!("error"),
            }
        }

        pub fn chunk(self) -> Bytes {
            match self {
                Message::Chunk(Some(data)) => data,
                _ => panic!("error"),
            }
        }

        pub fn eof(self) -> bool {
            match self {
                Message::Chunk(None) => true,
                Message::Chunk(Some(_)) => false,
                _ => panic!("error"),
            }
        }
    }
}
