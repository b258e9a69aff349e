//! Device memory figures of the CubeCL backends, for the profiling harness.

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use burn_fusion::{Fusion, FusionBackend};

/// Bytes on the device, as CubeCL's memory pools see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceMemory {
    /// Bytes held by live tensors now.
    pub in_use: u64,
    /// Bytes the pools have reserved from the driver (they grow to the peak and stay there,
    /// so after a step this is the step's peak, like PyTorch's `max_memory_reserved`).
    pub reserved: u64,
}

pub trait MemoryBackend: Backend {
    fn device_memory(device: &Self::Device) -> Option<DeviceMemory>;
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> MemoryBackend
    for CubeBackend<R, F, I, BT>
{
    fn device_memory(device: &Self::Device) -> Option<DeviceMemory> {
        let usage = R::client(device).memory_usage().ok()?;
        Some(DeviceMemory {
            in_use: usage.bytes_in_use,
            reserved: usage.bytes_reserved,
        })
    }
}

impl<B: FusionBackend + MemoryBackend> MemoryBackend for Fusion<B> {
    fn device_memory(device: &Self::Device) -> Option<DeviceMemory> {
        B::device_memory(device)
    }
}

impl<B: MemoryBackend> MemoryBackend for Autodiff<B> {
    fn device_memory(device: &Self::Device) -> Option<DeviceMemory> {
        B::device_memory(device)
    }
}

/// [`DeviceMemory`] of `device` when `B` is one of this build's kernel backends.
pub fn device_memory<B: Backend>(device: &B::Device) -> Option<DeviceMemory> {
    fn of<K: MemoryBackend>(device: K::Device) -> Option<DeviceMemory> {
        K::device_memory(&device)
    }
    crate::for_kernel_backend!(B, |K| of::<K>(crate::dispatch::same_type(device.clone()))).flatten()
}
