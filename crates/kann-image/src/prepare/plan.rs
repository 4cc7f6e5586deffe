//! One image input and how to fill it: [`ImageInput`] reads the input's
//! layout, channels and size from its shape; [`Plan`] joins it with the
//! `preprocessing` block and turns one image (or `.npy` array) into one
//! batch element in the input's dtype and layout, with the [`Geometry`]
//! that maps the result back to the source.
//!
//! Sizes: `resize_shorter_side: s` scales the shorter side to `s` and the
//! other to `s * long / short` truncated (torchvision's `Resize(int)`);
//! `resize: [h, w]` is exact; a block with neither resizes straight to the
//! input's size, unless it has a `center_crop`, which then crops the image
//! as it is. The crop's corner is `round((size - crop) / 2)` (ties to
//! even, torchvision's `CenterCrop`). The result must be the input's
//! height and width, or [`PrepareError::Size`] names both.
//!
//! Resampling is `image::imageops::resize` with `FilterType::Triangle`:
//! bilinear, with the filter widened by the scale factor on downscaling
//! (antialiased, as PIL's BILINEAR and torchvision's `antialias=True`),
//! pixel centres at +0.5. It runs on f32 samples holding pixel / 256
//! ([`UNIT`]: exact for every 8-bit value, and inside the [0, 1] that
//! `resize` clamps f32 samples to), so nothing is rounded to 8 bits
//! between steps. Colour conversion comes last (the
//! pipeline stays RGB until then): resizing and luma are both linear, so
//! the order does not change the result.

use super::{PrepareError, Result};
use crate::Geometry;
use image::imageops::{self, FilterType};
use image::{Rgb, Rgb32FImage, RgbImage};
use kann_config::{Color, Layout, Preprocessing};
use kann_io::stream::IoSpec;
use kann_tensor::{npy, DType, Shape, Tensor};
use std::path::Path;

/// A working sample is an 8-bit scale pixel value divided by this.
const UNIT: f32 = 256.0;

/// ITU-R BT.601 luma weights (what PIL's `convert("L")` uses).
const LUMA: [f64; 3] = [0.299, 0.587, 0.114];

/// An image input of the network: a rank-4 tensor with 1 or 3 channels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInput {
    /// Name, dtype and shape (batch first) of the input.
    pub spec: IoSpec,
    pub layout: Layout,
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// The layout a shape reads as: 1 or 3 at axis 1 → NCHW, else 1 or 3 at
/// the last axis → NHWC (both: NCHW); `None` if neither or not rank 4.
pub fn infer_layout(shape: &[usize]) -> Option<Layout> {
    let [_, d1, _, d3] = shape[..] else {
        return None;
    };
    let is_channels = |d: usize| d == 1 || d == 3;
    if is_channels(d1) {
        Some(Layout::Nchw)
    } else if is_channels(d3) {
        Some(Layout::Nhwc)
    } else {
        None
    }
}

impl ImageInput {
    /// Reads `spec` as an image input in `layout` (the preprocessing
    /// block's), or in the layout its shape suggests ([`infer_layout`]).
    pub fn new(spec: &IoSpec, layout: Option<Layout>) -> Result<ImageInput> {
        let not_image = |reason: &str| PrepareError::NotImage {
            input: spec.name.clone(),
            shape: spec.shape.clone(),
            reason: reason.to_string(),
        };
        let [batch, d1, d2, d3] = spec.shape[..] else {
            return Err(not_image("an image input has rank 4"));
        };
        if spec.dtype == DType::Bool {
            return Err(not_image("its dtype is bool"));
        }
        let layout = layout
            .or_else(|| infer_layout(&spec.shape))
            .ok_or_else(|| not_image("no axis of 1 or 3 channels at axis 1 or 3"))?;
        let (channels, height, width) = match layout {
            Layout::Nchw => (d1, d2, d3),
            Layout::Nhwc => (d3, d1, d2),
        };
        if channels != 1 && channels != 3 {
            return Err(not_image(&format!(
                "{channels} channels in {layout}; kann prepares 1 (gray) or 3 (colour)"
            )));
        }
        Ok(ImageInput {
            spec: spec.clone(),
            layout,
            batch,
            channels,
            height,
            width,
        })
    }

    /// The shape of one batch element (the input's shape without axis 0).
    pub fn element_shape(&self) -> &[usize] {
        &self.spec.shape[1..]
    }

