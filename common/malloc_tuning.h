// Keeps glibc from handing block-sized buffers back to the kernel.
//
// ZeroMQ allocates a buffer for every frame it receives, and shardps sends
// tensors as block-sized frames (1 MiB by default). With glibc's defaults,
// freeing a 16 MiB request's worth of 1 MiB frames trims the heap, and the
// next request faults every page back in: on a VM that made a 16 MiB push
// take ~100 ms instead of ~4 ms. Raising the trim threshold and fixing the
// mmap threshold at its maximum (32 MiB) lets freed frames be reused.
//
// Process-wide (mallopt). Called by the shardps binaries at start-up and by
// Client::Connect unless ClientOptions::tune_malloc is false.
#ifndef SHARDPS_COMMON_MALLOC_TUNING_H_
#define SHARDPS_COMMON_MALLOC_TUNING_H_

namespace shardps {

// Idempotent and thread-safe; a no-op on C libraries other than glibc.
void TuneMallocForBlocks();

}  // namespace shardps

#endif  // SHARDPS_COMMON_MALLOC_TUNING_H_
