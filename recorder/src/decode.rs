//! Content decoding for the record: gzip, deflate, br and zstd, applied in reverse order of a
//! `Content-Encoding` list. Only the copy kept for the HAR is decoded; the bytes forwarded to
//! the client are never touched.
//!
//! Output is capped so that a small compressed body cannot expand into gigabytes in memory
//! (a decompression bomb): past the cap the decoded text is cut and reported as truncated.

use std::io::Read;

/// Decoded bytes and whether the cap cut them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) bytes: Vec<u8>,
    pub(crate) truncated: bool,
}

/// Why a body could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// An encoding this recorder does not know (e.g. `compress`).
    Unknown(String),
    /// The data is not valid for its declared encoding.
    Corrupt { encoding: String, message: String },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Unknown(e) => write!(f, "unknown content encoding {e:?}"),
            DecodeError::Corrupt { encoding, message } => {
                write!(f, "the {encoding} data does not decode: {message}")
            }
        }
    }
}

/// The encodings of a `Content-Encoding` value that change the bytes (`identity` dropped),
/// lowercased, in the order they were applied.
pub(crate) fn encodings(header: &str) -> Vec<String> {
    header
        .split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty() && e != "identity")
        .collect()
}

/// Undoes `encodings` (as returned by [`encodings`]) on `data`, keeping at most `cap` bytes.
/// `complete` says whether `data` is the whole body; a cut body decodes as far as it goes.
pub(crate) fn decode(
    data: &[u8],
    encodings: &[String],
    cap: usize,
    complete: bool,
) -> Result<Decoded, DecodeError> {
    let mut current = data.to_vec();
    let mut truncated = false;
    for encoding in encodings.iter().rev() {
        let step = decode_one(&current, encoding, cap, complete && !truncated)?;
        truncated |= step.truncated;
        current = step.bytes;
    }
    Ok(Decoded {
        bytes: current,
        truncated,
    })
}

fn decode_one(
    data: &[u8],
    encoding: &str,
    cap: usize,
    complete: bool,
) -> Result<Decoded, DecodeError> {
    match encoding {
        "gzip" | "x-gzip" => read_capped(
            flate2::read::MultiGzDecoder::new(data),
            cap,
            encoding,
            complete,
        ),
        // `deflate` is zlib-wrapped by the specification, but some servers send raw deflate.
        "deflate" => match read_capped(
            flate2::read::ZlibDecoder::new(data),
            cap,
            encoding,
            complete,
        ) {
            Ok(d) => Ok(d),
            Err(_) => read_capped(
                flate2::read::DeflateDecoder::new(data),
                cap,
                encoding,
                complete,
            ),
        },
        "br" => read_capped(
            brotli_decompressor::Decompressor::new(data, 4096),
            cap,
            encoding,
            complete,
        ),
        "zstd" => {
            let decoder = ruzstd::decoding::StreamingDecoder::new(data).map_err(|e| {
                DecodeError::Corrupt {
                    encoding: encoding.to_string(),
                    message: e.to_string(),
                }
            })?;
            read_capped(decoder, cap, encoding, complete)
        }
        other => Err(DecodeError::Unknown(other.to_string())),
    }
}

/// Reads up to `cap` bytes. When the input was cut (`complete` false), an error after some
/// output is the expected end of the data, not corruption.
fn read_capped(
    reader: impl Read,
    cap: usize,
    encoding: &str,
    complete: bool,
) -> Result<Decoded, DecodeError> {
    let mut out = Vec::new();
    let mut limited = reader.take(cap as u64 + 1);
    let mut buf = [0u8; 16 * 1024];
    loop {
        match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if !complete {
                    return Ok(Decoded {
                        bytes: out,
                        truncated: true,
                    });
                }
                return Err(DecodeError::Corrupt {
                    encoding: encoding.to_string(),
                    message: e.to_string(),
                });
            }
        }
    }
    let truncated = out.len() > cap || !complete;
    out.truncate(cap);
    Ok(Decoded {
        bytes: out,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("write");
        e.finish().expect("finish")
    }

    #[test]
    fn encodings_drop_identity_and_keep_order() {
        assert_eq!(encodings("gzip, identity, BR"), vec!["gzip", "br"]);
        assert!(encodings("identity").is_empty());
    }

    #[test]
    fn gzip_and_deflate_decode() {
        let text = b"hello hello hello hello";
        let out = decode(&gzip(text), &encodings("gzip"), 1024, true).expect("gzip");
        assert_eq!(out.bytes, text);
        assert!(!out.truncated);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(text).expect("write");
        let zlib = z.finish().expect("finish");
        assert_eq!(
            decode(&zlib, &encodings("deflate"), 1024, true)
                .expect("zlib")
                .bytes,
            text
        );
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(text).expect("write");
        let raw = d.finish().expect("finish");
        assert_eq!(
            decode(&raw, &encodings("deflate"), 1024, true)
                .expect("raw")
                .bytes,
            text
        );
    }

    #[test]
    fn brotli_and_zstd_decode() {
        // A brotli stream of one uncompressed meta-block, and `printf 'hello zstd' | zstd -c --no-check`.
        let br: &[u8] = &[
            0xb0, 0x00, 0x10, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x62, 0x72, 0x6f, 0x74, 0x6c,
            0x69, 0x03,
        ];
        assert_eq!(
            decode(br, &encodings("br"), 1024, true).expect("br").bytes,
            b"hello brotli"
        );
        let zstd: &[u8] = &[
            0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58, 0x51, 0x00, 0x00, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
            0x20, 0x7a, 0x73, 0x74, 0x64,
        ];
        assert_eq!(
            decode(zstd, &encodings("zstd"), 1024, true)
                .expect("zstd")
                .bytes,
            b"hello zstd"
        );
    }

    #[test]
    fn output_is_capped_against_decompression_bombs() {
        let big = vec![b'a'; 1 << 20];
        let out = decode(&gzip(&big), &encodings("gzip"), 1000, true).expect("gzip");
        assert_eq!(out.bytes.len(), 1000);
        assert!(out.truncated);
    }

    #[test]
    fn a_cut_body_decodes_as_far_as_it_goes_and_garbage_is_an_error() {
        let text: Vec<u8> = (0..5000u32).flat_map(|i| i.to_le_bytes()).collect();
        let gz = gzip(&text);
        let out = decode(&gz[..gz.len() / 2], &encodings("gzip"), 1 << 20, false).expect("cut");
        assert!(out.truncated);
        assert!(text.starts_with(&out.bytes));
        assert!(decode(b"not gzip", &encodings("gzip"), 1024, true).is_err());
        assert_eq!(
            decode(b"x", &encodings("compress"), 1024, true),
            Err(DecodeError::Unknown("compress".into()))
        );
    }
}