    /// Elements of one batch element.
    pub fn element_len(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// How the image is brought to the network's size.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Resize {
    ShorterSide(usize),
    /// `[h, w]`.
    Exact([usize; 2]),
    /// No resize (a crop alone).
    Keep,
}

/// The preparation of one image input, resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    pub input: ImageInput,
    /// Warnings to show the user once (e.g. the default preprocessing).
    pub warnings: Vec<String>,
    resize: Resize,
    crop: Option<[usize; 2]>,
    color: Color,
    scale: f64,
    mean: Vec<f64>,
    std: Vec<f64>,
    /// `preprocessing.dtype`: values are rounded and saturated to it first.
    value_dtype: DType,
}

/// The preprocessing used without a `preprocessing` block.
fn default_preprocessing(channels: usize) -> Preprocessing {
    let color = if channels == 1 {
        Color::Gray
    } else {
        Color::Rgb
    };
    Preprocessing {
        color,
        scale: 1.0 / 255.0,
        ..Preprocessing::default()
    }
}

/// `values` (1 or `n`) as `n` per-channel values; empty gives `fill`.
fn per_channel(values: &[f64], n: usize, fill: f64) -> Vec<f64> {
    match values.len() {
        0 => vec![fill; n],
        1 => vec![values[0]; n],
        _ => values.to_vec(),
    }
}

impl Plan {
    /// Resolves `pre` (or, when `None`, the default: resize to the input's
    /// size, RGB or gray after the input's channels, scale 1/255, the
    /// input's layout, with a warning) against the input `spec`.
    pub fn new(pre: Option<&Preprocessing>, spec: &IoSpec) -> Result<Plan> {
        let input = ImageInput::new(spec, pre.and_then(|p| p.layout))?;
        let mut warnings = Vec::new();
        let default;
        let pre = match pre {
            Some(p) => p,
            None => {
                default = default_preprocessing(input.channels);
                warnings.push(format!(
                    "the network has no preprocessing block: images are resized to {}x{}, {}, scaled by 1/255, laid out {}; a zoo's Python input preparator is not run, add a `preprocessing` block to make the preparation exact",
                    input.height, input.width, default.color.name(), input.layout
                ));
                &default
            }
        };
        let config = |reason: String| PrepareError::Config {
            input: spec.name.clone(),
            reason,
        };
        let n = pre.color.channels();
        if n != input.channels {
            return Err(config(format!(
                "color {} gives {n} channel(s) but the input has {}",
                pre.color.name(),
                input.channels
            )));
        }
        for (key, v) in [("mean", &pre.mean), ("std", &pre.std)] {
            if v.len() > 1 && v.len() != n {
                return Err(config(format!(
                    "{key} has {} values for {n} channel(s)",
                    v.len()
                )));
            }
        }
        let resize = match (pre.resize_shorter_side, pre.resize, pre.center_crop) {
            (Some(s), _, _) => Resize::ShorterSide(s),
            (None, Some(hw), _) => Resize::Exact(hw),
            (None, None, Some(_)) => Resize::Keep,
            (None, None, None) => Resize::Exact([input.height, input.width]),
        };
        Ok(Plan {
            resize,
            crop: pre.center_crop,
            color: pre.color,
            scale: pre.scale,
            mean: per_channel(&pre.mean, n, 0.0),
            std: per_channel(&pre.std, n, 1.0),
            value_dtype: pre.dtype.unwrap_or(spec.dtype),
            input,
            warnings,
        })
    }

    /// One 8-bit RGB image as one batch element: the bytes (little-endian,
    /// the input's dtype and layout) and the [`Geometry`] that maps the
    /// network's pixels back to the image's. Resize, then center crop (see
    /// the module doc); the result must be the input's height and width.
    pub fn prepare(&self, img: &RgbImage) -> Result<(Vec<u8>, Geometry)> {
        self.prepare_samples(&to_samples(img))
    }

    /// [`Plan::prepare`] on an image of working samples (see [`UNIT`]).
    fn prepare_samples(&self, img: &Rgb32FImage) -> Result<(Vec<u8>, Geometry)> {
        let (src_w, src_h) = img.dimensions();
        let (rw, rh) = self.resized_size(src_w as usize, src_h as usize);
        let resized;
        let img = if (rw, rh) == (src_w as usize, src_h as usize) {
            img
        } else {
            resized = imageops::resize(img, rw as u32, rh as u32, FilterType::Triangle);
            &resized
        };
        let (img, left, top) = self.center_crop(img)?;
        let (w, h) = (img.width() as usize, img.height() as usize);
        if (h, w) != (self.input.height, self.input.width) {
            return Err(PrepareError::Size {
                input: self.input.spec.name.clone(),
                got_h: h,
                got_w: w,
                net_h: self.input.height,
                net_w: self.input.width,
            });
        }
        let geometry = Geometry {
            src_w,
            src_h,
            net_w: w as u32,
            net_h: h as u32,
            scale_x: rw as f32 / src_w as f32,
            scale_y: rh as f32 / src_h as f32,
            offset_x: -(left as f32),
            offset_y: -(top as f32),
        };
        Ok((self.encode(&self.values(&img)), geometry))
    }

