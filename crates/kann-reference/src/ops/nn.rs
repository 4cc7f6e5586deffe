use crate::EvalError;
use kann_ir::ops::nn::NnOp;
use kann_ir::TensorInfo;
use kann_tensor::Tensor;

pub fn eval(op: &NnOp, _inputs: &[Option<&Tensor>], _outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    match *op {}
}
