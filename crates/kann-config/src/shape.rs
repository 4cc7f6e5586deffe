//! Tensor shapes as the configuration writes them, and how to read them.
//!
//! The Kalray model zoo writes image tensors as `[H, B, W, C]` (its files say
//! so in a comment: `[224, 1, 224, 3] # H, B, W, D`), and the same order for
//! image-like outputs (`[80, 1, 80, 255]`). Other ranks are written as they
//! are (`[1, 1000]`, `[1001]`). kann users also write plain batch-first
//! shapes, NCHW (`[1, 3, 224, 224]`) or NHWC (`[1, 224, 224, 3]`).
//!
//! [`TensorShape`] keeps the dims exactly as written. Two ways to read them:
//!
//! * [`TensorShape::reading`], a guess without the model, by this rule:
//!   1. rank 4 with `d1 == 1` and `d0 != 1` → [`ShapeReading::ZooHbwc`]
//!      (`[224, 1, 224, 3]`: batch 1 sits in the second place);
//!   2. other rank 4: `d1 <= 4 < d3` → [`ShapeReading::Nchw`],
//!      `d3 <= 4 < d1` → [`ShapeReading::Nhwc`];
//!   3. anything else → [`ShapeReading::AsWritten`].
//!
//!   The rule cannot tell a zoo shape from an NCHW one with one channel and a
//!   batch above one (`[8, 1, 28, 28]`), which is why the importer binds with:
//! * [`TensorShape::bind`], which matches the written dims against the model's
//!   declared input dims (symbolic dims match anything). Candidates: the dims
//!   as written; for rank 4, the zoo reading put in NCHW order `[B, C, H, W]`
//!   and in NHWC order `[B, H, W, C]`. One distinct match wins. Several: the
//!   guess decides (as written unless the guess is the zoo reading, then the
//!   single matching zoo candidate); if it cannot, the binding is ambiguous
//!   and the error lists the candidates.

use std::fmt;

/// How a written shape is read, see the module docs for the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeReading {
    /// The zoo's `[H, B, W, C]`.
    ZooHbwc,
    /// Batch-first, channels second: `[N, C, H, W]`.
    Nchw,
    /// Batch-first, channels last: `[N, H, W, C]`.
    Nhwc,
    /// Used exactly as written (any rank; rank 4 with no telling sign).
    AsWritten,
}

impl fmt::Display for ShapeReading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShapeReading::ZooHbwc => "zoo H,B,W,C",
            ShapeReading::Nchw => "NCHW",
            ShapeReading::Nhwc => "NHWC",
            ShapeReading::AsWritten => "as written",
        })
    }
}

/// A shape exactly as the configuration wrote it. Every dim is at least 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorShape {
    pub dims: Vec<usize>,
}

/// The result of [`TensorShape::bind`]: the dims in the model's axis order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundShape {
    pub reading: ShapeReading,
    pub dims: Vec<usize>,
}

/// Why a written shape cannot be bound to the model's input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeBindError {
    #[error("shape {written} fits the model's {model} in no reading (as written, zoo H,B,W,C)")]
    NoMatch { written: String, model: String },
    #[error("shape {written} is ambiguous against the model's {model}: it reads as {candidates}; write it batch-first in the model's layout")]
    Ambiguous {
        written: String,
        model: String,
        candidates: String,
    },
}

fn show(dims: &[usize]) -> String {
    format!("{dims:?}")
}