    /// The size after the resize step, `(w, h)`. The shorter side's
    /// partner is truncated, as torchvision's `Resize(int)` does.
    fn resized_size(&self, w: usize, h: usize) -> (usize, usize) {
        match self.resize {
            Resize::ShorterSide(s) if w <= h => (s, (s * h / w).max(1)),
            Resize::ShorterSide(s) => ((s * w / h).max(1), s),
            Resize::Exact([h, w]) => (w, h),
            Resize::Keep => (w, h),
        }
    }

    /// The centre crop (top-left corner at round((size - crop) / 2), ties
    /// to even as torchvision's Python `round`), and that corner.
    fn center_crop(&self, img: &Rgb32FImage) -> Result<(Rgb32FImage, usize, usize)> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let Some([ch, cw]) = self.crop else {
            return Ok((img.clone(), 0, 0));
        };
        if ch > h || cw > w {
            return Err(PrepareError::Crop {
                crop_h: ch,
                crop_w: cw,
                h,
                w,
            });
        }
        let corner =
            |size: usize, crop: usize| ((size - crop) as f64 / 2.0).round_ties_even() as usize;
        let (left, top) = (corner(w, cw), corner(h, ch));
        let out = imageops::crop_imm(img, left as u32, top as u32, cw as u32, ch as u32).to_image();
        Ok((out, left, top))
    }

    /// Normalised values in the input's layout: channel `c` of the output
    /// (in `color` order) is `(pixel * scale - mean[c]) / std[c]` with the
    /// pixel in 0..=255.
    fn values(&self, img: &Rgb32FImage) -> Vec<f64> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let c_n = self.input.channels;
        let mut out = vec![0.0; c_n * h * w];
        for (x, y, p) in img.enumerate_pixels() {
            let (x, y) = (x as usize, y as usize);
            for (c, v) in self.channel_values(p).into_iter().take(c_n).enumerate() {
                let v = (v * f64::from(UNIT) * self.scale - self.mean[c]) / self.std[c];
                let i = match self.input.layout {
                    Layout::Nchw => (c * h + y) * w + x,
                    Layout::Nhwc => (y * w + x) * c_n + c,
                };
                out[i] = v;
            }
        }
        out
    }

    /// A pixel's channels in `color` order (gray: luma, then unused zeros).
    fn channel_values(&self, p: &Rgb<f32>) -> [f64; 3] {
        let [r, g, b] = p.0.map(f64::from);
        match self.color {
            Color::Rgb => [r, g, b],
            Color::Bgr => [b, g, r],
            Color::Gray => [LUMA[0] * r + LUMA[1] * g + LUMA[2] * b, 0.0, 0.0],
        }
    }

    /// Values → `preprocessing.dtype` → the input's dtype, as bytes.
    fn encode(&self, values: &[f64]) -> Vec<u8> {
        let values: Vec<f64> = values
            .iter()
            .map(|&v| quantize(v, self.value_dtype))
            .collect();
        to_bytes(&values, self.input.spec.dtype)
    }

    /// A `.npy` array as one batch element. An array of one element's
    /// shape (with or without a leading batch axis of 1) is already
    /// prepared: it is only converted to the input's dtype. An array shaped
    /// so but for its channel count is an error. Otherwise an `HxW` or
    /// `HxWxC` (C = 1, 3 or 4; alpha dropped) array of uint8 (0..=255) or
    /// floats (0..=1, clamped) is an image and goes through
    /// [`Plan::prepare`]. `path` names the errors.
    pub fn prepare_array(&self, t: &Tensor, path: &Path) -> Result<(Vec<u8>, Geometry)> {
        let elem = self.input.element_shape();
        let dims = t.dims();
        let unbatched = dims
            .strip_prefix(&[1])
            .filter(|d| d.len() == elem.len())
            .unwrap_or(dims);
        if unbatched == elem {
            let values: Vec<f64> = t.to_f64_vec();
            let geometry = Geometry::identity(self.input.width as u32, self.input.height as u32);
            return Ok((to_bytes(&values, self.input.spec.dtype), geometry));
        }
        if let Some(found) = self.other_channels(unbatched) {
            return Err(PrepareError::Channels {
                path: path.to_path_buf(),
                found,
                expected: self.input.channels,
                input: self.input.spec.name.clone(),
            });
        }
        let img = array_image(t).ok_or_else(|| PrepareError::NpyShape {
            path: path.to_path_buf(),
            dtype: t.dtype().name().to_string(),
            shape: dims.to_vec(),
            input: self.input.spec.name.clone(),
            expected: elem.to_vec(),
        })?;
        self.prepare_samples(&img).map_err(|e| e.at(path))
    }

    /// A `.npy` array as one or more batch elements: `[k, …element]` (the
    /// input's element shape stacked on a leading axis) gives `k` prepared
    /// elements; anything else is one, see [`Plan::prepare_array`].
    pub fn prepare_stack(&self, t: &Tensor, path: &Path) -> Result<Vec<(Vec<u8>, Geometry)>> {
        let elem = self.input.element_shape();
        let dims = t.dims();
        let Some((&k, rest)) = dims
            .split_first()
            .filter(|(_, rest)| rest.len() == elem.len())
        else {
            return Ok(vec![self.prepare_array(t, path)?]);
        };
        if rest != elem {
            if let Some(found) = self.other_channels(rest) {
                return Err(PrepareError::Channels {
                    path: path.to_path_buf(),
                    found,
                    expected: self.input.channels,
                    input: self.input.spec.name.clone(),
                });
            }
            return Ok(vec![self.prepare_array(t, path)?]);
        }
        let values = t.to_f64_vec();
        let geometry = Geometry::identity(self.input.width as u32, self.input.height as u32);
        let n = self.input.element_len();
        Ok((0..k)
            .map(|i| {
                (
                    to_bytes(&values[i * n..(i + 1) * n], self.input.spec.dtype),
                    geometry,
                )
            })
            .collect())
    }

    /// The channel count of `dims` when it is an element's shape with
    /// another channel count.
    fn other_channels(&self, dims: &[usize]) -> Option<usize> {
        let elem = self.input.element_shape();
        let c_axis = match self.input.layout {
            Layout::Nchw => 0,
            Layout::Nhwc => 2,
        };
        let same_but_channels =
            dims.len() == elem.len() && (0..dims.len()).all(|i| i == c_axis || dims[i] == elem[i]);
        same_but_channels.then(|| dims[c_axis])
    }
}

