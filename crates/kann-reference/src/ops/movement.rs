use crate::EvalError;
use kann_ir::ops::movement::MovementOp;
use kann_ir::TensorInfo;
use kann_tensor::Tensor;

pub fn eval(op: &MovementOp, _inputs: &[Option<&Tensor>], _outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    match *op {}
}
