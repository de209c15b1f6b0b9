//! What the digits examples share: the bundled data set and its deterministic split, and
//! reading one 8x8 digit from a PNG image or a CSV row.

use flammable::prelude::*;
use std::io::Read;
use std::path::Path;

/// Pixels per image (8x8).
pub const PIXELS: usize = 64;
/// Examples kept for testing; the rest (1,437) train.
pub const TEST_SIZE: usize = 360;

/// The bundled data file (see `data/README.md`).
pub fn data_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("digits.csv.gz")
}

/// The digits data split into (train, test) datasets of pixels scaled to [0, 1] and labels.
///
/// The split is a fixed permutation (by a stable hash of each row's index), the same on
/// every machine and independent of `--seed`.
pub fn load_split() -> Result<(TensorDataset, TensorDataset)> {
    let path = data_path();
    let file = std::fs::File::open(&path).map_err(|e| Error::io("cannot open", &path, e))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .map_err(|e| Error::io("cannot decompress", &path, e))?;
    let mut rows: Vec<(Vec<f32>, u32)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let values = parse_row(line)
            .map_err(|e| Error::msg(format!("{}:{}: {e}", path.display(), n + 1)))?;
        let label = values
            .get(PIXELS)
            .copied()
            .ok_or_else(|| Error::msg(format!("{}:{}: no label", path.display(), n + 1)))?;
        rows.push((
            values[..PIXELS].iter().map(|v| v / 16.0).collect(),
            label as u32,
        ));
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| flammable::rng::derive_seed(0, "digits-split", i as u64));
    let (test, train) = order.split_at(TEST_SIZE.min(order.len()));
    Ok((dataset(&rows, train)?, dataset(&rows, test)?))
}

fn dataset(rows: &[(Vec<f32>, u32)], pick: &[usize]) -> Result<TensorDataset> {
    let pixels: Vec<f32> = pick
        .iter()
        .flat_map(|&i| rows[i].0.iter().copied())
        .collect();
    let labels: Vec<u32> = pick.iter().map(|&i| rows[i].1).collect();
    let x = Tensor::from_vec(pixels, (pick.len(), PIXELS), &Device::Cpu)?;
    let y = Tensor::from_vec(labels, pick.len(), &Device::Cpu)?;
    TensorDataset::new(x, y)
}

/// Comma-separated numbers.
fn parse_row(line: &str) -> std::result::Result<Vec<f32>, String> {
    line.split(',')
        .map(|s| {
            s.trim()
                .parse::<f32>()
                .map_err(|_| format!("`{s}` is not a number"))
        })
        .collect()
}

/// One digit as 64 pixels in [0, 1]: an 8x8 PNG (grey or colour; dark ink on light paper or
/// the reverse, as in the data set: bright = ink) or a CSV row of 64 values 0..16 (a 65th
/// value, the label, is ignored).
pub fn read_digit(path: &Path) -> Result<Tensor> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    let in_file = |e: Error| Error::msg(format!("{}: {e}", path.display()));
    let pixels = match ext.as_str() {
        "png" => png_pixels(&bytes).map_err(in_file)?,
        "csv" | "txt" => csv_pixels(&bytes).map_err(in_file)?,
        _ => {
            return Err(Error::msg(format!(
                "{}: expected an 8x8 .png image or a .csv row of {PIXELS} values",
                path.display()
            )))
        }
    };
    Ok(Tensor::from_vec(pixels, PIXELS, &Device::Cpu)?)
}

