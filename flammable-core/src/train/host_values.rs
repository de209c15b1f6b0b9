//! The f32 values of a contiguous tensor's CPU storage, as slices: what the training's own
//! CPU kernels (AdamW's in-place update, the gradients' average over the ranks) read and
//! write. `what` names the kernel in the error of a storage that is not such.

use candle_core::{CpuStorage, Error, Layout, Result};

/// The values of `storage` that `layout` covers.
pub(super) fn values<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> Result<&'a [f32]> {
    let all = storage.as_slice::<f32>()?;
    layout
        .contiguous_offsets()
        .and_then(|(start, end)| all.get(start..end))
        .ok_or_else(|| not_contiguous(what))
}

/// Like [`values`], writable.
pub(super) fn values_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    what: &str,
) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(all) = storage else {
        return Err(Error::Msg(format!("{what} met a tensor not f32")));
    };
    layout
        .contiguous_offsets()
        .and_then(|(start, end)| all.get_mut(start..end))
        .ok_or_else(|| not_contiguous(what))
}

fn not_contiguous(what: &str) -> Error {
    Error::Msg(format!("{what} met a tensor not contiguous"))
}
