//! QR codes for sharing keys: drawn as SVG (qrcode), and read from a photo (rqrr). The
//! browser decodes the photo into pixels; finding and reading the code happens here.

use wasm_bindgen::prelude::*;

use crate::WebError;

/// Largest photo side, in pixels, read for a QR code (the page scales photos down first).
const MAX_SIDE: usize = 4096;

/// `text` as a QR code in SVG, black on white with a quiet zone, for an `<img>`.
#[wasm_bindgen(js_name = qrSvg)]
pub fn qr_svg(text: &str) -> Result<String, WebError> {
    let code = qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| WebError::input("the QR code", format!("cannot hold this text: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

/// Reads the first QR code found in a greyscale image (`luma`: one byte per pixel, row by
/// row, `width` × `height`). Returns its text.
#[wasm_bindgen(js_name = decodeQr)]
pub fn decode_qr(luma: &[u8], width: usize, height: usize) -> Result<String, WebError> {
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(WebError::input(
            "the photo",
            format!("{width}×{height} pixels: expected 1 to {MAX_SIDE} on each side"),
        ));
    }
    if luma.len() != width * height {
        return Err(WebError::input(
            "the photo",
            format!("{} bytes for {width}×{height} pixels", luma.len()),
        ));
    }
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| luma[y * width + x]);
    let grids = image.detect_grids();
    let mut last = None;
    for grid in grids {
        match grid.decode() {
            Ok((_, text)) => return Ok(text),
            Err(e) => last = Some(e.to_string()),
        }
    }
    Err(WebError::input(
        "the photo",
        match last {
            Some(e) => format!("a QR code is there but cannot be read ({e})"),
            None => "no QR code found".to_string(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drawn_code_reads_back() {
        let text = "basis:user:8b8a5428ae3d7f0c5b1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978";
        let code = qrcode::QrCode::new(text.as_bytes()).unwrap();
        // Pixels: 8 per module with a quiet zone, as a camera would see it.
        let modules = code.to_colors();
        let width = code.width();
        let scale = 8;
        let side = (width + 8) * scale;
        let mut luma = vec![255u8; side * side];
        for (i, c) in modules.iter().enumerate() {
            if *c == qrcode::Color::Dark {
                let (mx, my) = (i % width + 4, i / width + 4);
                for y in my * scale..(my + 1) * scale {
                    for x in mx * scale..(mx + 1) * scale {
                        luma[y * side + x] = 0;
                    }
                }
            }
        }
        assert_eq!(decode_qr(&luma, side, side).unwrap(), text);
        assert!(qr_svg(text).unwrap().starts_with("<?xml"));
        assert!(decode_qr(&[255; 100], 10, 10).is_err());
        assert!(decode_qr(&[0; 3], 2, 2).is_err());
    }
}