fn show_model(dims: &[Option<usize>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or_else(|| "?".to_string(), |d| d.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

impl TensorShape {
    pub fn new(dims: Vec<usize>) -> TensorShape {
        TensorShape { dims }
    }

    /// The guess without the model (see the module docs for the rule).
    pub fn reading(&self) -> ShapeReading {
        match self.dims[..] {
            [d0, 1, _, _] if d0 != 1 => ShapeReading::ZooHbwc,
            [_, d1, _, d3] if d1 <= 4 && d3 > 4 => ShapeReading::Nchw,
            [_, d1, _, d3] if d3 <= 4 && d1 > 4 => ShapeReading::Nhwc,
            _ => ShapeReading::AsWritten,
        }
    }

    /// `[N, C, H, W]` under [`Self::reading`], when it is an image reading.
    pub fn nchw(&self) -> Option<[usize; 4]> {
        let d = &self.dims;
        match self.reading() {
            ShapeReading::ZooHbwc => Some([d[1], d[3], d[0], d[2]]),
            ShapeReading::Nchw => Some([d[0], d[1], d[2], d[3]]),
            ShapeReading::Nhwc => Some([d[0], d[3], d[1], d[2]]),
            ShapeReading::AsWritten => None,
        }
    }

    /// `[N, H, W, C]` under [`Self::reading`], when it is an image reading.
    pub fn nhwc(&self) -> Option<[usize; 4]> {
        self.nchw().map(|[n, c, h, w]| [n, h, w, c])
    }

    /// Total element count (saturating: shapes come from user files).
    pub fn numel(&self) -> usize {
        self.dims.iter().fold(1usize, |a, &d| a.saturating_mul(d))
    }

    /// Binds the written dims to the model's declared dims (`None` =
    /// symbolic). See the module docs for the rule.
    pub fn bind(&self, model: &[Option<usize>]) -> Result<BoundShape, ShapeBindError> {
        let d = &self.dims;
        let mut candidates = vec![(ShapeReading::AsWritten, d.clone())];
        if d.len() == 4 {
            candidates.push((ShapeReading::ZooHbwc, vec![d[1], d[3], d[0], d[2]]));
            candidates.push((ShapeReading::ZooHbwc, vec![d[1], d[0], d[2], d[3]]));
        }
        let fits = |dims: &[usize]| {
            dims.len() == model.len()
                && dims
                    .iter()
                    .zip(model)
                    .all(|(&x, m)| m.is_none_or(|m| m == x))
        };
        let mut matching: Vec<(ShapeReading, Vec<usize>)> = Vec::new();
        for (reading, dims) in candidates {
            if fits(&dims) && !matching.iter().any(|(_, m)| *m == dims) {
                matching.push((reading, dims));
            }
        }
        let pick = |(reading, dims): (ShapeReading, Vec<usize>)| BoundShape { reading, dims };
        match matching.len() {
            0 => Err(ShapeBindError::NoMatch {
                written: show(d),
                model: show_model(model),
            }),
            1 => Ok(pick(matching.remove(0))),
            _ => {
                let zoo: Vec<_> = matching
                    .iter()
                    .filter(|(r, _)| *r == ShapeReading::ZooHbwc)
                    .cloned()
                    .collect();
                if self.reading() == ShapeReading::ZooHbwc {
                    if zoo.len() == 1 {
                        return Ok(pick(zoo.into_iter().next().expect("one zoo candidate")));
                    }
                } else if let Some(first) =
                    matching.iter().find(|(r, _)| *r == ShapeReading::AsWritten)
                {
                    return Ok(pick(first.clone()));
                }
                let list: Vec<String> = matching.iter().map(|(_, m)| show(m)).collect();
                Err(ShapeBindError::Ambiguous {
                    written: show(d),
                    model: show_model(model),
                    candidates: list.join(" or "),
                })
            }
        }
    }
}

impl fmt::Display for TensorShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&show(&self.dims))
    }
}

