// ClientState: what a shardps.Client shares with its Handles (client.cc),
// and the access ModelView(client) needs (model_view.cc).
//
// Thread-safety: touched only with the GIL held.
#ifndef SHARDPS_PYTHON_CLIENT_STATE_H_
#define SHARDPS_PYTHON_CLIENT_STATE_H_

#include <memory>
#include <vector>

#include "python/src/bindings.h"
#include "shardps/client.h"

namespace shardps::python {

// A call whose Python Handle was dropped before it was done: the arrays it
// reads or writes stay referenced here until handle.Done().
struct Orphan {
  Handle handle;
  std::vector<py::object> keep;
};

struct ClientState {
  // Destroys the client first (which completes every call), then the
  // orphans.
  ~ClientState();
  // Frees the orphans whose call is done.
  void Reap();

  std::vector<Orphan> orphans;
  std::shared_ptr<Client> client;  // null once closed
};

// The live C++ client of a shardps.Client object; raises TypeError for
// another object and UnavailableError("client is closed") once closed.
std::shared_ptr<Client> LiveClientOf(const py::handle& client);

}  // namespace shardps::python

#endif  // SHARDPS_PYTHON_CLIENT_STATE_H_
