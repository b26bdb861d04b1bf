//! WebSocket sessions: the bytes are relayed unchanged in both directions while a passive
//! parser reads the frames out of the copy, so the record holds every data message and the
//! endpoints see exactly what the other one sent (no re-framing, no re-masking).
//!
//! The proxy removes `Sec-WebSocket-Extensions` from the handshake it forwards, so no
//! compression extension is negotiated and the payloads in the frames are the messages
//! themselves. Control frames (ping, pong, close) are forwarded but not recorded, as in
//! Chrome's `_webSocketMessages`.

use std::sync::Arc;
use std::time::SystemTime;

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::capture::Exchange;
use crate::entry::WsMessage;

/// Relays both directions until both are closed, recording messages into `exchange`.
pub(crate) async fn relay(client: Upgraded, server: Upgraded, exchange: Option<Arc<Exchange>>) {
    let (client_read, client_write) = tokio::io::split(TokioIo::new(client));
    let (server_read, server_write) = tokio::io::split(TokioIo::new(server));
    let up = pump(client_read, server_write, exchange.clone(), true);
    let down = pump(server_read, client_write, exchange, false);
    tokio::join!(up, down);
}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    exchange: Option<Arc<Exchange>>,
    sent: bool,
) {
    let max = exchange.as_ref().map_or(0, |e| e.max_body());
    let mut parser = Parser::new(max);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        if let Some(exchange) = &exchange {
            parser.feed(&buf[..n], |opcode, data, truncated| {
                exchange.ws_message(WsMessage {
                    sent,
                    at: SystemTime::now(),
                    opcode,
                    data,
                    truncated,
                });
            });
        }
    }
    let _ = to.shutdown().await;
}

/// Where the parser is inside the current frame.
enum Stage {
    /// Collecting the header; `need` is its full length once known.
    Header,
    Payload {
        remaining: u64,
        mask: Option<[u8; 4]>,
        offset: usize,
        control: bool,
    },
}

/// Incremental frame parser (RFC 6455 section 5.2) that assembles fragmented messages.
pub(crate) struct Parser {
    stage: Stage,
    header: Vec<u8>,
    /// Opcode of the message being assembled (1 text, 2 binary), if any.
    message: Option<u8>,
    fin: bool,
    data: Vec<u8>,
    truncated: bool,
    max: usize,
}

impl Parser {
    pub(crate) fn new(max: usize) -> Parser {
        Parser {
            stage: Stage::Header,
            header: Vec::with_capacity(14),
            message: None,
            fin: false,
            data: Vec::new(),
            truncated: false,
            max,
        }
    }