/// An 8-bit RGB image as working samples.
fn to_samples(img: &RgbImage) -> Rgb32FImage {
    Rgb32FImage::from_fn(img.width(), img.height(), |x, y| {
        Rgb(img.get_pixel(x, y).0.map(|v| f32::from(v) / UNIT))
    })
}

/// An `HxW` or `HxWxC` array (C = 1, 3 or 4) of uint8 or floats in
/// [0, 1] as working samples; `None` when it is not one.
fn array_image(t: &Tensor) -> Option<Rgb32FImage> {
    let (h, w, c) = match *t.dims() {
        [h, w] => (h, w, 1),
        [h, w, c] if matches!(c, 1 | 3 | 4) => (h, w, c),
        _ => return None,
    };
    let to_unit: fn(f64) -> f64 = match t.dtype() {
        DType::U8 => |v| v / f64::from(UNIT),
        d if d.is_float() => |v| v.clamp(0.0, 1.0) * 255.0 / f64::from(UNIT),
        _ => return None,
    };
    if h == 0 || w == 0 || h > u32::MAX as usize || w > u32::MAX as usize {
        return None;
    }
    let v = t.to_f64_vec();
    Some(Rgb32FImage::from_fn(w as u32, h as u32, |x, y| {
        let i = (y as usize * w + x as usize) * c;
        let s = |k: usize| to_unit(v[i + if c == 1 { 0 } else { k }]) as f32;
        Rgb([s(0), s(1), s(2)])
    }))
}

/// `v` as a value of `dtype`: integers round to nearest (ties to even)
/// and saturate; floats are kept.
fn quantize(v: f64, dtype: DType) -> f64 {
    if !dtype.is_int() {
        return v;
    }
    let (lo, hi) = match dtype {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        _ => (i64::MIN as f64, i64::MAX as f64),
    };
    if v.is_nan() {
        return 0.0;
    }
    v.round_ties_even().clamp(lo, hi)
}

/// `values` stored as `dtype`, little-endian (integers rounded and saturated).
fn to_bytes(values: &[f64], dtype: DType) -> Vec<u8> {
    let q: Vec<f64> = values.iter().map(|&v| quantize(v, dtype)).collect();
    let t = Tensor::from_f64(dtype, Shape::from(vec![q.len()]), &q)
        .expect("a flat shape fits its values");
    npy::raw_le_bytes(&t)
}
