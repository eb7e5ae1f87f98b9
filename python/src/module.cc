// The extension module shardps._shardps; python/shardps/__init__.py
// re-exports it as `shardps`.
#include "python/src/bindings.h"

PYBIND11_MODULE(_shardps, m) {
  m.doc() =
      "shardps: a sharded parameter server. Client pushes gradients and "
      "pulls weights; ModelView reads a co-located model without a copy; "
      "BatchQueue streams mini-batches through shared memory.";
  shardps::python::RegisterErrors(m);
  shardps::python::RegisterClient(m);
  shardps::python::RegisterModelView(m);
  shardps::python::RegisterBatchQueue(m);
}
