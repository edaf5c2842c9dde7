// How the process allocates tensor memory on the CPU. LibTorch takes CPU tensors from glibc's
// malloc; by default glibc serves every block above its mmap threshold (at most 32 MiB) with a
// fresh mmap and returns it with munmap when freed, and trims the heap top back to the kernel. A
// forward pass then page-faults its activations in again on every batch: measured on the quickstart
// model, 4x slower training and 7x slower inference at batch 1000 (docs/PERFORMANCE.md).
#pragma once

namespace apricot {

// Keeps freed memory in the process for reuse (no mmap for large blocks, no trimming), as caching
// allocators do. Call first thing in main(), before any tensor exists. Set APRICOT_MALLOC=system
// in the environment to leave glibc's defaults (for example to measure the difference).
// Returns false when left alone.
bool retain_freed_memory();

}  // namespace apricot
