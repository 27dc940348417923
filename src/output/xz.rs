//! xz as the kernel reads it: CRC32 checks (its decoder rejects CRC64, the
//! default of most encoders) and LZMA2 in fixed-size blocks, so liblzma's
//! threads can share the work without changing the bytes.

use liblzma::stream::{Action, Check, MtStreamBuilder, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const CHUNK: usize = 1 << 20;

pub async fn compress<R, W>(
    mut input: R,
    output: &mut W,
    preset: u32,
    jobs: usize,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let threads = u32::try_from(jobs.max(1)).unwrap_or(1);
    let mut stream = MtStreamBuilder::new()
        .threads(threads)
        .preset(preset)
        .check(Check::Crc32)
        .encoder()
        .map_err(std::io::Error::other)?;
    let mut buf = vec![0u8; CHUNK];
    let mut out = Vec::with_capacity(CHUNK);
    loop {
        let n = input.read(&mut buf).await?;
        let action = if n == 0 { Action::Finish } else { Action::Run };
        let mut consumed = 0;
        loop {
            out.clear();
            let before = stream.total_in();
            let status = stream
                .process_vec(&buf[consumed..n], &mut out, action)
                .map_err(std::io::Error::other)?;
            consumed += (stream.total_in() - before) as usize;
            output.write_all(&out).await?;
            match (action, status) {
                (Action::Finish, Status::StreamEnd) => {
                    output.flush().await?;
                    return Ok(());
                }
                (Action::Run, _) if consumed == n && out.len() < out.capacity() => break,
                _ => {}
            }
        }
    }
}
