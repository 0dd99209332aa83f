#include "socket_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace sluice {

namespace {
int Errno() { return errno ? -errno : -EIO; }
}  // namespace

int SetTcpKeepalive(int fd, int idle_seconds, int interval_seconds, int probes, unsigned int user_timeout_ms) {
  int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_seconds, sizeof(idle_seconds)) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_seconds, sizeof(interval_seconds)) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof(probes)) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof(user_timeout_ms)) < 0)
    return Errno();
  return 0;
}

int SetResetOnClose(int fd, bool on) {
  linger l{on ? 1 : 0, 0};
  return setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)) < 0 ? Errno() : 0;
}

int PendingSocketError(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  return err;
}

int DupCloexec(int fd, int* out) {
  *out = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return *out < 0 ? Errno() : 0;
}

}  // namespace sluice
