//! Input preparation: photos and `.npy` arrays into a network's input
//! frames, following the configuration's `preprocessing` block (SPEC
//! "Input preparation"). The library behind `kann prepare`, `kann demo`
//! and `kann quickstart`.
//!
//! - [`Plan`] resolves the block against the image input (layout from
//!   `preprocessing.layout`, else from the input's shape, see
//!   [`infer_layout`]) and prepares one image: resize, center crop, colour,
//!   `(pixel * scale - mean[c]) / std[c]`, layout, dtype.
//! - [`prepare_image`] does that for a single image.
//! - [`prepare_sources`] reads files and folders (a `.npy` array may hold
//!   several prepared elements stacked on a leading axis) and packs the prepared
//!   images into frames of the artifact's batch size. The last frame is
//!   padded by repeating the last image (the padding's outputs are valid
//!   and are simply ignored); [`Prepared::padded`] says how many.
//!
//! Only one image input is fed: a network whose inputs hold no or several
//! image-like tensors is an error naming them; non-image inputs beside a
//! single image input are listed in [`Prepared::not_fed`].

mod error;
mod plan;
#[cfg(test)]
mod tests;

pub use error::{PrepareError, Result};
pub use plan::{infer_layout, ImageInput, Plan};

use crate::decode::{collect_sources, read_source, Source};
use crate::Geometry;
use image::RgbImage;
use kann_config::Preprocessing;
use kann_io::stream::IoSpec;
use std::path::PathBuf;

/// Prepares one image as one batch element of `spec` (bytes in the
/// input's dtype and layout) with its [`Geometry`]. See [`Plan`].
pub fn prepare_image(
    img: &RgbImage,
    pre: Option<&Preprocessing>,
    spec: &IoSpec,
) -> Result<(Vec<u8>, Geometry)> {
    Plan::new(pre, spec)?.prepare(img)
}

/// Every source prepared into the input stream of the image input.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The image input (name, dtype, shape with the batch).
    pub input: IoSpec,
    /// One frame (a whole batch) per entry, as `write_input_stream` takes.
    pub frames: Vec<Vec<u8>>,
    /// One per source, in order (padding excluded).
    pub geometries: Vec<Geometry>,
    /// The source file of each batch element, in order (a stacked `.npy`
    /// array appears once per element it holds; padding excluded).
    pub sources: Vec<PathBuf>,
    /// Batch elements added to fill the last frame (copies of the last image).
    pub padded: usize,
    /// Inputs of the network that are not fed (not images).
    pub not_fed: Vec<String>,
    /// Warnings to show the user (e.g. the default preprocessing).
    pub warnings: Vec<String>,
}

/// The one image input among `specs`: with a single input, that input
/// (an error if it is not an image); otherwise the only image-like one.
pub fn image_input<'a>(specs: &'a [IoSpec], pre: Option<&Preprocessing>) -> Result<&'a IoSpec> {
    let layout = pre.and_then(|p| p.layout);
    if let [only] = specs {
        ImageInput::new(only, layout)?;
        return Ok(only);
    }
    let images: Vec<&IoSpec> = specs
        .iter()
        .filter(|s| ImageInput::new(s, layout).is_ok())
        .collect();
    match images[..] {
        [one] => Ok(one),
        _ => {
            let names: Vec<String> = specs
                .iter()
                .map(|s| format!("'{}' {:?}", s.name, s.shape))
                .collect();
            Err(PrepareError::ImageInputs {
                count: images.len(),
                names: names.join(", "),
            })
        }
    }
}

/// Reads `sources` (files and folders, see [`collect_sources`]), prepares
/// each for the image input of `specs` with `pre` (see [`Plan::new`] for
/// `None`), and packs them into frames of the input's batch size.
/// `batch`, when given, must be that batch size.
pub fn prepare_sources(
    sources: &[PathBuf],
    pre: Option<&Preprocessing>,
    specs: &[IoSpec],
    batch: Option<usize>,
) -> Result<Prepared> {
    let spec = image_input(specs, pre)?;
    let plan = Plan::new(pre, spec)?;
    if let Some(b) = batch.filter(|&b| b != plan.input.batch) {
        return Err(PrepareError::Batch {
            requested: b,
            batch: plan.input.batch,
            input: spec.name.clone(),
        });
    }
    let files = collect_sources(sources)?;
    let (mut elements, mut geometries, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for path in &files {
        let prepared = match read_source(path)? {
            Source::Image(img) => vec![plan.prepare(&img).map_err(|e| e.at(path))?],
            Source::Array(t) => plan.prepare_stack(&t, path)?,
        };
        for (bytes, geometry) in prepared {
            elements.push(bytes);
            geometries.push(geometry);
            names.push(path.clone());
        }
    }
    let (frames, padded) = pack_batches(elements, plan.input.batch);
    Ok(Prepared {
        input: spec.clone(),
        frames,
        geometries,
        sources: names,
        padded,
        not_fed: specs
            .iter()
            .filter(|s| s.name != spec.name)
            .map(|s| s.name.clone())
            .collect(),
        warnings: plan.warnings,
    })
}

/// Concatenates batch elements into frames of `batch` elements, the last
/// one padded with copies of the last element; returns the frames and the
/// number of copies added.
pub fn pack_batches(elements: Vec<Vec<u8>>, batch: usize) -> (Vec<Vec<u8>>, usize) {
    let batch = batch.max(1);
    let Some(last) = elements.last().cloned() else {
        return (Vec::new(), 0);
    };
    let padded = (batch - elements.len() % batch) % batch;
    let mut all = elements;
    all.extend(std::iter::repeat_n(last, padded));
    let frames = all.chunks(batch).map(|c| c.concat()).collect();
    (frames, padded)
}
