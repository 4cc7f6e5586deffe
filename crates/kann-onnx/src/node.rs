//! [`NodeCx`]: what an op's import function sees of one ONNX node.

use crate::proto::{attribute_type as at, AttributeProto, NodeProto};
use crate::tensor::tensor_from_proto;
use crate::ImportError;
use kann_ir::{GraphBuilder, TensorInfo, ValueId};
use kann_tensor::Tensor;
use std::cell::RefCell;
use std::fmt::Display;

/// One node being imported: typed attribute access that remembers what was
/// read (an attribute nobody read is an error, never silently ignored), the
/// node's inputs, and a way to turn legacy attributes into constant inputs.
pub struct NodeCx<'a, 'b> {
    pub node: &'a NodeProto,
    /// Version of the node's operator-set domain in this model.
    pub opset: i64,
    /// Positional inputs; import functions may rewrite them (see [`NodeCx::set_const_input`]).
    pub inputs: Vec<Option<ValueId>>,
    pub(crate) locator: String,
    builder: &'a mut GraphBuilder<'b>,
    read: RefCell<Vec<bool>>,
}

impl<'a, 'b> NodeCx<'a, 'b> {
    pub(crate) fn new(node: &'a NodeProto, opset: i64, inputs: Vec<Option<ValueId>>, locator: String, builder: &'a mut GraphBuilder<'b>) -> Self {
        let read = RefCell::new(vec![false; node.attribute.len()]);
        NodeCx { node, opset, inputs, locator, builder, read }
    }

    /// `node #3 "conv1" (Conv)`, for messages.
    pub fn locator(&self) -> &str {
        &self.locator
    }

    /// A node-level error.
    pub fn error(&self, reason: impl Display) -> ImportError {
        ImportError::Node { node: self.locator.clone(), reason: reason.to_string() }
    }

    /// An unsupported attribute value.
    pub fn unsupported(&self, attr: &str, value: impl Display) -> ImportError {
        ImportError::UnsupportedAttribute { node: self.locator.clone(), attr: attr.to_string(), value: value.to_string() }
    }

    fn find(&self, name: &str) -> Option<&'a AttributeProto> {
        let i = self.node.attribute.iter().position(|a| a.name == name)?;
        self.read.borrow_mut()[i] = true;
        Some(&self.node.attribute[i])
    }

    fn expect_type(&self, a: &AttributeProto, want: i32, what: &str) -> Result<(), ImportError> {
        // Type 0 (UNDEFINED) is tolerated: old exporters leave it unset.
        if a.r#type != want && a.r#type != at::UNDEFINED {
            return Err(self.error(format!("attribute '{}' should be {what} (type code {}), found type code {}", a.name, want, a.r#type)));
        }
        if !a.ref_attr_name.is_empty() {
            return Err(self.unsupported(&a.name, format!("a reference to function attribute '{}'", a.ref_attr_name)));
        }
        Ok(())
    }

    /// Marks an attribute as understood without reading it (e.g. a training-only knob).
    pub fn ignore(&self, name: &str) {
        let _ = self.find(name);
    }

    pub fn has_attr(&self, name: &str) -> bool {
        self.node.attribute.iter().any(|a| a.name == name)
    }

    pub fn attr_i_opt(&self, name: &str) -> Result<Option<i64>, ImportError> {
        match self.find(name) {
            None => Ok(None),
            Some(a) => {
                self.expect_type(a, at::INT, "an int")?;
                Ok(Some(a.i))
            }
        }
    }

    pub fn attr_i(&self, name: &str, default: i64) -> Result<i64, ImportError> {
        Ok(self.attr_i_opt(name)?.unwrap_or(default))
    }

    pub fn attr_f_opt(&self, name: &str) -> Result<Option<f32>, ImportError> {
        match self.find(name) {
            None => Ok(None),
            Some(a) => {
                self.expect_type(a, at::FLOAT, "a float")?;
                Ok(Some(a.f))
            }
        }
    }

    pub fn attr_f(&self, name: &str, default: f32) -> Result<f32, ImportError> {
        Ok(self.attr_f_opt(name)?.unwrap_or(default))
    }

    pub fn attr_ints(&self, name: &str) -> Result<Option<Vec<i64>>, ImportError> {
        match self.find(name) {
            None => Ok(None),
            Some(a) => {
                self.expect_type(a, at::INTS, "a list of ints")?;
                Ok(Some(a.ints.clone()))
            }
        }
    }

    pub fn attr_floats(&self, name: &str) -> Result<Option<Vec<f32>>, ImportError> {
        match self.find(name) {
            None => Ok(None),
            Some(a) => {
                self.expect_type(a, at::FLOATS, "a list of floats")?;
                Ok(Some(a.floats.clone()))
            }
        }
    }

    pub fn attr_s(&self, name: &str) -> Result<Option<String>, ImportError> {
        match self.find(name) {
            None => Ok(None),
            Some(a) => {
                self.expect_type(a, at::STRING, "a string")?;
                String::from_utf8(a.s.clone()).map(Some).map_err(|_| self.error(format!("attribute '{name}' is not UTF-8")))
            }
        }
    }

    pub fn attr_strings(&self, name: &str) -> Result<Option<Vec<String>>, ImportError> {
        match self.find(name) {
            None => Ok(None),
            Some(a) => {
                self.expect_type(a, at::STRINGS, "a list of strings")?;
                a.strings.iter().map(|s| String::from_utf8(s.clone()).map_err(|_| self.error(format!("attribute '{name}' is not UTF-8")))).collect::<Result<Vec<_>, _>>().map(Some)
            }
        }
    }

    pub fn attr_t(&self, name: &str) -> Result<Option<Tensor>, ImportError> {
        match self.find(name) {
            None => Ok(None),
            Some(a) => {
                self.expect_type(a, at::TENSOR, "a tensor")?;
                let t = a.t.as_ref().ok_or_else(|| self.error(format!("attribute '{name}' holds no tensor")))?;
                tensor_from_proto(t, None).map(Some)
            }
        }
    }

    /// Number of inputs (including omitted optional ones).
    pub fn n_inputs(&self) -> usize {
        self.inputs.len()
    }

    /// Number of outputs the node names (including omitted optional ones).
    pub fn n_outputs(&self) -> usize {
        self.node.output.len()
    }

    /// Static type of input `i` when present.
    pub fn input_info(&self, i: usize) -> Option<&TensorInfo> {
        let v = self.inputs.get(i).copied().flatten()?;
        Some(&self.builder.value(v).info)
    }

    /// Value of input `i` when it is a constant.
    pub fn input_value(&self, i: usize) -> Option<&Tensor> {
        let v = self.inputs.get(i).copied().flatten()?;
        self.builder.value(v).constant.as_deref()
    }

    /// Puts a constant at input position `i`, padding with omitted inputs:
    /// how a legacy attribute (Reshape-1's `shape`, Pad-2's `pads`) becomes
    /// the input later opsets define.
    pub fn set_const_input(&mut self, i: usize, tensor: Tensor, hint: &str) {
        let name = format!("{}:{hint}", self.node.name);
        let id = self.builder.add_constant(&name, tensor);
        if self.inputs.len() <= i {
            self.inputs.resize(i + 1, None);
        }
        self.inputs[i] = Some(id);
    }

    /// Attributes present on the node that the import function never read.
    pub(crate) fn unread(&self) -> Vec<String> {
        let read = self.read.borrow();
        self.node.attribute.iter().zip(read.iter()).filter(|(_, r)| !**r).map(|(a, _)| a.name.clone()).collect()
    }
}
