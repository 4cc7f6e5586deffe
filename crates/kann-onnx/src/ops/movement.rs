use crate::registry::Registry;

pub(super) fn register(_r: &mut Registry) {}