    /// Consumes `bytes`, calling `done(opcode, data, truncated)` for each complete message.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], mut done: impl FnMut(u8, Vec<u8>, bool)) {
        while !bytes.is_empty() {
            match &mut self.stage {
                Stage::Header => {
                    self.header.push(bytes[0]);
                    bytes = &bytes[1..];
                    if let Some(stage) = self.parse_header() {
                        self.header.clear();
                        self.stage = stage;
                        self.finish_if_empty(&mut done);
                    }
                }
                Stage::Payload {
                    remaining,
                    mask,
                    offset,
                    control,
                } => {
                    let take = (*remaining).min(bytes.len() as u64) as usize;
                    let (chunk, rest) = bytes.split_at(take);
                    bytes = rest;
                    *remaining -= take as u64;
                    if !*control && self.message.is_some() {
                        let room = self.max.saturating_sub(self.data.len());
                        let keep = chunk.len().min(room);
                        if keep < chunk.len() {
                            self.truncated = true;
                        }
                        let start = self.data.len();
                        self.data.extend_from_slice(&chunk[..keep]);
                        if let Some(mask) = mask {
                            for (i, b) in self.data[start..].iter_mut().enumerate() {
                                *b ^= mask[(*offset + i) % 4];
                            }
                        }
                    }
                    *offset += take;
                    if *remaining == 0 {
                        self.stage = Stage::Header;
                        self.end_frame(&mut done);
                    }
                }
            }
        }
    }

    /// The payload stage once the header in `self.header` is complete.
    fn parse_header(&mut self) -> Option<Stage> {
        let h = &self.header;
        if h.len() < 2 {
            return None;
        }
        let masked = h[1] & 0x80 != 0;
        let len7 = h[1] & 0x7f;
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let need = 2 + ext + if masked { 4 } else { 0 };
        if h.len() < need {
            return None;
        }
        let len = match ext {
            2 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            8 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            _ => u64::from(len7),
        };
        let mask = masked.then(|| {
            let m = &h[2 + ext..2 + ext + 4];
            [m[0], m[1], m[2], m[3]]
        });
        let opcode = h[0] & 0x0f;
        let fin = h[0] & 0x80 != 0;
        let control = opcode & 0x08 != 0;
        if !control {
            if opcode != 0 {
                // A new message starts (a continuation without a start is ignored).
                self.message = Some(opcode).filter(|o| *o == 1 || *o == 2);
                self.data.clear();
                self.truncated = false;
            }
            self.fin = fin;
        }
        Some(Stage::Payload {
            remaining: len,
            mask,
            offset: 0,
            control,
        })
    }

    fn finish_if_empty(&mut self, done: &mut impl FnMut(u8, Vec<u8>, bool)) {
        if let Stage::Payload { remaining: 0, .. } = self.stage {
            self.stage = Stage::Header;
            self.end_frame(done);
        }
    }

    fn end_frame(&mut self, done: &mut impl FnMut(u8, Vec<u8>, bool)) {
        // Only the end of a data frame with FIN ends a message; control frames in between
        // leave the message being assembled alone.
        if self.fin {
            if let Some(opcode) = self.message.take() {
                done(opcode, std::mem::take(&mut self.data), self.truncated);
                self.truncated = false;
            }
            self.fin = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(m | n as u8),
            n if n < 65536 => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(k) => {
                out.extend_from_slice(&k);
                out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => out.extend_from_slice(payload),
        }
        out
    }

    fn parse_all(stream: &[u8], chunk: usize, max: usize) -> Vec<(u8, Vec<u8>, bool)> {
        let mut parser = Parser::new(max);
        let mut out = Vec::new();
        for piece in stream.chunks(chunk) {
            parser.feed(piece, |o, d, t| out.push((o, d, t)));
        }
        out
    }

    #[test]
    fn masked_fragmented_and_interleaved_frames_give_whole_messages() {
        let big = vec![7u8; 70_000];
        let mut stream = Vec::new();
        stream.extend(frame(true, 1, b"hello", Some([1, 2, 3, 4])));
        stream.extend(frame(false, 1, b"frag", None));
        stream.extend(frame(true, 9, b"ping", None));
        stream.extend(frame(true, 0, b"mented", None));
        stream.extend(frame(true, 2, &big, Some([9, 8, 7, 6])));
        stream.extend(frame(true, 1, b"", None));
        stream.extend(frame(true, 8, &[0x03, 0xe8], None));
        for chunk in [1, 3, 1000, usize::MAX] {
            let got = parse_all(&stream, chunk.min(stream.len()), 1 << 20);
            assert_eq!(got.len(), 4, "chunk size {chunk}");
            assert_eq!(got[0], (1, b"hello".to_vec(), false));
            assert_eq!(got[1], (1, b"fragmented".to_vec(), false));
            assert_eq!(got[2], (2, big.clone(), false));
            assert_eq!(got[3], (1, Vec::new(), false));
        }
    }

    #[test]
    fn long_messages_are_cut_to_the_cap() {
        let stream = frame(true, 2, &[1u8; 300], Some([5, 5, 5, 5]));
        let got = parse_all(&stream, 7, 100);
        assert_eq!(got, vec![(2, vec![1u8; 100], true)]);
    }
}