/// One digit from a request body (`serve`), as 64 pixels in [0, 1]: an 8x8 PNG image
/// (`Content-Type: image/png`, or any body that is a PNG), a CSV row of 64 values 0..16
/// (`text/csv`), or a JSON array of those 64 values.
pub fn decode_digit(body: &[u8], content_type: &str) -> Result<Tensor> {
    const PNG_SIGNATURE: &[u8] = b"\x89PNG";
    // Media types are case-insensitive (`TEXT/CSV` is `text/csv`).
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media == "image/png" || body.starts_with(PNG_SIGNATURE) {
        return Ok(Tensor::from_vec(png_pixels(body)?, PIXELS, &Device::Cpu)?);
    }
    if media == "text/csv" || media == "text/plain" {
        return Ok(Tensor::from_vec(csv_pixels(body)?, PIXELS, &Device::Cpu)?);
    }
    // The server refuses a sample of another shape than the data's (64 values).
    Ok((flammable::serving::decode_json(body)? / 16.0)?)
}

/// The index of the largest of `logits` and its probability under their softmax, computed on
/// the host: for ten values that costs less than the tensor ops' allocations, once per request
/// of the server.
pub fn top_class(logits: &[f32]) -> (usize, f32) {
    let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f32 = logits.iter().map(|v| (v - top).exp()).sum();
    let (class, best) =
        logits
            .iter()
            .copied()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, v)| {
                if v > best.1 {
                    (i, v)
                } else {
                    best
                }
            });
    (class, (best - top).exp() / total)
}

/// The pixels of a CSV row of 64 values 0..16 (and perhaps the label), scaled to [0, 1].
fn csv_pixels(bytes: &[u8]) -> Result<Vec<f32>> {
    let text = std::str::from_utf8(bytes).map_err(|_| Error::msg("the CSV is not UTF-8 text"))?;
    let mut rows = text.lines().filter(|l| !l.trim().is_empty());
    let line = rows.next().unwrap_or("");
    let more = rows.count();
    if more > 0 {
        return Err(Error::msg(format!(
            "the CSV has {} rows: one sample is one row (send each alone)",
            more + 1
        )));
    }
    let values = parse_row(line).map_err(Error::msg)?;
    if values.len() != PIXELS && values.len() != PIXELS + 1 {
        return Err(Error::msg(format!(
            "expected {PIXELS} pixel values (0..16), found {}",
            values.len()
        )));
    }
    Ok(values[..PIXELS].iter().map(|v| v / 16.0).collect())
}

/// The pixels of an 8x8 PNG image, in [0, 1], bright = ink. The header's size is checked
/// before anything is decoded, and the decoder may allocate no more than an 8x8 image of the
/// widest pixel format needs: a small file that declares a huge image costs nothing. An alpha
/// channel is left out of the grey level (transparency is not ink).
fn png_pixels(bytes: &[u8]) -> Result<Vec<f32>> {
    /// 8x8 pixels of 4 channels of 16 bits, and room for the decoder's own state.
    const DECODER_BYTES: usize = 64 * 1024;
    let mut decoder = png::Decoder::new_with_limits(
        std::io::Cursor::new(bytes),
        png::Limits {
            bytes: DECODER_BYTES,
        },
    );
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let header = decoder
        .read_header_info()
        .map_err(|e| Error::msg(format!("not a PNG image: {e}")))?;
    if (header.width, header.height) != (8, 8) {
        return Err(Error::msg(format!(
            "the image is {}x{}; digits are 8x8",
            header.width, header.height
        )));
    }
    let mut reader = decoder
        .read_info()
        .map_err(|e| Error::msg(format!("corrupt PNG image: {e}")))?;
    let size = reader
        .output_buffer_size()
        .filter(|n| *n <= DECODER_BYTES)
        .ok_or_else(|| Error::msg("corrupt PNG image: its pixels do not fit an 8x8 image"))?;
    let mut buf = vec![0; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| Error::msg(format!("corrupt PNG image: {e}")))?;
    if (info.width, info.height) != (8, 8) {
        return Err(Error::msg(format!(
            "the image's frame is {}x{}; digits are 8x8",
            info.width, info.height
        )));
    }
    let channels = info.color_type.samples();
    // Grey (1), grey + alpha (2), RGB (3), RGBA (4), indexed expanded to RGB(A): the colour
    // channels are the first one, or the first three.
    let colours = if channels >= 3 { 3 } else { 1 };
    let grey: Vec<f32> = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|px| {
            let colour = &px[..colours];
            colour.iter().map(|&v| f32::from(v)).sum::<f32>() / (colours as f32 * 255.0)
        })
        .collect();
    // The data set has bright ink on a dark ground; a mostly bright image is the reverse.
    let mean = grey.iter().sum::<f32>() / grey.len() as f32;
    Ok(if mean > 0.5 {
        grey.iter().map(|v| 1.0 - v).collect()
    } else {
        grey
    })
}

