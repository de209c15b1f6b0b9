//! TensorFlow's record framing, as event files use it: for each record, its length (u64,
//! little-endian), the masked CRC-32C of those 8 bytes, the data, and the masked CRC-32C of
//! the data.

/// The masked CRC-32C of `bytes`: TensorFlow rotates the checksum and adds a constant, so
/// that a CRC of data that itself holds CRCs stays well distributed.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// `data` framed as one record, appended to `out`.
pub fn frame(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_values() {
        // The check value of CRC-32C (Castagnoli) over "123456789", and RFC 3720's vectors.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c::crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c::crc32c(&ascending), 0x46dd_794e);
    }

    #[test]
    fn the_mask_is_tensorflows() {
        // TensorFlow's `crc32c::Mask`: ((crc >> 15) | (crc << 17)) + 0xa282ead8, worked out
        // by hand for the check value above.
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn a_record_is_length_crc_data_crc() {
        let mut out = Vec::new();
        frame(b"abc", &mut out);
        assert_eq!(out.len(), 8 + 4 + 3 + 4);
        assert_eq!(&out[..8], &3u64.to_le_bytes());
        assert_eq!(&out[8..12], &masked_crc(&3u64.to_le_bytes()).to_le_bytes());
        assert_eq!(&out[12..15], b"abc");
        assert_eq!(&out[15..], &masked_crc(b"abc").to_le_bytes());
    }
}
