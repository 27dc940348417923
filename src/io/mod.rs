//! Async I/O adapters shared by the stages: blocking files behind the
//! async traits, and a channel of chunks read as one stream.

mod blocking;
mod channel;

pub use blocking::BlockingIo;
pub(crate) use channel::ChannelReader;
