//! xz as the kernel reads it: CRC32 checks (its decoder rejects CRC64, the
//! default of most encoders) and LZMA2 in fixed-size blocks, so liblzma's
//! threads can share the work without changing the bytes.

use std::io::Write;

use liblzma::stream::{Action, Check, MtStreamBuilder, Status, Stream};

const CHUNK: usize = 1 << 20;

/// Encodes the archive's chunks into `output`, blocking: run it off the
/// async workers (see [`super::threaded`]).
pub fn encode(
    input: impl Iterator<Item = bytes::Bytes>,
    output: &mut impl Write,
    preset: u32,
    jobs: usize,
) -> std::io::Result<()> {
    let threads = u32::try_from(jobs.max(1)).unwrap_or(1);
    let mut stream = MtStreamBuilder::new()
        .threads(threads)
        .preset(preset)
        .check(Check::Crc32)
        .encoder()
        .map_err(std::io::Error::other)?;
    let mut out = Vec::with_capacity(CHUNK);
    for chunk in input {
        process(&mut stream, &chunk, Action::Run, &mut out, output)?;
    }
    process(&mut stream, &[], Action::Finish, &mut out, output)
}

/// Gives `input` to the encoder and writes what comes out, until it has
/// taken all of it (`Run`) or ended the stream (`Finish`).
fn process(
    stream: &mut Stream,
    input: &[u8],
    action: Action,
    out: &mut Vec<u8>,
    output: &mut impl Write,
) -> std::io::Result<()> {
    let mut consumed = 0;
    loop {
        out.clear();
        let before = stream.total_in();
        let status = stream
            .process_vec(&input[consumed..], out, action)
            .map_err(std::io::Error::other)?;
        consumed += (stream.total_in() - before) as usize;
        output.write_all(out)?;
        match (action, status) {
            (Action::Finish, Status::StreamEnd) => return Ok(()),
            (Action::Run, _) if consumed == input.len() && out.len() < out.capacity() => {
                return Ok(())
            }
            _ => {}
        }
    }
}
