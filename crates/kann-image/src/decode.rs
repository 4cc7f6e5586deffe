//! Reading sources: photos decoded with the `image` crate (PNG, JPEG, TIFF,
//! BMP) into 8-bit RGB, `.npy` arrays read with kann-tensor, and folders
//! expanded into the files they hold.

use crate::prepare::{PrepareError, Result};
use image::RgbImage;
use kann_tensor::{npy, Tensor};
use std::path::{Path, PathBuf};

/// File extensions read as sources (lowercase; matched case-insensitively).
pub const EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "tif", "tiff", "bmp", "npy"];

/// What a source file holds.
#[derive(Debug, Clone)]
pub enum Source {
    /// A decoded photo.
    Image(RgbImage),
    /// A `.npy` array, as stored.
    Array(Tensor),
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

/// Whether `path` has one of [`EXTENSIONS`].
pub fn is_source_file(path: &Path) -> bool {
    extension(path).is_some_and(|e| EXTENSIONS.contains(&e.as_str()))
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> PrepareError {
    PrepareError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Decodes an image file into 8-bit RGB: alpha is dropped, gray is
/// replicated into the three channels, 16-bit samples are scaled to 8 bits.
/// The format is taken from the file's content, not its extension.
pub fn load_image(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| read_error(path, e))?;
    let img = image::load_from_memory(&bytes).map_err(|e| PrepareError::Decode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(img.to_rgb8())
}

/// Reads one source file: `.npy` as an array, the image extensions as a
/// photo, anything else is [`PrepareError::Unsupported`].
pub fn read_source(path: &Path) -> Result<Source> {
    match extension(path).as_deref() {
        Some("npy") => {
            if !path.is_file() {
                return Err(read_error(path, "no such file"));
            }
            npy::read(path)
                .map(Source::Array)
                .map_err(|e| read_error(path, e))
        }
        Some(e) if EXTENSIONS.contains(&e) => load_image(path).map(Source::Image),
        _ if !path.exists() => Err(read_error(path, "no such file or folder")),
        _ => Err(PrepareError::Unsupported {
            path: path.to_path_buf(),
        }),
    }
}

/// The files to prepare, in order: each file as given (whatever its
/// extension; [`read_source`] judges it), each folder replaced by its
/// source files (not recursive, sorted by name, other files skipped). A
/// folder without any, or an empty list, is an error.
pub fn collect_sources(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(PrepareError::NoSources);
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.extend(folder_sources(p)?);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(read_error(p, "no such file or folder"));
        }
    }
    Ok(out)
}

fn folder_sources(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| read_error(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| read_error(dir, e))?.path();
        if path.is_file() && is_source_file(&path) {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(PrepareError::EmptyFolder {
            path: dir.to_path_buf(),
        });
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_tensor::Shape;

    fn temp_dir(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("kann-image-decode-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn folders_expand_sorted_and_filtered() {
        let d = temp_dir("collect");
        for f in ["b.PNG", "a.npy", "notes.txt", "c.jpeg"] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let extra = d.join("notes.txt");
        let got = collect_sources(&[d.clone(), extra.clone()]).unwrap();
        assert_eq!(
            got,
            vec![d.join("a.npy"), d.join("b.PNG"), d.join("c.jpeg"), extra]
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn empty_folders_and_missing_paths_are_errors() {
        let d = temp_dir("empty");
        std::fs::write(d.join("readme.md"), b"x").unwrap();
        let e = collect_sources(std::slice::from_ref(&d)).unwrap_err();
        assert!(matches!(e, PrepareError::EmptyFolder { .. }), "{e}");
        assert!(e.to_string().contains(&d.display().to_string()), "{e}");
        let e = collect_sources(&[d.join("nope.png")]).unwrap_err();
        assert!(
            e.to_string().starts_with("cannot read") && e.to_string().contains("nope.png"),
            "{e}"
        );
        assert!(matches!(collect_sources(&[]), Err(PrepareError::NoSources)));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn images_decode_to_rgb_and_garbage_does_not() {
        let d = temp_dir("load");
        let rgba = image::RgbaImage::from_fn(2, 1, |x, _| image::Rgba([10 * x as u8, 20, 30, 0]));
        rgba.save(d.join("rgba.png")).unwrap();
        let gray = image::GrayImage::from_fn(1, 1, |_, _| image::Luma([77]));
        gray.save(d.join("gray.png")).unwrap();
        let img = load_image(&d.join("rgba.png")).unwrap();
        assert_eq!(img.get_pixel(1, 0).0, [10, 20, 30], "alpha dropped");
        assert_eq!(
            load_image(&d.join("gray.png")).unwrap().get_pixel(0, 0).0,
            [77, 77, 77]
        );
        std::fs::write(d.join("bad.png"), b"not a png").unwrap();
        let e = load_image(&d.join("bad.png")).unwrap_err();
        assert!(
            matches!(e, PrepareError::Decode { .. }) && e.to_string().contains("bad.png"),
            "{e}"
        );
        std::fs::write(d.join("x.gif"), b"GIF89a").unwrap();
        assert!(matches!(
            read_source(&d.join("x.gif")),
            Err(PrepareError::Unsupported { .. })
        ));
        let t = Tensor::from_f32(Shape::from(&[2usize][..]), vec![1.0, 2.0]).unwrap();
        npy::write(&d.join("t.npy"), &t).unwrap();
        assert!(matches!(read_source(&d.join("t.npy")), Ok(Source::Array(a)) if a == t));
        assert!(matches!(
            read_source(&d.join("missing.npy")),
            Err(PrepareError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(&d);
    }
}
