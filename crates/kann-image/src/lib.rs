//! kann-image: the pixels side of kann. [`prepare`] turns photos (PNG, JPEG,
//! TIFF, BMP) and `.npy` arrays into a network's input frames following the
//! configuration's `preprocessing` block; [`draw`] puts results back on the
//! photo (class labels, detection boxes, segmentation masks). [`Geometry`]
//! links the two: it says where a pixel of the network's input came from in
//! the source image, so boxes found by the network land on the right spot.

pub mod decode;
pub mod draw;
pub mod prepare;

/// Where the network's input pixels came from: a point `(x, y)` of the
/// network's input (after resize and crop) is at
/// `((x - offset_x) / scale_x, (y - offset_y) / scale_y)` in the source image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    /// Source image size in pixels.
    pub src_w: u32,
    pub src_h: u32,
    /// Network input size in pixels.
    pub net_w: u32,
    pub net_h: u32,
    pub scale_x: f32,
    pub scale_y: f32,
    pub offset_x: f32,
    pub offset_y: f32,
}

impl Geometry {
    /// The identity: the network sees the source image as it is.
    pub fn identity(w: u32, h: u32) -> Geometry {
        Geometry {
            src_w: w,
            src_h: h,
            net_w: w,
            net_h: h,
            scale_x: 1.0,
            scale_y: 1.0,
            offset_x: 0.0,
            offset_y: 0.0,
        }
    }

    /// A point of the network's input, in source-image pixels, clamped to the image.
    pub fn to_source(&self, x: f32, y: f32) -> (f32, f32) {
        let sx = (x - self.offset_x) / self.scale_x;
        let sy = (y - self.offset_y) / self.scale_y;
        (sx.clamp(0.0, self.src_w as f32), sy.clamp(0.0, self.src_h as f32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_source_undoes_scale_and_offset() {
        let g = Geometry {
            src_w: 400,
            src_h: 300,
            net_w: 224,
            net_h: 224,
            scale_x: 0.5,
            scale_y: 0.5,
            offset_x: -38.0,
            offset_y: -13.0,
        };
        assert_eq!(g.to_source(0.0, 0.0), (76.0, 26.0));
        assert_eq!(g.to_source(1000.0, 1000.0), (400.0, 300.0));
        assert_eq!(Geometry::identity(5, 6).to_source(2.0, 3.0), (2.0, 3.0));
    }
}
