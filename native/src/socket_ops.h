// Socket options the proxy needs and Node does not offer. Plain C++: each
// returns 0 or a negative errno and never touches N-API.
#pragma once

namespace sluice {

// SO_KEEPALIVE with TCP_KEEPIDLE/KEEPINTVL (seconds) and TCP_KEEPCNT, and
// TCP_USER_TIMEOUT (ms): a silent peer fails the socket with ETIMEDOUT.
int SetTcpKeepalive(int fd, int idle_seconds, int interval_seconds, int probes, unsigned int user_timeout_ms);

// SO_LINGER {1, 0} when on (a close, or the process dying, resets the
// connection), {0, 0} when off (a normal close).
int SetResetOnClose(int fd, bool on);

// The error pending on a socket (SO_ERROR, cleared by reading it) as a
// positive errno, 0 when none; the getsockopt errno when it fails.
int PendingSocketError(int fd);

// A close-on-exec duplicate of fd in *out.
int DupCloexec(int fd, int* out);

}  // namespace sluice
