#include "common/resolve_host.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <memory>

namespace shardps {

Result<std::string> ResolveIPv4(const std::string& name) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &found);
  if (rc != 0 || found == nullptr)
    return Status::NotFound(
        "cannot resolve host '" + name + "' to an IPv4 address (" +
        (rc != 0 ? std::string(::gai_strerror(rc)) : "no address") +
        "): add it to /etc/hosts or DNS on this node");
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> owned(found, ::freeaddrinfo);
  char text[INET_ADDRSTRLEN] = {};
  const auto* in = reinterpret_cast<const sockaddr_in*>(found->ai_addr);
  if (::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text) == nullptr)
    return Status::NotFound("cannot format the address of host '" + name + "'");
  return std::string(text);
}

}  // namespace shardps