/// Writes 64 pixels in [0, 1] as an 8x8 greyscale PNG (for tests and the README's example).
pub fn write_png(pixels: &[f32], path: &Path) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io("cannot create", path, e))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), 8, 8);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let bytes: Vec<u8> = pixels
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(&bytes))
        .map_err(|e| Error::msg(format!("{}: cannot write PNG: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A PNG of `width` x `height` pixels of `colour` (8 bits each) from `raw` pixel bytes.
    fn encode(width: u32, height: u32, colour: png::ColorType, raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(colour);
        encoder.set_depth(png::BitDepth::Eight);
        encoder
            .write_header()
            .unwrap()
            .write_image_data(raw)
            .unwrap();
        out
    }

    /// A PNG whose header declares `width` x `height` grey pixels, with a little data after.
    fn declaring(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = Vec::from(*b"IHDR");
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
        let mut crc = flate2::Crc::new();
        crc.update(&ihdr);
        let mut png = Vec::from(*b"\x89PNG\r\n\x1a\n");
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&ihdr);
        png.extend_from_slice(&crc.sum().to_be_bytes());
        png.extend_from_slice(&[0; 2048]);
        png
    }

    fn seven() -> Vec<f32> {
        let bytes = std::fs::read(data_path().with_file_name("seven.png")).unwrap();
        png_pixels(&bytes).unwrap()
    }

    #[test]
    fn a_csv_of_several_rows_is_refused() {
        let row = vec!["3"; PIXELS].join(",");
        assert_eq!(
            csv_pixels(format!("{row}\n\n").as_bytes()).unwrap().len(),
            PIXELS
        );
        let err = csv_pixels(format!("{row}\n{row}\n").as_bytes()).unwrap_err();
        assert!(err.to_string().contains("2 rows"), "{err}");
    }

    #[test]
    fn alpha_is_not_ink() {
        let grey: Vec<u8> = seven().iter().map(|v| (v * 255.0).round() as u8).collect();
        // The same digit with an opaque alpha channel, and as RGBA.
        let with_alpha: Vec<u8> = grey.iter().flat_map(|&g| [g, 255]).collect();
        let rgba: Vec<u8> = grey.iter().flat_map(|&g| [g, g, g, 255]).collect();
        let plain = png_pixels(&encode(8, 8, png::ColorType::Grayscale, &grey)).unwrap();
        let alpha = png_pixels(&encode(8, 8, png::ColorType::GrayscaleAlpha, &with_alpha));
        let rgba = png_pixels(&encode(8, 8, png::ColorType::Rgba, &rgba));
        assert_eq!(alpha.unwrap(), plain);
        assert_eq!(rgba.unwrap(), plain);
    }

    #[test]
    fn the_size_is_checked_before_anything_is_decoded() {
        for (w, h) in [(1_000_000, 2_147_483_647), (30_000, 30_000), (9, 8)] {
            let e = png_pixels(&declaring(w, h)).unwrap_err().to_string();
            assert!(e.contains(&format!("{w}x{h}")), "{e}");
        }
        let nine = encode(9, 9, png::ColorType::Grayscale, &[0; 81]);
        assert!(png_pixels(&nine).unwrap_err().to_string().contains("9x9"));
        assert!(png_pixels(b"\x89PNG broken").is_err());
    }
}