/// Parses a command-line shape (`kann generate model.onnx --input-shape …`):
/// `1,3,224,224`, `1x3x224x224` or `[1, 3, 224, 224]`, optionally prefixed by
/// an input name and `:` or `=` (`images:1,3,224,224`). Returns the name, if
/// any, and the shape; the message of the error says what is wrong.
pub fn parse_shape_arg(arg: &str) -> Result<(Option<String>, TensorShape), String> {
    let arg = arg.trim();
    let (name, dims) = match arg.rfind([':', '=']) {
        Some(i) => (Some(arg[..i].trim().to_string()), &arg[i + 1..]),
        None => (None, arg),
    };
    if name.as_deref() == Some("") {
        return Err(format!("\"{arg}\": empty input name before the shape"));
    }
    let dims = dims.trim().trim_start_matches('[').trim_end_matches(']');
    let mut out = Vec::new();
    for part in dims.split([',', 'x', 'X']) {
        let part = part.trim();
        match part.parse::<usize>() {
            Ok(d) if d > 0 => out.push(d),
            _ => {
                return Err(format!(
                    "\"{arg}\": \"{part}\" is not a positive dimension (write e.g. 1,3,224,224)"
                ))
            }
        }
    }
    Ok((name, TensorShape::new(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(d: &[usize]) -> TensorShape {
        TensorShape::new(d.to_vec())
    }

    #[test]
    fn readings_follow_the_documented_rule() {
        assert_eq!(s(&[224, 1, 224, 3]).reading(), ShapeReading::ZooHbwc);
        assert_eq!(s(&[80, 1, 80, 255]).reading(), ShapeReading::ZooHbwc);
        assert_eq!(s(&[1, 3, 224, 224]).reading(), ShapeReading::Nchw);
        assert_eq!(s(&[1, 224, 224, 3]).reading(), ShapeReading::Nhwc);
        assert_eq!(s(&[1, 64, 64, 810]).reading(), ShapeReading::AsWritten);
        assert_eq!(s(&[1, 1000]).reading(), ShapeReading::AsWritten);
        assert_eq!(s(&[1001]).reading(), ShapeReading::AsWritten);
        assert_eq!(s(&[480, 1, 640, 3]).nchw(), Some([1, 3, 480, 640]));
        assert_eq!(s(&[480, 1, 640, 3]).nhwc(), Some([1, 480, 640, 3]));
        assert_eq!(s(&[1, 3, 32, 48]).nhwc(), Some([1, 32, 48, 3]));
        assert_eq!(s(&[1, 1000]).nchw(), None);
    }

    #[test]
    fn zoo_shape_binds_to_nchw_and_nhwc_models() {
        let zoo = s(&[480, 1, 640, 3]);
        let b = zoo.bind(&[None, Some(3), Some(480), Some(640)]).unwrap();
        assert_eq!(
            (b.reading, b.dims),
            (ShapeReading::ZooHbwc, vec![1, 3, 480, 640])
        );
        let b = zoo.bind(&[Some(1), Some(480), Some(640), Some(3)]).unwrap();
        assert_eq!(b.dims, vec![1, 480, 640, 3]);
        // Symbolic H and W: the channel count still decides.
        let b = zoo.bind(&[None, Some(3), None, None]).unwrap();
        assert_eq!(b.dims, vec![1, 3, 480, 640]);
    }

    #[test]
    fn plain_shapes_bind_as_written() {
        let b = s(&[1, 3, 224, 224])
            .bind(&[None, Some(3), None, None])
            .unwrap();
        assert_eq!(
            (b.reading, b.dims),
            (ShapeReading::AsWritten, vec![1, 3, 224, 224])
        );
        // The guess misreads this one as zoo; the model settles it.
        let b = s(&[8, 1, 28, 28])
            .bind(&[None, Some(1), Some(28), Some(28)])
            .unwrap();
        assert_eq!(
            (b.reading, b.dims),
            (ShapeReading::AsWritten, vec![8, 1, 28, 28])
        );
        // Fully symbolic model: the guess decides.
        let b = s(&[1, 3, 224, 224]).bind(&[None; 4]).unwrap();
        assert_eq!(b.reading, ShapeReading::AsWritten);
        let b = s(&[1, 1000]).bind(&[None, Some(1000)]).unwrap();
        assert_eq!(b.dims, vec![1, 1000]);
    }

    #[test]
    fn bind_failures_are_explained() {
        let err = s(&[224, 1, 224, 3])
            .bind(&[None, Some(1), Some(28), Some(28)])
            .unwrap_err();
        assert!(matches!(err, ShapeBindError::NoMatch { .. }));
        assert!(err
            .to_string()
            .contains("[224, 1, 224, 3] fits the model's [?, 1, 28, 28]"));
        let err = s(&[224, 1, 224, 3]).bind(&[None; 4]).unwrap_err();
        assert!(matches!(err, ShapeBindError::Ambiguous { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("[1, 3, 224, 224] or [1, 224, 224, 3]"),
            "{err}"
        );
    }

    #[test]
    fn shape_arguments_parse() {
        assert_eq!(
            parse_shape_arg("1,3,224,224").unwrap(),
            (None, s(&[1, 3, 224, 224]))
        );
        assert_eq!(parse_shape_arg("1x3x8x8").unwrap().1, s(&[1, 3, 8, 8]));
        assert_eq!(parse_shape_arg("[1, 3]").unwrap().1, s(&[1, 3]));
        let (name, shape) = parse_shape_arg("images:224,1,224,3").unwrap();
        assert_eq!(
            (name.as_deref(), shape),
            (Some("images"), s(&[224, 1, 224, 3]))
        );
        assert_eq!(parse_shape_arg("x=2x2").unwrap().0.as_deref(), Some("x"));
        assert!(parse_shape_arg("1,0,3")
            .unwrap_err()
            .contains("\"0\" is not a positive"));
        assert!(parse_shape_arg("").is_err());
        assert!(parse_shape_arg(":1,2").is_err());
        assert!(parse_shape_arg("1,-2").is_err());
    }
}
