//! `Einsum`: sums of products over labelled axes, with explicit or implicit
//! output, ellipsis and repeated labels (diagonals, traces).

use super::super::{check_dtype, required, InferInput, InferResult, NUMERIC};
use crate::TensorInfo;
use kann_tensor::Shape;

#[derive(Debug, Clone, PartialEq)]
pub struct Einsum {
    pub equation: String,
}

/// An equation resolved against input shapes: every label (ellipsis axes
/// become labels too) numbered, with its extent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EinsumPlan {
    /// Per input, the label of each axis.
    pub inputs: Vec<Vec<usize>>,
    /// The label of each output axis.
    pub output: Vec<usize>,
    /// Extent of each label.
    pub sizes: Vec<usize>,
}

/// One side of a term: explicit letters and where the ellipsis sits.
struct Term {
    letters: Vec<char>,
    /// Letters before the ellipsis, when there is one.
    ellipsis_at: Option<usize>,
}

fn parse_term(s: &str) -> Result<Term, String> {
    let s = s.trim();
    let (before, after, ellipsis) = match s.find("...") {
        Some(p) => (&s[..p], &s[p + 3..], true),
        None => (s, "", false),
    };
    let letters: Vec<char> = before.chars().chain(after.chars()).filter(|c| !c.is_whitespace()).collect();
    if let Some(c) = letters.iter().find(|c| !c.is_ascii_alphabetic()) {
        return Err(format!("einsum label '{c}' is not a letter"));
    }
    let n_before = before.chars().filter(|c| !c.is_whitespace()).count();
    Ok(Term { letters, ellipsis_at: ellipsis.then_some(n_before) })
}

/// Ellipsis labels are numbered after the 52 letters.
fn letter_id(c: char) -> usize {
    if c.is_ascii_lowercase() {
        c as usize - 'a' as usize
    } else {
        26 + c as usize - 'A' as usize
    }
}

impl Einsum {
    pub fn plan(&self, shapes: &[&[usize]]) -> Result<EinsumPlan, String> {
        let (lhs, rhs) = match self.equation.split_once("->") {
            Some((l, r)) => (l, Some(r)),
            None => (self.equation.as_str(), None),
        };
        let terms: Vec<Term> = lhs.split(',').map(parse_term).collect::<Result<_, _>>()?;
        if terms.len() != shapes.len() {
            return Err(format!("equation '{}' has {} operands but the node has {} inputs", self.equation, terms.len(), shapes.len()));
        }
        // Number of ellipsis axes: the most any operand covers.
        let mut n_ell = 0;
        for (t, s) in terms.iter().zip(shapes) {
            let covered = s.len().checked_sub(t.letters.len()).ok_or_else(|| format!("operand of shape {s:?} has fewer axes than '{}'", t.letters.iter().collect::<String>()))?;
            if t.ellipsis_at.is_none() && covered != 0 {
                return Err(format!("operand of shape {s:?} does not match '{}'", t.letters.iter().collect::<String>()));
            }
            n_ell = n_ell.max(covered);
        }
        let mut sizes = vec![1usize; 52 + n_ell];
        let mut seen = vec![false; 52 + n_ell];
        let mut counts = vec![0usize; 52];
        let mut inputs = vec![];
        for (t, s) in terms.iter().zip(shapes) {
            let covered = s.len() - t.letters.len();
            let mut labels = vec![];
            for (i, &c) in t.letters.iter().enumerate() {
                if t.ellipsis_at == Some(i) {
                    labels.extend(52 + n_ell - covered..52 + n_ell);
                }
                labels.push(letter_id(c));
                counts[letter_id(c)] += 1;
            }
            if t.ellipsis_at == Some(t.letters.len()) {
                labels.extend(52 + n_ell - covered..52 + n_ell);
            }
            for (&l, &d) in labels.iter().zip(s.iter()) {
                match (seen[l], sizes[l], d) {
                    (false, _, _) => sizes[l] = d,
                    (true, a, b) if a == b || b == 1 => {}
                    (true, 1, b) => sizes[l] = b,
                    (true, a, b) => return Err(format!("einsum label has extents {a} and {b}")),
                }
                seen[l] = true;
            }
            inputs.push(labels);
        }
        let output = match rhs {
            Some(r) => {
                let t = parse_term(r)?;
                let mut out = vec![];
                for (i, &c) in t.letters.iter().enumerate() {
                    if t.ellipsis_at == Some(i) {
                        out.extend(52..52 + n_ell);
                    }
                    let l = letter_id(c);
                    if !seen[l] || out.contains(&l) {
                        return Err(format!("output label '{c}' is repeated or absent from the inputs"));
                    }
                    out.push(l);
                }
                if t.ellipsis_at == Some(t.letters.len()) {
                    out.extend(52..52 + n_ell);
                }
                out
            }
            // Implicit: ellipsis axes, then the labels used once, alphabetically.
            None => (52..52 + n_ell).chain((0..52).filter(|&l| counts[l] == 1)).collect(),
        };
        Ok(EinsumPlan { inputs, output, sizes })
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let first = required(inputs, 0, "Inputs")?.info;
        check_dtype(first, NUMERIC, "Inputs")?;
        let mut shapes = vec![];
        for (i, inp) in inputs.iter().enumerate() {
            let inp = inp.ok_or_else(|| format!("missing input #{i}"))?;
            if inp.info.dtype != first.dtype {
                return Err(format!("einsum inputs differ in dtype ({} and {})", first.dtype, inp.info.dtype));
            }
            shapes.push(inp.info.shape.dims());
        }
        let plan = self.plan(&shapes)?;
        let dims = plan.output.iter().map(|&l| plan.sizes[l]).collect();
        Ok(vec![TensorInfo::new(first.dtype, Shape::new(dims))])
    }
}
