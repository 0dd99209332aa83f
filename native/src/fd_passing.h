// Descriptors passed between processes over a unix socket (SCM_RIGHTS): an
// upgraded agent receives the listening sockets of the one it replaces, so
// the kernel keeps queueing connections across the upgrade and none is
// refused.
#pragma once
#include <string>
#include <vector>

namespace sluice {

// Sends `payload` with `fds` attached on a connected unix stream socket
// (blocking until written, at most timeout_ms). 0, or -errno.
int SendFds(int sock, const std::string& payload, const std::vector<int>& fds, int timeout_ms);

// Connects to the unix socket at `path`, writes `request`, and reads one
// reply line (up to and including '\n', or to the peer's close): the bytes
// into *payload, the descriptors it attached into *fds (close-on-exec). The
// connection stays open in *sock (the caller closes it: that tells the peer
// it is done). 0, or -errno: -ENOENT / -ECONNREFUSED when nothing listens
// there, -ETIMEDOUT past timeout_ms in all.
int ReceiveFds(const std::string& path, const std::string& request, int timeout_ms, std::string* payload, std::vector<int>* fds, int* sock);

}  // namespace sluice
