//! WAV header repair after a crash, sans-IO.
//!
//! Recordings are written incrementally and their RIFF and `data` sizes are
//! rewritten once a second; a process killed in between leaves a file whose
//! header states fewer samples than the file holds (or, killed in the
//! middle of a sample frame, a ragged tail). [`header_fix`] reads the
//! header bytes and the file length and says what to write: both sizes
//! from the length, and the length cut to whole sample frames. The caller
//! does the file IO (`earshot_actors::recovery`).

/// Why a file's header cannot be repaired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    #[error("not a RIFF/WAVE file")]
    NotWav,
    #[error("no fmt chunk before the data")]
    NoFormat,
    #[error("no data chunk in the first {0} bytes")]
    NoData(usize),
    #[error("block align {0} is not usable")]
    BadBlockAlign(u16),
}

/// What to write so the header matches the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderFix {
    /// RIFF chunk size (file length − 8), written at offset 4.
    pub riff_size: u32,
    /// Where the `data` chunk's size field is.
    pub data_size_offset: u64,
    /// The `data` chunk's size: whole sample frames after its header.
    pub data_size: u32,
    /// The file's length after the repair (a ragged last frame cut off).
    pub file_len: u64,
    /// False when the header already matched a file of whole frames.
    pub changed: bool,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The repair for a WAV whose first bytes are `head` (at least up to the
/// `data` chunk header; 4 KiB is plenty for what Earshot writes) and whose
/// length is `len`.
pub fn header_fix(head: &[u8], len: u64) -> Result<HeaderFix, WavError> {
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(WavError::NotWav);
    }
    let mut at = 12usize;
    let mut block_align = None;
    loop {
        let (Some(id), Some(size)) = (head.get(at..at + 4), u32_at(head, at + 4)) else {
            return Err(WavError::NoData(head.len()));
        };
        if id == b"fmt " {
            let b = head
                .get(at + 20..at + 22)
                .ok_or(WavError::NoData(head.len()))?;
            block_align = Some(u16::from_le_bytes([b[0], b[1]]));
        }
        if id == b"data" {
            let align = block_align.ok_or(WavError::NoFormat)?;
            if align == 0 {
                return Err(WavError::BadBlockAlign(align));
            }
            let start = (at + 8) as u64;
            let available = len.saturating_sub(start);
            // RIFF sizes are 32-bit: a longer file keeps what fits.
            let max = u64::from(u32::MAX) - start;
            let frames = available.min(max) / u64::from(align);
            let data_size = frames * u64::from(align);
            let file_len = start + data_size;
            let fix = HeaderFix {
                riff_size: (file_len - 8) as u32,
                data_size_offset: (at + 4) as u64,
                data_size: data_size as u32,
                file_len,
                changed: false,
            };
            let changed = u32_at(head, 4) != Some(fix.riff_size)
                || Some(size) != Some(fix.data_size)
                || len != file_len;
            return Ok(HeaderFix { changed, ..fix });
        }
        // Chunks are padded to even sizes.
        let step = 8u64 + u64::from(size) + u64::from(size & 1);
        at = usize::try_from(at as u64 + step).map_err(|_| WavError::NoData(head.len()))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A canonical 44-byte header: PCM, `channels` x 16 bit, sizes as given.
    fn header(channels: u16, riff: u32, data: u32) -> Vec<u8> {
        let mut h = b"RIFF".to_vec();
        h.extend(riff.to_le_bytes());
        h.extend(b"WAVEfmt ");
        h.extend(16u32.to_le_bytes());
        h.extend(1u16.to_le_bytes());
        h.extend(channels.to_le_bytes());
        h.extend(8000u32.to_le_bytes());
        h.extend((8000 * 2 * u32::from(channels)).to_le_bytes());
        h.extend((2 * channels).to_le_bytes());
        h.extend(16u16.to_le_bytes());
        h.extend(b"data");
        h.extend(data.to_le_bytes());
        h
    }

    #[test]
    fn stale_sizes_are_set_from_the_length() {
        // Header says 100 bytes of audio; the file holds 1,000 (+ 1 ragged).
        let h = header(2, 36 + 100, 100);
        let fix = header_fix(&h, 44 + 1001).unwrap();
        assert_eq!(
            fix,
            HeaderFix {
                riff_size: 36 + 1000,
                data_size_offset: 40,
                data_size: 1000,
                file_len: 1044,
                changed: true,
            }
        );
        // A stereo 16-bit frame is 4 bytes: 1,003 bytes keep 1,000.
        assert_eq!(header_fix(&h, 44 + 1003).unwrap().data_size, 1000);
    }

    #[test]
    fn a_finalized_file_needs_nothing() {
        let h = header(1, 36 + 320, 320);
        assert!(!header_fix(&h, 44 + 320).unwrap().changed);
        // hound's header with zero sizes on a file with no samples yet.
        let h = header(1, 36, 0);
        assert!(!header_fix(&h, 44).unwrap().changed);
    }

    #[test]
    fn other_chunks_before_data_are_skipped() {
        let mut h = header(1, 0, 0);
        let data = h.split_off(36);
        h.extend(b"LIST");
        h.extend(5u32.to_le_bytes());
        h.extend(b"abcde\0"); // odd size, padded
        h.extend(&data);
        let fix = header_fix(&h, h.len() as u64 + 10).unwrap();
        assert_eq!(fix.data_size_offset, 36 + 14 + 4);
        assert_eq!(fix.data_size, 10);
    }

    #[test]
    fn broken_headers_are_errors() {
        assert_eq!(header_fix(b"", 0), Err(WavError::NotWav));
        assert_eq!(
            header_fix(b"RIFF\0\0\0\0AVI LIST", 100),
            Err(WavError::NotWav)
        );
        let h = header(1, 0, 0);
        assert_eq!(header_fix(&h[..30], 44), Err(WavError::NoData(30)));
        let mut no_fmt = b"RIFF\0\0\0\0WAVE".to_vec();
        no_fmt.extend(b"data\0\0\0\0");
        assert_eq!(header_fix(&no_fmt, 100), Err(WavError::NoFormat));
        let mut zero = header(1, 0, 0);
        zero[32] = 0;
        zero[33] = 0;
        assert_eq!(header_fix(&zero, 100), Err(WavError::BadBlockAlign(0)));
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(head in proptest::collection::vec(any::<u8>(), 0..200), len in any::<u64>()) {
            let _ = header_fix(&head, len);
        }

        #[test]
        fn the_fix_describes_whole_frames(channels in 1u16..3, riff in any::<u32>(), data in any::<u32>(), extra in 0u64..100_000) {
            let h = header(channels, riff, data);
            let fix = header_fix(&h, 44 + extra).unwrap();
            let align = u64::from(2 * channels);
            prop_assert_eq!(u64::from(fix.data_size) % align, 0);
            prop_assert!(extra - u64::from(fix.data_size) < align);
            prop_assert_eq!(fix.file_len, 44 + u64::from(fix.data_size));
            prop_assert_eq!(u64::from(fix.riff_size), fix.file_len - 8);
            // Applying it leaves nothing to fix.
            let mut fixed = h.clone();
            fixed[4..8].copy_from_slice(&fix.riff_size.to_le_bytes());
            fixed[40..44].copy_from_slice(&fix.data_size.to_le_bytes());
            prop_assert!(!header_fix(&fixed, fix.file_len).unwrap().changed);
        }
    }
}
