//! Start-up recovery after a crash: the recordings of the sessions that
//! were live when the engine died get WAV headers that match their files
//! ([`earshot::wav::header_fix`] says what to write; this does the IO).

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Bytes read from the start of a file to find its `data` chunk.
const HEAD: u64 = 4096;

/// How one file fared.
#[derive(Debug, PartialEq, Eq)]
pub enum Repair {
    /// The header already matched.
    Intact,
    /// Sizes rewritten (and a ragged last frame cut).
    Repaired,
    /// Killed before its header reached the disk (empty or a partial
    /// header, so no audio): removed; the recording reads as absent.
    Removed,
}

/// Make one WAV's header match its length.
pub fn repair_wav(path: &Path) -> Result<Repair, String> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let mut head = Vec::with_capacity(HEAD as usize);
    (&mut f)
        .take(HEAD)
        .read_to_end(&mut head)
        .map_err(|e| e.to_string())?;
    let fix = match earshot::wav::header_fix(&head, len) {
        Ok(f) => f,
        // The writer puts the header first: a short file with no complete
        // header holds no audio.
        Err(earshot::wav::WavError::NotWav | earshot::wav::WavError::NoData(_))
            if len < HEAD && !head.windows(4).any(|w| w == b"data") =>
        {
            drop(f);
            std::fs::remove_file(path).map_err(|e| e.to_string())?;
            return Ok(Repair::Removed);
        }
        Err(e) => return Err(e.to_string()),
    };
    if !fix.changed {
        return Ok(Repair::Intact);
    }
    let io = |e: std::io::Error| e.to_string();
    f.seek(SeekFrom::Start(4)).map_err(io)?;
    f.write_all(&fix.riff_size.to_le_bytes()).map_err(io)?;
    f.seek(SeekFrom::Start(fix.data_size_offset)).map_err(io)?;
    f.write_all(&fix.data_size.to_le_bytes()).map_err(io)?;
    f.set_len(fix.file_len).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(Repair::Repaired)
}

/// Repair every WAV of the given calls' recording directories. Returns
/// (files repaired, files that could not be).
pub fn repair_calls<'a>(
    recordings: &Path,
    call_ids: impl IntoIterator<Item = &'a str>,
) -> (usize, usize) {
    let (mut repaired, mut failed) = (0, 0);
    for id in call_ids {
        let dir = crate::media::call_dir(recordings, id);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "wav") {
                continue;
            }
            match repair_wav(&p) {
                Ok(Repair::Repaired) => {
                    repaired += 1;
                    tracing::info!(path = %p.display(), "recording header repaired after a crash");
                }
                Ok(Repair::Removed) => {
                    repaired += 1;
                    tracing::info!(path = %p.display(), "empty recording (no header yet) removed after a crash");
                }
                Ok(Repair::Intact) => {}
                Err(e) => {
                    failed += 1;
                    tracing::error!(path = %p.display(), error = %e, "recording could not be repaired");
                }
            }
        }
    }
    (repaired, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crashed_recording_reads_whole_after_repair() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("leg-1.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        for i in 0..800i16 {
            w.write_sample(i).unwrap();
        }
        // The header says 800 samples.
        w.flush().unwrap();
        // Crash: no finalize. Samples written after that last header update
        // reached the file (the writer's buffer went out), and half a frame
        // at the end.
        std::mem::forget(w);
        let mut tail: Vec<u8> = (0..1200i16).flat_map(|i| (-i).to_le_bytes()).collect();
        tail.extend([1, 2, 3]);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(&tail)
            .unwrap();
        let before = hound::WavReader::open(&p).unwrap().len();
        assert_eq!(before, 800, "the stale header");
        assert_eq!(repair_wav(&p).unwrap(), Repair::Repaired);
        let mut r = hound::WavReader::open(&p).unwrap();
        assert_eq!(r.len(), 2000);
        let s: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(s[799], 799);
        assert_eq!(s[1999], -1199);
        assert_eq!(repair_wav(&p).unwrap(), Repair::Intact);
        // Killed before the header was written: no audio, removed.
        for (name, bytes) in [
            ("empty.wav", &b""[..]),
            ("partial.wav", &b"RIFF\0\0\0\0WA"[..]),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            assert_eq!(repair_wav(&p).unwrap(), Repair::Removed);
            assert!(!p.exists());
        }
        // Something else that is not a WAV: an error, the file untouched.
        let junk = dir.path().join("junk.wav");
        let text = vec![b'x'; 5000];
        std::fs::write(&junk, &text).unwrap();
        assert!(repair_wav(&junk).is_err());
        assert_eq!(std::fs::read(&junk).unwrap(), text);
    }
}
